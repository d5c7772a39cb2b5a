"""A catalogue of bad inputs and faults, each walked through the command line with its exit status
and message (issue 27): full disks, cut and corrupt files, implausible values, ambiguities, data
loss, malformed checkpoints and DICOM tags, training interruptions.

Errors must be one stderr line ``seganypet CMD: error: ...`` with exit status 2, never a
traceback; warnings are logged (the command line shows them on stderr) while the command succeeds.
Nothing a case starts from may be changed, and no temporary file may be left behind. The cases run
in-process through ``cli.main``; the full-disk cases run in a subprocess with a small
``RLIMIT_FSIZE``, so that writes fail with EFBIG as on a full disk.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from pydicom.datadict import tag_for_keyword

from conftest import REPO, constant_model, random_model
from pet_dicom_factory import write_pet_series
from SegAnyPETLib.checkpoints import save_checkpoint
from SegAnyPETLib.cli import main

SHAPE = (24, 28, 32)  # z, y, x
SPACING = (4.0, 4.0, 4.0)
ORGAN = (12, 14, 16)  # z, y, x centre of label 1; label 2 is a box


# ------------------------------------------------------------------------------------------ inputs
def _pet_array() -> np.ndarray:
    z, y, x = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    rng = np.random.default_rng(0)
    body = ((y - 14) / 12.0) ** 2 + ((x - 16) / 14.0) ** 2 < 1  # air (0) in the corners
    values = np.where(body, 1.0 + 0.1 * rng.standard_normal(SHAPE), 0.0)
    values += 6.0 * _organ()
    values[4:8, 6:10, 8:12] += 2.0
    return values.astype(np.float32)


def _organ() -> np.ndarray:
    z, y, x = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return ((x - ORGAN[2]) / 5.0) ** 2 + ((y - ORGAN[1]) / 4.0) ** 2 + ((z - ORGAN[0]) / 4.0) ** 2 < 1


def _labels() -> np.ndarray:
    labels = np.where(_organ(), 1, 0).astype(np.uint8)
    labels[4:8, 6:10, 8:12] = 2
    return labels


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin((-64.0, -56.0, -48.0))
    return image


def _write(array: np.ndarray, path: Path) -> Path:
    sitk.WriteImage(_image(array), str(path), True)
    return path


def _cut(source: Path, path: Path, fraction: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _patch_dicom(folder: Path, keyword: str, replacement: bytes, slice_index: int = 1) -> None:
    """Overwrite the decimal string ``keyword`` of one slice's file in place with ``replacement``
    (padded with spaces to the stored length): a malformed value pydicom would not write."""
    path = sorted(folder.iterdir())[slice_index]
    tag = tag_for_keyword(keyword)
    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"DS"  # explicit VR little endian
    data = bytearray(path.read_bytes())
    start = data.find(header)
    assert start >= 0 and data.find(header, start + 1) < 0
    length = struct.unpack("<H", data[start + 6 : start + 8])[0]
    assert len(replacement) <= length
    data[start + 8 : start + 8 + length] = replacement.ljust(length)
    path.write_bytes(bytes(data))


def _checkpoint(path: Path, payload_change: Callable[[dict], None]) -> Path:
    data = torch.load(WORK["tiny.pt"], weights_only=True)
    payload_change(data)
    torch.save(data, path)
    return path


WORK: dict = {}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The inputs of every case, written once; their checksums are compared after each case."""
    root = tmp_path_factory.mktemp("bad_inputs")
    pet, labels = _pet_array(), _labels()
    _write(pet, root / "pet.nii.gz")
    _write(labels, root / "seg.nii.gz")
    WORK["tiny.pt"] = save_checkpoint(root / "tiny.pt", random_model("tiny"))
    save_checkpoint(root / "empty_masks.pt", constant_model("tiny", sign=-1.0))
    # cut and corrupt files
    for fraction in (0.6, 0.99):
        _cut(root / "pet.nii.gz", root / f"pet_cut{int(fraction * 100)}.nii.gz", fraction)
    for suffix in (".nii", ".mha", ".nrrd"):
        _cut(_write(pet, root / f"pet{suffix}"), root / f"pet_cut{suffix}", 0.6)
    _cut(root / "seg.nii.gz", root / "seg_cut.nii.gz", 0.6)
    corrupt = bytearray((root / "seg.nii.gz").read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    (root / "seg_crc.nii.gz").write_bytes(bytes(corrupt))
    (root / "empty.nii.gz").write_bytes(b"")
    _cut(root / "pet.nii", root / "pet_header_only.nii", 200 / (root / "pet.nii").stat().st_size)
    # implausible values
    for name, scale in (("1e30", 1e30), ("1e-30", 1e-30), ("1e12", 1e12), ("1e-4", 1e-4), ("5e7", 5e7)):
        _write(pet * np.float32(scale), root / f"pet_x{name}.nii.gz")
    for name, value, where in (("nan_in_organ", np.nan, ORGAN), ("inf_in_organ", np.inf, ORGAN),
                               ("nan_near_organ", np.nan, (ORGAN[0], ORGAN[1], ORGAN[2] + 6)),
                               ("nan_far", np.nan, (22, 26, 30))):
        values = pet.copy()
        values[where] = value
        _write(values, root / f"pet_{name}.nii.gz")
    # images that are not 3D scalar volumes
    sitk.WriteImage(sitk.GetImageFromArray((pet[12] * 30).astype(np.uint8)), str(root / "pet.png"))
    sitk.WriteImage(sitk.JoinSeries([_image(pet), _image(pet)]), str(root / "pet_4d.nii.gz"))
    sitk.WriteImage(sitk.Compose([_image(pet)] * 3), str(root / "pet_vector.nrrd"))
    sitk.WriteImage(sitk.JoinSeries([_image(labels), _image(labels)]), str(root / "seg_4d.nii.gz"))
    _write(labels.astype(np.float32), root / "seg_float.nii.gz")
    # labels files
    for name, content in (
        ("labels_ok.json", '{"labels": {"background": 0, "liver": 1, "spleen": 2}}'),
        ("labels_two_names.json", '{"labels": {"liver": 1, "spleen": 1, "kidney": 2}}'),
        ("labels_one_name_twice.json", '{"labels": {"1": "liver", "2": "liver"}}'),
        ("labels_repeated_key.json", '{"labels": {"liver": 1, "liver": 2}}'),
        ("labels_absent.json", '{"labels": {"liver": 1, "spleen": 2, "kidney_left": 7}}'),
        ("labels_negative.json", '{"labels": {"liver": 1, "spleen": 2, "odd": -3}}'),
    ):
        (root / name).write_text(content)
    # checkpoints with malformed stored fields
    changes = {
        "nan_weights": lambda d: d["model_state_dict"]["mask_decoder.iou_token.weight"].fill_(float("nan")),
        "inf_weights": lambda d: d["model_state_dict"]["image_encoder.patch_embed.proj.weight"].view(-1)[0].fill_(float("inf")),
        "pre_unknown_key": lambda d: d["preprocessing"].update(flip=True),
        "pre_crop_size": lambda d: d["preprocessing"].update(crop_size=32),
        "pre_spacing_zero": lambda d: d["preprocessing"].update(spacing=[0.0, 4.0, 4.0]),
        "pre_spacing_negative": lambda d: d["preprocessing"].update(spacing=[4.0, -4.0, 4.0]),
        "pre_spacing_nan": lambda d: d["preprocessing"].update(spacing=[4.0, 4.0, float("nan")]),
        "pre_spacing_two": lambda d: d["preprocessing"].update(spacing=[4.0, 4.0]),
        "pre_not_mapping": lambda d: d.update(preprocessing=[4.0, 64]),
        "config_type": lambda d: d["model_config"].update(img_size="big"),
        "config_size": lambda d: d["model_config"].update(img_size=60),
        "config_not_mapping": lambda d: d.update(model_config="tiny"),
        "metadata_list": lambda d: d.update(metadata=["trained", 3]),
        "threshold": lambda d: d.update(mask_threshold=2.0),
    }
    for name, change in changes.items():
        _checkpoint(root / f"{name}.pt", change)
    # DICOM series
    values = np.full((4, 8, 8), 1000.0)
    values[1:3, 2:6, 2:6] = 5000.0
    for name in ("dicom", "dicom_slope", "dicom_intercept", "dicom_weight", "dicom_dose"):
        write_pet_series(root / name, values, header={"PatientWeight": "70.5"})
    _patch_dicom(root / "dicom_slope", "RescaleSlope", b"0.1x")
    _patch_dicom(root / "dicom_intercept", "RescaleIntercept", b"ab")
    _patch_dicom(root / "dicom_weight", "PatientWeight", b"70kg", slice_index=0)  # series tags: the first slice's
    _patch_dicom(root / "dicom_dose", "RadionuclideTotalDose", b"37000000x", slice_index=0)
    # nnU-Net datasets of two cases: whole, and with the first image cut
    for name, cut in (("Dataset900_Ok", 1.0), ("Dataset901_Cut", 0.6)):
        data = root / name
        (data / "imagesTr").mkdir(parents=True)
        (data / "labelsTr").mkdir()
        for case in ("case_000", "case_001"):
            _cut(root / "pet.nii.gz", data / "imagesTr" / f"{case}_0000.nii.gz", cut if case == "case_000" else 1.0)
            shutil.copy(root / "seg.nii.gz", data / "labelsTr" / f"{case}.nii.gz")
        (data / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "PET"}, "labels": {"background": 0, "liver": 1, "spleen": 2},
            "numTraining": 2, "file_ending": ".nii.gz"}))
    (root / "a_file").write_text("not a folder")
    return root


def _checksums(root: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ cases
@dataclass
class Case:
    id: str
    argv: List[str]  # {w}: the inputs' folder, {o}: this case's own empty folder
    code: int = 2
    message: str = ""  # regex: the error line (code 2), else a warning
    setup: Optional[Callable[[Path], None]] = None  # prepares {o}
    check: Optional[Callable[[Path], None]] = None  # more checks on {o}


def _fifo(out: Path, name: str = "out.csv") -> None:
    os.mkfifo(out / name)


def _copy_pet(out: Path) -> None:
    shutil.copy(WORK["root"] / "pet.nii.gz", out / "pet.nii.gz")


def _link_pet(out: Path) -> None:
    os.link(out / "pet.nii.gz", out / "pet_link.csv") if (out / "pet.nii.gz").exists() else None


def _unchanged_copy(out: Path) -> None:
    assert (out / "pet.nii.gz").read_bytes() == (WORK["root"] / "pet.nii.gz").read_bytes()


def _nothing_written(out: Path) -> None:
    assert not [p for p in out.rglob("*") if p.is_file() and not p.name.startswith("given")], list(out.rglob("*"))


def _empty_row_for_absent_label(out: Path) -> None:
    text = (out / "s.csv").read_text()
    assert "kidney_left,7,0," in text and text.count("\n") == 4


def _csv_kept(out: Path) -> None:
    assert (out / "given.json").read_text() == "segment,label\n"


SEG = ["segment", "{w}/pet.nii.gz", "-o", "{o}/mask.nii.gz", "--model", "{w}/tiny.pt", "--device", "cpu", "--point", "16,14,12"]
STATS = ["stats", "--pet", "{w}/pet.nii.gz", "--seg", "{w}/seg.nii.gz", "-o", "{o}/s.csv"]
SUV = ["suv", "{w}/dicom", "-o", "{o}/suv.nii.gz"]
TRAIN = ["train", "--data", "{w}/Dataset900_Ok", "--arch", "tiny", "--num-workers", "0", "--quiet-progress"]


def _seg_model(name: str) -> List[str]:
    return [*SEG[:5], f"{{w}}/{name}.pt", *SEG[6:]]


def _seg_image(name: str) -> List[str]:
    return [SEG[0], f"{{w}}/{name}", *SEG[2:]]


def _stats(pet: str = "pet.nii.gz", seg: str = "seg.nii.gz", *extra: str) -> List[str]:
    return ["stats", "--pet", f"{{w}}/{pet}", "--seg", f"{{w}}/{seg}", "-o", "{o}/s.csv", *extra]


CUT = r"ends early"
CASES = [
    # ---- writes: unknown formats, unwritable folders, non-regular files, inputs (full disks: below)
    Case("segment-unknown-extension", [*SEG[:3], "{o}/mask.xyz", *SEG[4:]], message=r"unknown image format \(\.xyz\)",
         check=_nothing_written),
    Case("suv-2d-format", [*SUV[:3], "{o}/suv.png"], message=r"cannot write image .*suv\.png: unknown image format"),
    Case("suv-two-file-format", [*SUV[:3], "{o}/suv.mhd"], message=r"unknown image format \(\.mhd\)"),
    Case("suv-json-not-json", [*SUV, "--json", "{o}/report.csv"], message=r"--json .*report\.csv: the report is JSON"),
    Case("stats-csv-named-json", [*STATS[:6], "{o}/s.json", "--json"], message=r"-o .*s\.json: stats writes CSV there.*--json PATH"),
    Case("stats-json-over-existing-csv", [*STATS[:6], "{o}/given.json", "--json", "--overwrite"],
         setup=lambda o: (o / "given.json").write_text("segment,label\n"), message=r"stats writes CSV there", check=_csv_kept),
    Case("stats-json-named-csv", [*STATS, "--json", "{o}/s2.csv"], message=r"--json .*s2\.csv: stats writes JSON there"),
    Case("stats-parent-is-file", [*STATS[:6], "{w}/a_file/s.csv"], message=r"cannot write .*a_file/s\.csv: .*a_file is a file, not a folder"),
    Case("suv-parent-is-file", [*SUV[:3], "{w}/a_file/sub/suv.nii.gz"], message=r"a_file is a file, not a folder"),
    Case("segment-parent-is-file", [*SEG[:3], "{w}/a_file/mask.nii.gz", *SEG[4:]], message=r"a_file is a file, not a folder"),
    Case("demo-parent-is-file", ["demo", "--out", "{w}/a_file/demo"], message=r"a_file is a file, not a folder"),
    Case("phantom-parent-is-file", ["phantom", "{w}/a_file/ds", "--cases", "1"], message=r"a_file is a file, not a folder"),
    Case("train-run-folder-is-file", [*TRAIN, "--out", "{w}/a_file"], message=r"cannot write in .*a_file: it is a file"),
    Case("stats-read-only-folder", [*STATS[:6], "{ro}/s.csv"], message=r"cannot write .*s\.csv: .*(read-only|[Pp]ermission denied)"),
    Case("suv-read-only-folder", [*SUV[:3], "{ro}/suv.nii.gz"], message=r"cannot write .*suv\.nii\.gz: .*(read-only|[Pp]ermission denied)"),
    Case("segment-read-only-folder", [*SEG[:3], "{ro}/mask.nii.gz", *SEG[4:]], message=r"(read-only|[Pp]ermission denied)"),
    Case("stats-overwrite-fifo", [*STATS, "--overwrite"], setup=lambda o: _fifo(o, "s.csv"), message=r"s\.csv is a fifo, not a regular file"),
    Case("suv-overwrite-fifo", [*SUV, "--overwrite"], setup=lambda o: _fifo(o, "suv.nii.gz"), message=r"is a fifo, not a regular file"),
    Case("segment-overwrite-fifo", [*SEG, "--overwrite"], setup=lambda o: _fifo(o, "mask.nii.gz"), message=r"is a fifo, not a regular file"),
    Case("stats-overwrite-folder", [*STATS, "--overwrite"], setup=lambda o: (o / "s.csv").mkdir(), message=r"s\.csv is a folder"),
    Case("suv-overwrite-folder", [*SUV, "--overwrite"], setup=lambda o: (o / "suv.nii.gz").mkdir(), message=r"is a folder"),
    Case("stats-overwrite-its-pet", ["stats", "--pet", "{o}/pet.nii.gz", "--seg", "{w}/seg.nii.gz", "-o", "{o}/pet_link.csv",
                                     "--overwrite"], setup=lambda o: (_copy_pet(o), _link_pet(o)),
         message=r"pet_link\.csv is an input of this command", check=_unchanged_copy),
    Case("stats-json-over-its-labels", [*STATS, "--labels", "{o}/given.json", "--json", "{o}/given.json", "--overwrite"],
         setup=lambda o: shutil.copy(WORK["root"] / "labels_ok.json", o / "given.json"), message=r"given\.json is an input of this command"),
    Case("segment-overwrite-its-input", [SEG[0], "{o}/pet.nii.gz", "-o", "{o}/pet.nii.gz", *SEG[4:], "--overwrite"],
         setup=_copy_pet, message=r"pet\.nii\.gz is an input of this command", check=_unchanged_copy),
    Case("segment-exists", SEG, setup=lambda o: (o / "mask.nii.gz").write_text("mine"), message=r"already exists; pass --overwrite"),
    # ---- reads: cut and corrupt files
    Case("segment-cut-60", _seg_image("pet_cut60.nii.gz"), message=rf"PET image .*pet_cut60\.nii\.gz {CUT}"),
    Case("segment-cut-99", _seg_image("pet_cut99.nii.gz"), message=rf"pet_cut99\.nii\.gz {CUT}"),
    Case("segment-cut-nii", _seg_image("pet_cut.nii"), message=rf"pet_cut\.nii {CUT}: \d+ of the \d+ bytes"),
    Case("segment-cut-mha", _seg_image("pet_cut.mha"), message=rf"pet_cut\.mha {CUT}"),
    Case("segment-cut-nrrd", _seg_image("pet_cut.nrrd"), message=rf"pet_cut\.nrrd {CUT}"),
    Case("segment-empty-file", _seg_image("empty.nii.gz"), message=rf"empty\.nii\.gz {CUT}: 0 bytes"),
    Case("segment-header-only", _seg_image("pet_header_only.nii"), message=rf"pet_header_only\.nii {CUT}"),
    Case("stats-cut-pet", _stats("pet_cut60.nii.gz"), message=rf"PET .*pet_cut60\.nii\.gz {CUT}"),
    Case("stats-cut-seg", _stats(seg="seg_cut.nii.gz"), message=rf"segmentation .*seg_cut\.nii\.gz {CUT}"),
    Case("stats-crc-seg", _stats(seg="seg_crc.nii.gz"), message=r"seg_crc\.nii\.gz fails its gzip check .*corrupt"),
    Case("train-cut-image", [*TRAIN[:2], "{w}/Dataset901_Cut", *TRAIN[3:], "--out", "{o}/run"], message=rf"case_000_0000\.nii\.gz {CUT}"),
    # ---- implausible values
    Case("segment-scaled-1e30", _seg_image("pet_x1e30.nii.gz"), message=r"values from .* to 7\.\d+e\+30, which no PET volume"),
    Case("segment-scaled-1e-30", _seg_image("pet_x1e-30.nii.gz"), message=r"to 7\.\d+e-30, which no PET volume"),
    Case("segment-scaled-1e12", _seg_image("pet_x1e12.nii.gz"), message=r"which no PET volume in SUV or Bq/mL holds"),
    Case("segment-scaled-1e-4-warns", _seg_image("pet_x1e-4.nii.gz"), code=0, message=r"unusual for a PET volume .*check its units"),
    Case("segment-scaled-5e7-warns", _seg_image("pet_x5e7.nii.gz"), code=0, message=r"to 3\.\d+e\+08, unusual for a PET volume"),
    Case("stats-suv-factor-0", [*STATS, "--suv-factor", "0"], message=r"SUV factor \(--suv-factor\) must be a positive finite number, got 0"),
    Case("stats-suv-factor-negative", [*STATS, "--suv-factor", "-1"], message=r"positive finite number, got -1"),
    Case("stats-suv-factor-nan", [*STATS, "--suv-factor", "nan"], message=r"positive finite number, got nan"),
    Case("stats-suv-factor-inf", [*STATS, "--suv-factor", "inf"], message=r"positive finite number, got inf"),
    Case("stats-nan-in-organ", _stats("pet_nan_in_organ.nii.gz"),
         message=r"PET .*pet_nan_in_organ\.nii\.gz has 1 NaN or infinite voxel\(s\) inside it of segment liver \(label 1\), first at voxel \(i, j, k\) = \(16, 14, 12\)"),
    Case("stats-inf-in-organ", _stats("pet_inf_in_organ.nii.gz"), message=r"1 NaN or infinite voxel\(s\) inside it of segment liver"),
    Case("stats-nan-near-organ", _stats("pet_nan_near_organ.nii.gz"), message=r"within the 1 mL SUVpeak sphere of its voxels of segment liver"),
    Case("stats-nan-far-is-fine", _stats("pet_nan_far.nii.gz"), code=0, message=r"",
         check=lambda o: _assert(all(c not in (o / "s.csv").read_text().lower() for c in ("nan", "inf")))),
    Case("segment-nan-weights", _seg_model("nan_weights"), message=r"nan_weights\.pt: 1 weight tensor\(s\) hold NaN or infinite values \(mask_decoder\.iou_token\.weight\).*diverged"),
    Case("segment-inf-weights", _seg_model("inf_weights"), message=r"inf_weights\.pt: 1 weight tensor\(s\) hold NaN or infinite"),
    Case("segment-click-on-air-warns", [*_seg_model("empty_masks")[:-1], "0,0,0"], code=0, message=r"does not hold the positive point"),
    # ---- ambiguity
    Case("stats-labels-two-names", _stats("pet.nii.gz", "seg.nii.gz", "--labels", "{w}/labels_two_names.json"),
         message=r"labels_two_names\.json gives label value 1 two names: liver and spleen"),
    Case("stats-labels-one-name-twice", _stats("pet.nii.gz", "seg.nii.gz", "--labels", "{w}/labels_one_name_twice.json"),
         message=r"gives the name liver to label values 1 and 2"),
    Case("stats-labels-repeated-key", _stats("pet.nii.gz", "seg.nii.gz", "--labels", "{w}/labels_repeated_key.json"),
         message=r"labels_repeated_key\.json gives the key 'liver' twice"),
    Case("stats-labels-negative", _stats("pet.nii.gz", "seg.nii.gz", "--labels", "{w}/labels_negative.json"),
         message=r"odd has the negative label value -3"),
    Case("stats-labels-absent-listed", _stats("pet.nii.gz", "seg.nii.gz", "--labels", "{w}/labels_absent.json"), code=0,
         message=r"lacks 1 named label\(s\), given empty rows: kidney_left \(7\)", check=_empty_row_for_absent_label),
    Case("segment-contradicting-points", [*SEG, "--negative", "16,14,12"], message=r"a positive and a negative point on the same voxel"),
    # ---- stored checkpoint fields
    Case("checkpoint-preprocessing-unknown-key", _seg_model("pre_unknown_key"), message=r"pre_unknown_key\.pt: preprocessing has unknown field\(s\) flip"),
    Case("checkpoint-crop-size", _seg_model("pre_crop_size"), message=r"preprocessing\.crop_size 32 does not fit the tiny network, whose input is 64"),
    Case("checkpoint-spacing-zero", _seg_model("pre_spacing_zero"), message=r"preprocessing\.spacing must be three positive finite numbers"),
    Case("checkpoint-spacing-negative", _seg_model("pre_spacing_negative"), message=r"preprocessing\.spacing must be three positive"),
    Case("checkpoint-spacing-nan", _seg_model("pre_spacing_nan"), message=r"preprocessing\.spacing must be three positive finite"),
    Case("checkpoint-spacing-two-values", _seg_model("pre_spacing_two"), message=r"preprocessing\.spacing must be three"),
    Case("checkpoint-preprocessing-list", _seg_model("pre_not_mapping"), message=r"preprocessing must be a mapping"),
    Case("checkpoint-model-config-type", _seg_model("config_type"), message=r"config_type\.pt: model_config img_size must be a whole number, got 'big'"),
    Case("checkpoint-model-config-size", _seg_model("config_size"), message=r"model_config\.img_size 60 must be .* a multiple of patch_size 8"),
    Case("checkpoint-model-config-text", _seg_model("config_not_mapping"), message=r"model_config must be a mapping"),
    Case("checkpoint-metadata-list", _seg_model("metadata_list"), message=r"metadata_list\.pt: metadata must be a mapping, got list"),
    Case("checkpoint-mask-threshold", _seg_model("threshold"), message=r"threshold\.pt: mask_threshold must be a probability"),
    # ---- DICOM tags
    Case("suv-rescale-slope-text", ["suv", "{w}/dicom_slope", "-o", "{o}/suv.nii.gz"],
         message=r"dicom_slope/slice_001\.dcm: RescaleSlope \(0028,1053\) is '0\.1x', not a decimal number"),
    Case("suv-rescale-intercept-text", ["suv", "{w}/dicom_intercept", "-o", "{o}/suv.nii.gz"],
         message=r"slice_001\.dcm: RescaleIntercept \(0028,1052\) is 'ab', not a decimal number"),
    Case("suv-patient-weight-text", ["suv", "{w}/dicom_weight", "-o", "{o}/suv.nii.gz"],
         message=r"slice_000\.dcm: PatientWeight \(0010,1030\) is '70kg', not a number"),
    Case("suv-dose-text", ["suv", "{w}/dicom_dose", "-o", "{o}/suv.nii.gz"],
         message=r"RadionuclideTotalDose \(0018,1074\) is '37000000x', not a number"),
    Case("suv-weight-option-nan", [*SUV, "--weight", "nan"], message=r"--weight must be a finite number"),
    # ---- images that are not 3D volumes, given to stats
    Case("stats-png-pet", _stats("pet.png"), message=r"PET .*pet\.png is 2D \(size \(32, 28\)\); a 3D volume is needed"),
    Case("stats-png-seg", _stats(seg="pet.png"), message=r"segmentation .*pet\.png is 2D"),
    Case("stats-4d-pet", _stats("pet_4d.nii.gz"), message=r"PET .*pet_4d\.nii\.gz is 4D .*pick one frame"),
    Case("stats-4d-seg", _stats(seg="seg_4d.nii.gz"), message=r"segmentation .*seg_4d\.nii\.gz is 4D"),
    Case("stats-vector-pet", _stats("pet_vector.nrrd"), message=r"pet_vector\.nrrd has 3 components per voxel"),
    Case("stats-float-seg", _stats(seg="seg_float.nii.gz"), message=r"seg_float\.nii\.gz must be an integer label image"),
    Case("segment-4d", _seg_image("pet_4d.nii.gz"), message=r"pet_4d\.nii\.gz is 4D"),
    # ---- training options
    Case("train-max-steps-0", [*TRAIN, "--out", "{o}/run", "--max-steps", "0"], message=r"max_steps must be at least 1, got 0",
         check=_nothing_written),
    Case("train-max-steps-negative", [*TRAIN, "--out", "{o}/run", "--max-steps", "-2"], message=r"max_steps must be at least 1, got -2"),
    Case("train-epochs-0", [*TRAIN, "--out", "{o}/run", "--epochs", "0"], message=r"epochs must be at least 1, got 0"),
    Case("train-resume-a-model", [*TRAIN, "--out", "{o}/run", "--resume"],
         setup=lambda o: (o / "run").mkdir() or shutil.copy(WORK["root"] / "tiny.pt", o / "run" / "last.pt"),
         message=r"last\.pt is not a training state \(no optimizer"),
]


def _assert(condition: bool) -> None:
    assert condition


@pytest.fixture(scope="module")
def read_only_folder(tmp_path_factory) -> Path:
    """A folder this user cannot write: a chmod 555 folder, or /sys where the user ignores modes (root)."""
    folder = tmp_path_factory.mktemp("read_only")
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            (candidate / "probe").write_text("x")
        except OSError:
            return candidate
        (candidate / "probe").unlink()
    raise AssertionError("no read-only folder available")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_catalogue(case: Case, work: Path, read_only_folder: Path, tmp_path: Path, capsys, caplog):
    WORK["root"] = work
    before = _checksums(work)
    if case.setup:
        case.setup(tmp_path)
    argv = [arg.format(w=work, o=tmp_path, ro=read_only_folder) for arg in case.argv]
    caplog.set_level(logging.WARNING)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert code == case.code, captured.err
    assert "Traceback" not in captured.err
    if case.code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"seganypet {argv[0]}: error: "), lines
        assert re.search(case.message, lines[0]), lines[0]
    else:
        warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
        assert re.search(case.message, "\n".join(warnings)) if case.message else True, warnings
    assert _checksums(work) == before  # no input changed
    assert not list(tmp_path.rglob(".tmp-*")) and not list(work.rglob(".tmp-*"))
    if case.check:
        case.check(tmp_path)


def test_the_catalogue_covers_the_issue():
    """At least 60 cases, every *Why* bullet of issue 27 among them."""
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    ids = " ".join(c.id for c in CASES)
    for topic in ("cut-60", "crc", "scaled-1e30", "scaled-1e-30", "suv-factor-0", "suv-factor-nan", "nan-in-organ",
                  "nan-weights", "click-on-air", "two-names", "labels-absent", "contradicting-points",
                  "json-over-existing-csv", "overwrite-fifo", "overwrite-its-input", "preprocessing-unknown-key",
                  "crop-size", "spacing-zero", "spacing-negative", "rescale-slope-text", "png-pet", "4d-pet",
                  "read-only-folder", "parent-is-file", "unknown-extension", "max-steps-0"):
        assert topic in ids, topic


# ------------------------------------------------------------------------------------------ full disk
def _limited(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        import resource  # POSIX only, like the file-size limit

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _run_limited(argv: List[str], limit: int, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": str(cwd),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "SegAnyPETLib.cli", "-q", *argv], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd, preexec_fn=_limited(limit))


def test_python_ignores_sigxfsz_so_a_size_limit_is_an_error():
    """With SIGXFSZ ignored (CPython does so at start), a write past RLIMIT_FSIZE fails with EFBIG
    instead of killing the process: the full-disk cases below rely on it."""
    result = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGXFSZ))"],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == str(signal.SIG_IGN)


FULL_DISK = [
    ("segment", SEG, "mask.nii.gz", 64),
    ("suv", SUV, "suv.nii.gz", 64),
    ("stats", [*STATS, "--json"], "s.csv", 64),
    ("train", ["train", "--data", "{phantoms}", "--arch", "tiny", "--batch-size", "1", "--accumulation", "1",
               "--hq-cases", "2", "--num-workers", "0", "--max-steps", "1", "--set", "click_iterations=1",
               "--set", "lq_click_iterations=1", "--set", "n_prompts=2", "--set", "min_target_voxels=20",
               "--quiet-progress", "--out", "{o}/run"], "run/last.pt", 1 << 20),
]


@pytest.mark.parametrize("command, argv, output, limit", FULL_DISK, ids=[f[0] for f in FULL_DISK])
def test_full_disk_is_one_line_and_leaves_no_file(command, argv, output, limit, work, phantom_dataset, tmp_path):
    argv = [arg.format(w=work, o=tmp_path, phantoms=phantom_dataset) for arg in argv]
    result = _run_limited(argv, limit, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"seganypet {command}: error: cannot write .*{re.escape(output)}: File too large \(EFBIG\)", lines[0])
    assert not (tmp_path / output).exists() and not list(tmp_path.rglob(".tmp-*"))
    if command != "train":
        assert "wrote" not in result.stdout
