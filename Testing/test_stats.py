"""Per-segment SUV statistics: SUVpeak against brute force, volumes, TLG, positions, CLI, PERCIST."""
from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import SimpleITK as sitk

from SegAnyPETLib import cli
from SegAnyPETLib.errors import SegAnyPETError
from SegAnyPETLib.percist import reference_regions, reference_statistics
from SegAnyPETLib.stats import COLUMNS, benchmark_statistics, label_image_statistics, segment_statistics, statistics_table
from SegAnyPETLib.suv_peak import SUVPEAK_RADIUS_MM, SUVPEAK_SUBGRID_MM, SUVPEAK_SUBSAMPLES, suv_peak_kernel
from SegAnyPETLib.voxel_grid import geometry_from_ijk_to_ras

DIRECTION = tuple(np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float).ravel())  # a permuted, still right-handed frame


def brute_force_peak(suv: np.ndarray, mask: np.ndarray, spacing) -> float:
    """Sphere mean at every segment voxel, each image voxel weighted by its sub-grid points inside."""
    counts = [max(SUVPEAK_SUBSAMPLES, math.ceil(step / SUVPEAK_SUBGRID_MM)) for step in spacing]
    fractions = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]  # x, y, z sub-grid offsets in voxels
    best = -np.inf
    for cz, cy, cx in np.argwhere(mask):
        total = weight = 0.0
        for z, y, x in itertools.product(*(range(n) for n in suv.shape)):
            dx = (x - cx + fractions[0]) * spacing[0]
            dy = (y - cy + fractions[1]) * spacing[1]
            dz = (z - cz + fractions[2]) * spacing[2]
            if min(np.abs(dx).min(), np.abs(dy).min(), np.abs(dz).min()) > SUVPEAK_RADIUS_MM:
                continue  # not necessary for the result, only for speed: no sub-grid point can be inside
            inside = (dz[:, None, None] ** 2 + dy[None, :, None] ** 2 + dx[None, None, :] ** 2) <= SUVPEAK_RADIUS_MM**2
            total += inside.mean() * suv[z, y, x]
            weight += inside.mean()
        best = max(best, total / weight)
    return best


@pytest.mark.parametrize("spacing", [(4.0, 4.0, 4.0), (2.0, 3.0, 5.0), (1.5, 1.5, 3.27)])
def test_kernel_holds_one_millilitre(spacing):
    kernel = suv_peak_kernel(spacing)
    assert kernel.sum() * np.prod(spacing) == pytest.approx(1000.0, rel=5e-3)
    assert np.allclose(kernel, kernel[::-1, ::-1, ::-1])
    assert kernel[tuple(s // 2 for s in kernel.shape)] == 1.0


@pytest.mark.parametrize("seed, spacing", [(0, (2.0, 3.0, 5.0)), (1, (3.0, 2.0, 2.5)), (2, (4.0, 4.0, 4.0))])
def test_suv_peak_matches_brute_force(seed, spacing):
    rng = np.random.default_rng(seed)
    suv = rng.gamma(2.0, 1.0, size=(6, 7, 8))
    masks = {
        "blob": rng.random(suv.shape) < 0.15,
        "corner": np.zeros(suv.shape, bool),  # touches three image borders
        "single": np.zeros(suv.shape, bool),
    }
    masks["corner"][:2, :2, :2] = True
    masks["single"][3, 3, 3] = True
    rows = segment_statistics(suv, masks, spacing)
    for row, (name, mask) in zip(rows, masks.items()):
        assert row.segment == name
        assert row.suv_peak == pytest.approx(brute_force_peak(suv, mask, spacing), rel=1e-9)


def test_border_rule_and_uniform_image():
    suv = np.full((5, 5, 5), 2.5)
    mask = np.zeros(suv.shape, bool)
    mask[0, 0, 0] = True
    row = segment_statistics(suv, {"corner": mask}, (4.0, 4.0, 4.0))[0]
    assert row.suv_peak == pytest.approx(2.5)  # the part of the sphere outside the image is not zero


def test_basic_statistics_volume_tlg_and_positions():
    rng = np.random.default_rng(3)
    suv = rng.uniform(0.5, 8.0, size=(10, 12, 14))
    mask = np.zeros(suv.shape, bool)
    mask[2:7, 3:9, 4:12] = True
    spacing, origin = (2.0, 2.5, 3.0), (-100.0, 20.0, 5.0)
    row = segment_statistics(suv, {"box": mask}, spacing, origin, DIRECTION, suv_factor=2.0)[0]
    values = 2.0 * suv[mask]
    assert row.voxel_count == mask.sum() == 240
    assert row.volume_ml == pytest.approx(240 * 2.0 * 2.5 * 3.0 / 1000)
    assert (row.suv_min, row.suv_max) == pytest.approx((values.min(), values.max()))
    assert row.suv_mean == pytest.approx(values.mean())
    assert row.suv_sd == pytest.approx(values.std())
    assert row.tlg == pytest.approx(values.mean() * row.volume_ml)
    assert row.suv_min <= row.suv_mean <= row.suv_peak <= row.suv_max
    z, y, x = np.unravel_index(np.argmax(np.where(mask, suv, -1)), suv.shape)
    assert row.suv_max_index_ijk == (x, y, z)
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing(spacing), image.SetOrigin(origin), image.SetDirection(DIRECTION)
    assert row.suv_max_position_lps == pytest.approx(image.TransformIndexToPhysicalPoint((int(x), int(y), int(z))))


def test_overlapping_and_empty_segments():
    rng = np.random.default_rng(4)
    suv = rng.uniform(0, 5, size=(8, 9, 10))
    a = np.zeros(suv.shape, bool)
    a[1:6, 1:6, 1:6] = True
    b = np.zeros(suv.shape, bool)
    b[3:8, 4:9, 2:9] = True
    together = segment_statistics(suv, {"a": a, "b": b, "empty": np.zeros(suv.shape, bool)}, (3.0, 3.0, 3.0))
    alone = [segment_statistics(suv, {name: mask}, (3.0, 3.0, 3.0))[0] for name, mask in (("a", a), ("b", b))]
    for joint, single in zip(together, alone):
        for key, value in asdict(joint).items():
            assert value == (pytest.approx(asdict(single)[key], rel=1e-12) if isinstance(value, float) else asdict(single)[key])
    assert together[2].voxel_count == 0 and math.isnan(together[2].suv_peak) and together[2].suv_max_index_ijk is None
    table = statistics_table(together).splitlines()
    assert table[0].split(",")[:4] == ["segment", "label", "voxels", "volume [mL]"]
    assert table[3].startswith("empty,,0,0,,")


def _images(suv: np.ndarray, labels: np.ndarray, spacing=(3.0, 3.0, 3.0)):
    pet = sitk.GetImageFromArray(suv.astype(np.float32))
    pet.SetSpacing(spacing)
    pet.SetOrigin((10.0, -5.0, 2.0))
    seg = sitk.GetImageFromArray(labels.astype(np.uint8))
    seg.CopyInformation(pet)
    return pet, seg


def test_label_image_matches_masks_and_checks_grid_and_names():
    rng = np.random.default_rng(5)
    suv = rng.uniform(0, 5, size=(10, 11, 12)).astype(np.float32)
    labels = np.zeros(suv.shape, np.uint8)
    labels[1:5, 2:6, 3:9] = 1
    labels[6:9, 5:10, 1:4] = 6
    pet, seg = _images(suv, labels)
    rows = label_image_statistics(pet, seg)
    assert [(r.segment, r.label) for r in rows] == [("liver", 1), ("aorta", 6)]  # SegAnyPET names by default
    masks = segment_statistics(suv, {"liver": labels == 1, "aorta": labels == 6}, pet.GetSpacing(), pet.GetOrigin())
    assert [r.suv_peak for r in rows] == pytest.approx([r.suv_peak for r in masks])
    assert [r.suv_max_position_lps for r in rows] == [r.suv_max_position_lps for r in masks]
    with pytest.raises(SegAnyPETError, match=r"label values \[6\].*no name"):
        label_image_statistics(pet, seg, {1: "tumour"})
    moved = sitk.Image(seg)
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(SegAnyPETError, match="not on the PET grid.*origin"):
        label_image_statistics(pet, moved)


def test_geometry_from_slicer_ijk_to_ras():
    image = sitk.Image(4, 5, 6, sitk.sitkFloat32)
    image.SetSpacing((2.0, 3.0, 4.0)), image.SetOrigin((10.0, 20.0, 30.0)), image.SetDirection(DIRECTION)
    lps = np.array(image.GetDirection()).reshape(3, 3) * image.GetSpacing()
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = np.diag([-1, -1, 1]) @ lps
    ijk_to_ras[:3, 3] = np.diag([-1, -1, 1]) @ image.GetOrigin()
    spacing, origin, direction = geometry_from_ijk_to_ras(ijk_to_ras)
    assert spacing == pytest.approx(image.GetSpacing())
    assert origin == pytest.approx(image.GetOrigin())
    assert direction == pytest.approx(image.GetDirection())


def _phantom(liver_radii=(12, 12, 15)):
    """Liver on the patient's right (low LPS x), aorta tube behind, (z, y, x) 3 mm voxels."""
    shape = (60, 64, 64)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    liver = ((z - 30) / liver_radii[0]) ** 2 + ((y - 30) / liver_radii[1]) ** 2 + ((x - 20) / liver_radii[2]) ** 2 <= 1
    aorta = np.broadcast_to((y - 45) ** 2 + (x - 32) ** 2 <= 9, shape) & ~liver
    return liver, aorta


def test_percist_reference_regions():
    liver, aorta = _phantom()
    spacing = (3.0, 3.0, 3.0)
    regions = reference_regions({"liver": liver, "aorta": aorta}, spacing)
    sphere, cylinder = regions
    assert sphere.name.startswith("PERCIST liver") and not sphere.warnings
    assert np.all(liver[sphere.mask])
    assert sphere.mask.sum() * 27 / 1000 == pytest.approx(4 / 3 * math.pi * 1.5**3, rel=0.1)  # 3 cm sphere
    liver_x = np.argwhere(liver)[:, 2]
    assert sphere.centre_ijk[0] <= np.median(liver_x)  # right lobe: low LPS x
    assert np.all(aorta[cylinder.mask]) and not cylinder.warnings
    ks = np.argwhere(cylinder.mask)[:, 0]
    assert (ks.max() - ks.min() + 1) * 3.0 == pytest.approx(21.0)  # 20 mm long, voxel centres
    suv = np.where(liver, 2.0, 0.5) + np.where(aorta, 1.0, 0.0)
    rows = reference_statistics(suv, regions, spacing)
    assert rows[0].suv_mean == pytest.approx(2.0) and rows[0].percist_threshold == pytest.approx(3.0)
    assert rows[1].suv_mean == pytest.approx(1.5) and rows[1].percist_threshold == pytest.approx(3.0)


def test_percist_reference_regions_small_liver_and_missing_organs():
    liver, _aorta = _phantom(liver_radii=(3, 3, 3))
    (sphere,) = reference_regions({"liver": liver}, (3.0, 3.0, 3.0))
    assert sphere.warnings and np.all(liver[sphere.mask])
    with pytest.raises(SegAnyPETError, match="'liver' or 'aorta'"):
        reference_regions({"spleen": liver}, (3.0, 3.0, 3.0))


@pytest.fixture
def only_quantification_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("suv", "stats"))


def test_cli_writes_csv_and_json(tmp_path, capsys, only_quantification_commands):
    liver, aorta = _phantom()
    labels = np.where(liver, 1, 0) + np.where(aorta, 2, 0)
    suv = np.where(liver, 2.0, 0.5) + np.where(aorta, 1.0, 0.0)
    pet, seg = _images(suv, labels)
    sitk.WriteImage(pet, str(tmp_path / "pet.nii.gz"))
    sitk.WriteImage(seg, str(tmp_path / "seg.nii.gz"))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1, "aorta": 2}}))
    output = tmp_path / "stats.csv"
    arguments = ["stats", "--pet", str(tmp_path / "pet.nii.gz"), "--seg", str(tmp_path / "seg.nii.gz"), "-o", str(output)]
    assert cli.main(arguments + ["--labels", str(tmp_path / "dataset.json"), "--json", "--reference-regions", "--suv-factor", "2"]) == 0
    assert "SUVpeak" in capsys.readouterr().out
    with output.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(COLUMNS)
    assert [row["segment"] for row in rows] == ["liver", "aorta", "PERCIST liver reference", "PERCIST blood pool reference"]
    assert float(rows[0]["SUVmean [g/mL]"]) == pytest.approx(4.0)
    assert float(rows[0]["volume [mL]"]) == pytest.approx(liver.sum() * 0.027)
    assert float(rows[2]["PERCIST threshold [g/mL]"]) == pytest.approx(6.0)
    content = json.loads((tmp_path / "stats.json").read_text())
    assert content["suv_factor"] == 2.0 and len(content["reference_regions"]) == 2
    assert "1 cm3 sphere" in content["suv_peak_definition"]

    assert cli.main(arguments) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    (tmp_path / "v1.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver"}}))
    assert cli.main(arguments + ["--overwrite", "--labels", str(tmp_path / "v1.json")]) == 2
    assert "label values [2]" in capsys.readouterr().err
    other = sitk.Image(seg)
    other.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(other, str(tmp_path / "other.nii.gz"))
    assert cli.main(["stats", "--pet", str(tmp_path / "pet.nii.gz"), "--seg", str(tmp_path / "other.nii.gz"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "not on the PET grid" in capsys.readouterr().err


def test_benchmark_function_runs():
    result = benchmark_statistics(shape=(30, 20, 20), segments=3)
    assert result["segments"] == 3 and result["label_image_s"] > 0 and result["masks_s"] > 0


def test_non_finite_voxels_and_impossible_suv_factors_are_refused():
    suv = np.ones((12, 12, 12))
    mask = np.zeros_like(suv, dtype=bool)
    mask[4:7, 4:7, 4:7] = True
    inside, near, far = suv.copy(), suv.copy(), suv.copy()
    inside[5, 5, 6], near[5, 5, 8], far[0, 0, 11] = np.nan, np.inf, np.nan
    with pytest.raises(SegAnyPETError, match=r"1 NaN or infinite voxel\(s\) inside it of segment a, first at voxel \(i, j, k\) = \(6, 5, 5\)"):
        segment_statistics(inside, {"a": mask}, (4.0, 4.0, 4.0))
    with pytest.raises(SegAnyPETError, match="within the 1 mL SUVpeak sphere"):
        segment_statistics(near, {"a": mask}, (4.0, 4.0, 4.0))
    (row,) = segment_statistics(far, {"a": mask}, (4.0, 4.0, 4.0))  # out of every sphere: read by no statistic
    assert row.suv_mean == 1.0 and row.suv_peak == pytest.approx(1.0)
    for factor in (0, -1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(SegAnyPETError, match="positive finite number"):
            segment_statistics(suv, {"a": mask}, (4.0, 4.0, 4.0), suv_factor=factor)


def test_named_labels_absent_from_the_segmentation_get_empty_rows(caplog):
    pet, seg = _images(np.ones((8, 8, 8)), np.pad(np.ones((2, 2, 2), np.uint8), 3))
    rows = label_image_statistics(pet, seg, {1: "liver", 5: "spleen"})
    assert [(r.segment, r.voxel_count) for r in rows] == [("liver", 8), ("spleen", 0)]
    assert "lacks 1 named label(s), given empty rows: spleen (5)" in caplog.text
