"""``seganypet segment --preset official`` against a plain implementation of the official inference loop.

The reference below is written from ../shared/spec/REFERENCE.md section 3 (SAM-Med3D ``infer_utils``,
shipped with SegAnyPET), not from the session's code: on an image already on the 1.5 mm grid in RAS
voxel order, one 128^3 crop of the image's voxels with the first click at index 64 on each axis
(zeros beyond the image), z-score over the crop's voxels > 0 (torchio's ``ZNormalization``: the
sample std), one encoder run, then one click at a time: the points so far, the previous 32^3
logits as the mask prompt (zeros at the first click), trilinear upsampling to 128^3
(align_corners=False), sigmoid > 0.5, and the crop's mask put back at its place. The network is
``vit_b_ori`` with random weights, saved in both published layouts (a plain state_dict, as the
SegAnyPET files; ``{"model_state_dict": ...}``, as SAM-Med3D-turbo). The image's axes have
different lengths and the clicks lie near different faces, so a swapped axis, a shifted crop or a
reordered click changes the mask.
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from conftest import randomize
from SegAnyPETLib.cli import main
from SegAnyPETLib.model import build_model

CROP, LOW = 128, 32


def official_loop(model, volume: np.ndarray, clicks) -> np.ndarray:
    """The official protocol on ``volume`` (i, j, k: RAS voxel order, 1.5 mm) for ``clicks``
    [((i, j, k), label), ...]; returns the mask on the volume (i, j, k)."""
    start = np.asarray(clicks[0][0]) - CROP // 2
    source = tuple(slice(max(s, 0), min(s + CROP, n)) for s, n in zip(start, volume.shape))
    target = tuple(slice(src.start - s, src.stop - s) for src, s in zip(source, start))
    crop = np.zeros((CROP,) * 3, np.float64)
    crop[target] = volume[source]
    foreground = crop[crop > 0]
    crop = (crop - foreground.mean()) / foreground.std(ddof=1)
    with torch.no_grad():
        embedding = model.image_encoder(torch.from_numpy(crop.astype(np.float32))[None, None])
        previous = torch.zeros(1, 1, LOW, LOW, LOW)
        points, labels = [], []
        for ijk, label in clicks:
            points.append(np.asarray(ijk) - start)
            labels.append(label)
            sparse, dense = model.prompt_encoder(
                points=(torch.tensor(np.array(points), dtype=torch.float32)[None], torch.tensor([labels])),
                boxes=None, masks=previous)
            previous, _ = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                             sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                             multimask_output=False)
        upsampled = F.interpolate(previous, size=(CROP,) * 3, mode="trilinear", align_corners=False)
        mask = (torch.sigmoid(upsampled) > 0.5)[0, 0].numpy()
    result = np.zeros(volume.shape, np.uint8)
    result[source] = mask[target]
    return result


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return randomize(build_model("vit_b_ori"), seed=5).eval()


@pytest.fixture(scope="module")
def pet(tmp_path_factory):
    """A 150 x 100 x 170 PET-like volume (i, j, k), 1.5 mm, RAS voxel order, written as NIfTI."""
    rng = np.random.default_rng(4)
    i, j, k = np.meshgrid(*(np.arange(n) for n in (150, 100, 170)), indexing="ij")
    volume = rng.gamma(2.0, 0.5, (150, 100, 170))
    volume += 6.0 * (((i - 40) / 25.0) ** 2 + ((j - 30) / 18.0) ** 2 + ((k - 120) / 30.0) ** 2 < 1)
    volume += 3.0 * (((i - 110) / 20.0) ** 2 + ((j - 70) / 15.0) ** 2 + ((k - 50) / 20.0) ** 2 < 1)
    volume = volume.astype(np.float32)
    image = sitk.GetImageFromArray(volume.transpose(2, 1, 0))
    image.SetSpacing((1.5, 1.5, 1.5))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS voxel order, in ITK's LPS terms
    image.SetOrigin((120.0, 80.0, -300.0))
    path = tmp_path_factory.mktemp("pet") / "pet.nii.gz"
    sitk.WriteImage(image, str(path))
    return path, volume


@pytest.mark.parametrize("layout", ["state_dict", "model_state_dict"])
def test_official_preset_gives_the_official_loops_mask(tmp_path, network, pet, layout):
    path, volume = pet
    state = network.state_dict()
    checkpoint = tmp_path / "weights.pth"
    torch.save(state if layout == "state_dict" else {"model_state_dict": state}, checkpoint)
    clicks = [((40, 30, 120), 1), ((52, 40, 110), 0), ((30, 22, 130), 1), ((42, 28, 135), 0)]
    out = tmp_path / "mask.nii.gz"
    argv = [f"--{'point' if label else 'negative'}={','.join(map(str, ijk))}" for ijk, label in clicks]
    assert main(["segment", str(path), "-o", str(out), "--model", str(checkpoint), "--preset", "official",
                 "--device", "cpu", *argv]) == 0
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(out))).transpose(2, 1, 0)
    expected = official_loop(network, volume, clicks)
    assert expected.any() and not expected[tuple(slice(s, s + 128) for s in (0, 0, 56))].all()  # a real mask
    assert np.array_equal(ours, expected)
    if layout == "state_dict":
        # The crop reaches beyond the image at k = 120 + 64 > 170: the padding takes part.
        assert 120 + CROP // 2 > volume.shape[2]
        # Clicking the same points in another order gives another mask: the order is tested too.
        reordered = official_loop(network, volume, [clicks[0], clicks[2], clicks[1], clicks[3]])
        assert not np.array_equal(reordered, expected)
