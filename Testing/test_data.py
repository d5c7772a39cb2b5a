"""Dataset readers: nnU-Net v2, AutoPET and SAM-Med3D layouts written here, and their clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SegAnyPETLib.data import Case, detect_layout, load_case, open_dataset, target_mask
from SegAnyPETLib.errors import SegAnyPETError

SHAPE = (12, 10, 14)  # z, y, x
SPACING = (4.07, 4.07, 3.0)


def volume(seed: int, label: bool = False, values=(1, 2), spacing=SPACING, shape=SHAPE) -> sitk.Image:
    """A tiny image (float SUV) or label (uint8 blobs with ``values``) on a fixed grid."""
    rng = np.random.default_rng(seed)
    if label:
        array = np.zeros(shape, np.uint8)
        for i, value in enumerate(values):
            array[2 + i * 4 : 5 + i * 4, 3:7, 4 + i : 9 + i] = value
    else:
        array = rng.uniform(0.0, 5.0, shape).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, -15.0, 100.0))
    return image


def write(image: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)
    return path


def nnunet(root: Path, train=("a", "b"), test=(), labels=None, lq=True) -> Path:
    labels = labels or {"background": 0, "liver": 1, "spleen": 2}
    (root / "dataset.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "PET"}, "labels": labels,
                                                   "numTraining": len(train), "file_ending": ".nii.gz"}))
    for split, ids in (("Tr", train), ("Ts", test)):
        for i, case in enumerate(ids):
            write(volume(i), root / f"images{split}" / f"{case}_0000.nii.gz")
            write(volume(i, label=True), root / f"labels{split}" / f"{case}.nii.gz")
            if lq and split == "Tr":
                write(volume(i, label=True, values=(1,)), root / "labelsLQ" / f"{case}.nii.gz")
    return root


def test_nnunet_train_split_with_noisy_labels(tmp_path):
    root = nnunet(tmp_path / "Dataset001")
    dataset = open_dataset(root)
    assert dataset.layout == "nnunet" and len(dataset) == 2
    assert dataset.labels == {"liver": 1, "spleen": 2}
    case = dataset.cases[0]
    assert case.case_id == "a" and case.image.name == "a_0000.nii.gz" and case.label.parent.name == "labelsTr"
    assert case.noisy_label == root / "labelsLQ" / "a.nii.gz"
    image, label = load_case(case)
    assert image.GetPixelID() == sitk.sitkFloat32 and label.GetPixelID() == sitk.sitkUInt8
    array = sitk.GetArrayFromImage(label)
    assert target_mask(array, case, "spleen").sum() == (array == 2).sum() > 0
    _, noisy = load_case(case, noisy=True)
    assert set(np.unique(sitk.GetArrayFromImage(noisy))) == {0, 1}
    with pytest.raises(SegAnyPETError, match="no target 'aorta'"):
        target_mask(array, case, "aorta")


def test_nnunet_prefers_test_split_and_picks_pet_channel(tmp_path):
    root = nnunet(tmp_path / "Dataset002", train=("a",), test=("t1", "t2", "t3"))
    dataset = open_dataset(root)
    assert [c.case_id for c in dataset.cases] == ["t1", "t2", "t3"]
    assert all(c.label.parent.name == "labelsTs" and c.noisy_label is None for c in dataset.cases)
    assert [c.case_id for c in open_dataset(root, split="train").cases] == ["a"]
    # A CT + PET dataset: the PET channel is 0001.
    content = json.loads((root / "dataset.json").read_text())
    content["channel_names"] = {"0": "CT", "1": "PET"}
    (root / "dataset.json").write_text(json.dumps(content))
    write(volume(9), root / "imagesTr" / "a_0001.nii.gz")
    assert open_dataset(root, split="train").cases[0].image.name == "a_0001.nii.gz"


def test_nnunet_errors_name_the_file(tmp_path):
    root = nnunet(tmp_path / "Dataset003")
    with pytest.raises(SegAnyPETError, match="no imagesTs"):
        open_dataset(root, split="test")
    with pytest.raises(SegAnyPETError, match="unknown split"):
        open_dataset(root, split="validation")
    with pytest.raises(SegAnyPETError, match="noisy-label folder .*labelsXX does not exist"):
        open_dataset(root, noisy_labels="labelsXX")
    # A label value missing from dataset.json.
    write(volume(0, label=True, values=(1, 7)), root / "labelsTr" / "b.nii.gz")
    case = open_dataset(root).cases[1]
    with pytest.raises(SegAnyPETError, match=r"labelsTr/b.nii.gz holds value\(s\) \[7\] not declared in .*dataset.json"):
        load_case(case)
    # Label on another grid.
    write(volume(0, label=True, spacing=(4.0, 4.0, 3.0)), root / "labelsTr" / "b.nii.gz")
    with pytest.raises(SegAnyPETError, match=r"labelsTr/b.nii.gz is not on the grid of image .*b_0000.nii.gz: spacing"):
        load_case(case)
    write(volume(0, label=True, shape=(13, 10, 14)), root / "labelsTr" / "b.nii.gz")
    with pytest.raises(SegAnyPETError, match="size"):
        load_case(case)
    # A label without image, an image without label.
    write(volume(0, label=True), root / "labelsTr" / "c.nii.gz")
    with pytest.raises(SegAnyPETError, match=r"label .*labelsTr/c.nii.gz has no image \(expected .*c_0000.nii.gz\)"):
        open_dataset(root)
    (root / "labelsTr" / "c.nii.gz").unlink()
    (root / "labelsTr" / "a.nii.gz").unlink()
    with pytest.raises(SegAnyPETError, match=r"image .*a_0000.nii.gz has no label file"):
        open_dataset(root)


def test_nnunet_bad_dataset_json(tmp_path):
    root = nnunet(tmp_path / "Dataset004")
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(SegAnyPETError, match="cannot read .*dataset.json"):
        open_dataset(root)
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumour": [1, 2]}}))
    with pytest.raises(SegAnyPETError, match="only integer labels"):
        open_dataset(root)
    (root / "dataset.json").unlink()
    with pytest.raises(SegAnyPETError, match="without dataset.json"):
        open_dataset(root)


def test_autopet_layout_nested_studies(tmp_path):
    root = tmp_path / "autopet"
    for i, study in enumerate(("PETCT_0001/2005-08-12", "PETCT_0002/2006-01-03", "PETCT_0003/2007-02-02")):
        write(volume(i), root / study / "SUV.nii.gz")
        if i < 2:
            write(volume(i, label=True, values=(1,)), root / study / "SEG.nii.gz")
        if i == 0:
            write(volume(5), root / study / "CTres.nii.gz")
    dataset = open_dataset(root)
    assert detect_layout(root) == "autopet" and dataset.layout == "autopet"
    assert [c.case_id for c in dataset.cases] == ["PETCT_0001/2005-08-12", "PETCT_0002/2006-01-03", "PETCT_0003/2007-02-02"]
    assert dataset.labels == {"lesion": 1}
    assert dataset.cases[0].ct.name == "CTres.nii.gz" and dataset.cases[1].ct is None
    image, label = load_case(dataset.cases[0])
    assert target_mask(sitk.GetArrayFromImage(label), dataset.cases[0], "lesion").sum() > 0
    with pytest.raises(SegAnyPETError, match="PETCT_0003.*has no label file"):
        load_case(dataset.cases[2])
    write(volume(0, label=True, values=(1, 2)), root / "PETCT_0002/2006-01-03" / "SEG.nii.gz")
    with pytest.raises(SegAnyPETError, match=r"SEG.nii.gz holds value\(s\) \[2\] not declared in the AutoPET layout"):
        load_case(dataset.cases[1])
    with pytest.raises(SegAnyPETError, match="no test split"):
        open_dataset(root, split="test")


def test_sam_med3d_layout_binary_masks(tmp_path):
    root = tmp_path / "medical_preprocessed"
    for target in ("liver", "kidney_left"):
        for name in ("pet_001", "pet_002"):
            write(volume(1), root / target / "petsyn" / "imagesTr" / f"{name}.nii.gz")
            write(volume(1, label=True, values=(1,)), root / target / "petsyn" / "labelsTr" / f"{name}.nii.gz")
    dataset = open_dataset(root)
    assert dataset.layout == "sam-med3d" and len(dataset) == 4
    assert [c.case_id for c in dataset.cases][:2] == ["kidney_left/petsyn/pet_001", "kidney_left/petsyn/pet_002"]
    assert dataset.labels == {"kidney_left": 1, "liver": 1}
    assert len(dataset.with_target("liver")) == 2 and dataset.cases[0].labels == {"kidney_left": 1}
    _, label = load_case(dataset.cases[0])
    assert target_mask(sitk.GetArrayFromImage(label), dataset.cases[0], "kidney_left").any()
    (root / "liver" / "petsyn" / "imagesTr" / "pet_002.nii.gz").unlink()
    with pytest.raises(SegAnyPETError, match=r"label .*liver/petsyn/labelsTr/pet_002.nii.gz has no image"):
        open_dataset(root)


def test_unknown_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegAnyPETError, match="unknown dataset layout"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(SegAnyPETError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SegAnyPETError, match="is a file"):
        open_dataset(tmp_path / "file.txt")
    case = Case("x", tmp_path / "missing.nii.gz", tmp_path / "missing_label.nii.gz", {"liver": 1})
    with pytest.raises(SegAnyPETError, match="missing.nii.gz does not exist"):
        load_case(case)


def test_reads_a_phantom_dataset(tmp_path):
    """The phantom writer and the reader agree (labels, noisy labels, grids)."""
    from SegAnyPETLib.labels import LABELS
    from SegAnyPETLib.phantom.dataset import write_dataset

    out = tmp_path / "phantoms"
    write_dataset(out, cases=1, seed=3, progress=False)
    dataset = open_dataset(out)
    assert dataset.labels == LABELS and len(dataset) == 1
    image, label = load_case(dataset.cases[0])
    _, noisy = load_case(dataset.cases[0], noisy=True)
    assert image.GetSize() == label.GetSize() == noisy.GetSize()
    assert target_mask(sitk.GetArrayFromImage(label), dataset.cases[0], "liver").sum() > 1000


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
def test_non_finite_voxels_survive_reading(tmp_path, suffix):
    """ITK 5's NIfTI reader turns NaN and inf into 0; read_image gives them back where they were."""
    from SegAnyPETLib.io import read_image

    values = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    values[1, 2, 3], values[3, 0, 5] = np.nan, np.inf
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((2.0, 3.0, 4.0))
    image.SetOrigin((1.0, -2.0, 5.0))
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / f"pet{suffix}"))
    read = read_image(tmp_path / f"pet{suffix}")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), values)  # NaN where NaN, inf where inf
    assert read.GetSpacing() == image.GetSpacing() and read.GetOrigin() == image.GetOrigin()
    assert np.allclose(read.GetDirection(), image.GetDirection())


def test_cut_and_corrupt_images_are_refused(tmp_path):
    from SegAnyPETLib.io import read_image

    sitk.WriteImage(volume(0), str(tmp_path / "pet.nii.gz"), True)
    data = (tmp_path / "pet.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) * 6 // 10])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "crc.nii.gz").write_bytes(bytes(flipped))
    sitk.WriteImage(volume(0), str(tmp_path / "pet.nii"))
    (tmp_path / "cut.nii").write_bytes((tmp_path / "pet.nii").read_bytes()[:-100])
    with pytest.raises(SegAnyPETError, match="cut.nii.gz ends early: its gzip stream is cut off"):
        read_image(tmp_path / "cut.nii.gz")
    with pytest.raises(SegAnyPETError, match="crc.nii.gz fails its gzip check"):
        read_image(tmp_path / "crc.nii.gz")
    with pytest.raises(SegAnyPETError, match=r"cut.nii ends early: \d+ of the \d+ bytes its header announces"):
        read_image(tmp_path / "cut.nii")


def test_failed_writes_name_the_cause_and_keep_what_was_there(tmp_path, monkeypatch):
    """A write that fails (here the rename, as on a full disk) is one error naming the path and the
    cause; the file that was there is unchanged and no temporary file is left."""
    import errno
    import os

    from SegAnyPETLib import io

    target = tmp_path / "stats.csv"
    target.write_text("earlier results")

    def full_disk(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "replace", full_disk)
    with pytest.raises(SegAnyPETError, match=r"cannot write .*stats\.csv: No space left on device \(ENOSPC\)"):
        io.write_text(target, "new results", overwrite=True)
    with pytest.raises(SegAnyPETError, match=r"cannot write .*pet\.nii\.gz: No space left on device"):
        io.write_image(volume(0), tmp_path / "pet.nii.gz")
    assert target.read_text() == "earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.csv"]


def test_overwrite_replaces_regular_files_only_and_never_an_input(tmp_path):
    import os

    from SegAnyPETLib.io import ensure_writable

    source = tmp_path / "pet.nii.gz"
    source.write_bytes(b"image")
    os.link(source, tmp_path / "alias.nii.gz")
    os.mkfifo(tmp_path / "fifo.csv")
    with pytest.raises(SegAnyPETError, match="alias.nii.gz is an input of this command"):
        ensure_writable(tmp_path / "alias.nii.gz", overwrite=True, inputs=[source])
    with pytest.raises(SegAnyPETError, match="fifo.csv is a fifo, not a regular file"):
        ensure_writable(tmp_path / "fifo.csv", overwrite=True)
    with pytest.raises(SegAnyPETError, match="unknown image format"):
        ensure_writable(tmp_path / "mask.png", image=True)
    assert ensure_writable(tmp_path / "alias.nii.gz", overwrite=True) == tmp_path / "alias.nii.gz"
