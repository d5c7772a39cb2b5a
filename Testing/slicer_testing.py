"""Shared pieces of the Slicer tests (logic, batch script): the model they run and a small phantom.

``model_source`` is the one place that chooses the network: a randomly initialised tiny network saved
as a checkpoint, with crops of 64 voxels of 16 mm, so a target needs one or two crops and the tests
stay fast on a CPU. Its masks are meaningless, but the tests compare the MRML results exactly with the
library's, which holds for any weights; the bundled model's quality is tested by Testing/test_demo.py
and measured by ``seganypet evaluate``. To run these tests with it, make it ``return "demo"``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from conftest import randomize

# A coarse phantom (8.14 x 8.14 x 6 mm, 80 x 56 x 175 voxels) keeps the Slicer tests fast.
PHANTOM_SPACING = (8.14, 8.14, 6.0)
PHANTOM_IN_PLANE = (80, 56)


def model_source(directory: Path) -> str:
    """The model source every Slicer test uses (a checkpoint path, or a registry name such as "demo")."""
    from SegAnyPETLib.checkpoints import save_checkpoint
    from SegAnyPETLib.model import build_model
    from SegAnyPETLib.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    model = randomize(build_model("tiny"), seed=3)
    path = Path(directory) / "tiny-random.pt"
    save_checkpoint(path, model, preprocessing=PreprocessConfig(spacing=(16.0, 16.0, 16.0), crop_size=64))
    return str(path)


@functools.lru_cache(maxsize=None)
def phantom(seed: int = 3):
    """A small synthetic FDG-PET case (SUV image and expert label, SimpleITK), cached per seed."""
    from SegAnyPETLib.phantom.generate import generate_case

    return generate_case(seed, spacing=PHANTOM_SPACING, in_plane=PHANTOM_IN_PLANE, noisy=False)


def organ_center_zyx(label: sitk.Image, value: int) -> tuple:
    """The voxel of an organ deepest inside it (a click a user would make)."""
    from scipy import ndimage

    mask = sitk.GetArrayFromImage(label) == value
    depth = ndimage.distance_transform_edt(mask)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), mask.shape))


def write_phantom_dataset(root: Path, seeds=(3, 4)) -> Path:
    """A small nnU-Net v2 dataset (imagesTr/labelsTr, dataset.json) of coarse phantoms."""
    import json

    from SegAnyPETLib.labels import LABELS

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for index, seed in enumerate(seeds):
        case = phantom(seed)
        sitk.WriteImage(case.image, str(root / "imagesTr" / f"PET_{index:03d}_0000.nii.gz"))
        sitk.WriteImage(case.label, str(root / "labelsTr" / f"PET_{index:03d}.nii.gz"))
    labels = {"background": 0, **LABELS}
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "PET"}, "labels": labels, "numTraining": len(seeds), "file_ending": ".nii.gz"}
    ))
    return root
