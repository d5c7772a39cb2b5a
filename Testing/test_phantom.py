"""Synthetic whole-body FDG-PET phantoms: determinism, geometry, anatomy, uptake, noisy labels, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SegAnyPETLib.cli import main
from SegAnyPETLib.errors import SegAnyPETError
from SegAnyPETLib.labels import LABELS, SEEN_ORGANS
from SegAnyPETLib.metrics import dice
from SegAnyPETLib.phantom import generate_case
from SegAnyPETLib.phantom.anatomy import build_anatomy
from SegAnyPETLib.phantom.body import Patient, Tissue
from SegAnyPETLib.phantom.noisy_labels import label_dice, simulate_noisy_labels
from SegAnyPETLib.phantom.scanner import ScannerModel, acquire, bed_sensitivity
from SegAnyPETLib.phantom.uptake import UPTAKE, sample_suv, uptake_table_markdown

# Two default-geometry cases (one of each sex), generated once for the module.
MALE_SEED, FEMALE_SEED = 5, 0


@pytest.fixture(scope="module")
def cases():
    generated = {seed: generate_case(seed) for seed in (MALE_SEED, FEMALE_SEED)}
    assert generated[MALE_SEED].info["sex"] == "M" and generated[FEMALE_SEED].info["sex"] == "F"
    return generated


def arrays(case):
    return (sitk.GetArrayFromImage(case.image), sitk.GetArrayFromImage(case.label),
            sitk.GetArrayFromImage(case.noisy_label))


def test_same_seed_same_case_and_other_seed_differs(cases):
    again = generate_case(FEMALE_SEED)
    for a, b in zip(arrays(again), arrays(cases[FEMALE_SEED])):
        np.testing.assert_array_equal(a, b)
    assert again.info == cases[FEMALE_SEED].info
    assert again.image.GetOrigin() == cases[FEMALE_SEED].image.GetOrigin()
    other = arrays(cases[MALE_SEED])[1]
    assert other.shape != arrays(cases[FEMALE_SEED])[1].shape or not np.array_equal(other, arrays(cases[FEMALE_SEED])[1])


def test_default_geometry_is_pets5k_like(cases):
    for case in cases.values():
        for image in (case.image, case.label, case.noisy_label):
            assert image.GetSpacing() == pytest.approx((4.07, 4.07, 3.0))
            assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
            assert image.GetOrigin() == case.image.GetOrigin() and image.GetSize() == case.image.GetSize()
        assert case.image.GetPixelID() == sitk.sitkFloat32
        assert case.label.GetPixelID() == sitk.sitkUInt8 and case.noisy_label.GetPixelID() == sitk.sitkUInt8
        nx, ny, nz = case.image.GetSize()
        assert (nx, ny) == (160, 112)
        assert 850 <= nz * 3.0 <= 1150  # skull/vertex to mid-thigh


def test_organs_in_anatomical_places(cases):
    for case in cases.values():
        label = arrays(case)[1]
        centre = {}
        for name in ("liver", "spleen", "kidney_left", "kidney_right", "heart", "brain", "urinary_bladder",
                     "lung_upper_lobe_right", "lung_lower_lobe_right"):
            index = np.argwhere(label == LABELS[name]).mean(axis=0)[::-1]  # (x, y, z) index
            centre[name] = np.array(case.label.TransformContinuousIndexToPhysicalPoint(index.tolist()))
        x, y, z = 0, 1, 2  # LPS: +x patient left, +y posterior, +z superior
        assert centre["liver"][x] < 0 < centre["spleen"][x]
        assert centre["kidney_right"][x] < 0 < centre["kidney_left"][x]
        assert centre["kidney_left"][y] > centre["liver"][y]  # retroperitoneal
        assert centre["brain"][z] > centre["heart"][z] > centre["liver"][z] > centre["kidney_left"][z]
        assert centre["kidney_left"][z] > centre["urinary_bladder"][z]
        assert centre["lung_upper_lobe_right"][z] > centre["lung_lower_lobe_right"][z]
        assert centre["lung_lower_lobe_right"][y] > centre["lung_upper_lobe_right"][y]  # posterior


def test_organ_volumes_plausible_and_sex_specific(cases):
    ml = 4.07 * 4.07 * 3.0 / 1000
    bounds = {"liver": (800, 2600), "spleen": (60, 400), "kidney_left": (70, 300), "kidney_right": (70, 300),
              "heart": (250, 1100), "aorta": (80, 450), "urinary_bladder": (30, 600), "brain": (500, 1700)}
    for seed, case in cases.items():
        label = arrays(case)[1]
        volume = {name: (label == value).sum() * ml for name, value in LABELS.items()}
        for name, (low, high) in bounds.items():
            assert low <= volume[name] <= high, (seed, name, volume[name])
        lungs = sum(v for n, v in volume.items() if n.startswith("lung_"))
        assert 2500 <= lungs <= 7500
        for lobe in (n for n in LABELS if n.startswith("lung_")):
            assert volume[lobe] > 50, (seed, lobe)
        assert (volume["prostate"] > 10) == (case.info["sex"] == "M")
        assert ("prostate" in case.info["labels_present"]) == (case.info["sex"] == "M")


def test_suv_ranges_like_fdg(cases):
    for case in cases.values():
        image, label, _ = arrays(case)

        def median(name):
            return float(np.median(image[label == LABELS[name]]))

        assert 1.5 <= median("liver") <= 3.5
        assert median("spleen") < median("liver") * 1.05
        assert median("lung_upper_lobe_left") < 1.0 and median("lung_lower_lobe_right") < 1.2
        assert median("urinary_bladder") > 4.0
        assert median("brain") > median("liver")
        assert 1.0 <= median("aorta") <= 2.6
        assert image.min() >= 0.0 and image[label == 0].mean() < 1.0
        for suv in case.info["suv"].values():
            assert 0.0 <= suv <= 60.0
        for lesion in case.info["lesions"]:
            assert 5.0 <= lesion["diameter_mm"] <= 30.0 and 3.0 <= lesion["suv"] <= 20.0


def test_seen_organs_have_visible_boundaries(cases):
    """The organs the model learns must stand out from the tissue right around them."""
    from scipy import ndimage

    for case in cases.values():
        image, label, _ = arrays(case)
        for name in SEEN_ORGANS:
            organ = label == LABELS[name]
            core = ndimage.binary_erosion(organ, iterations=2)
            ring = ndimage.binary_dilation(organ, iterations=3) & ~ndimage.binary_dilation(organ, iterations=1)
            contrast = abs(np.median(image[core]) - np.median(image[ring])) / np.median(image[core])
            assert contrast > 0.15, (name, contrast)


def test_sampled_uptake_within_literature_ranges():
    rng = np.random.default_rng(3)
    for _ in range(50):
        suv = sample_suv(rng)
        assert 1.8 <= suv[Tissue.LIVER] <= 3.0
        assert suv[Tissue.SPLEEN] < suv[Tissue.LIVER]
        assert 1.1 <= suv[Tissue.BLOOD] <= 2.5
        assert 1.5 <= suv[Tissue.MYOCARDIUM] <= 15.0
        assert 0.3 <= suv[Tissue.LUNG] <= 0.8 and 6.0 <= suv[Tissue.GRAY_MATTER] <= 12.0
        assert 5.0 <= suv[Tissue.URINE] <= 60.0 and 1.0 <= suv[Tissue.MARROW] <= 2.5
    assert all(u.low <= u.high for u in UPTAKE.values())


def test_docs_show_the_uptake_table_in_use():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "phantoms.md").read_text(encoding="utf-8")
    assert uptake_table_markdown() in docs


def test_scanner_blurs_and_adds_count_dependent_noise():
    rng = np.random.default_rng(0)
    activity = np.zeros((60, 40, 40), np.float32)
    activity[10:50, 5:35, 5:35] = 1.0
    activity[10:50, 5:35, 20:35] = 9.0
    model = ScannerModel(psf_fwhm_mm=6.0, liver_cov=0.1, noise_fwhm_mm=8.0)
    image = acquire(activity, (4.0, 4.0, 3.0), model, reference_suv=1.0, rng=rng)
    cold, hot = image[25:35, 12:28, 8:14], image[25:35, 12:28, 25:32]
    assert hot.std() > 2 * cold.std()  # variance grows with the activity
    assert 0.05 < cold.std() / cold.mean() < 0.2
    edge = image[30, 20, 17:23]
    assert np.all(np.diff(edge) > -0.5) and 1.5 < edge[2] < 8.5  # partial volume across the edge
    assert image[30, 20, 0] == 0.0 and image.min() >= 0.0
    sensitivity = bed_sensitivity(300, 3.0, model)
    assert sensitivity.min() < 0.9 * np.median(sensitivity)  # bed junctions and ends are noisier


def test_noisy_labels_dice_in_range_and_severity(cases):
    scores = []
    for case in cases.values():
        organs = {n: d for n, d in case.info["noisy_label_dice"].items() if n != "lesion"}
        scores += list(organs.values())
        _, label, noisy = arrays(case)
        assert organs["liver"] == pytest.approx(dice(label == 1, noisy == 1), abs=1e-3)
        assert not np.array_equal(label, noisy)
    assert 0.75 <= np.mean(scores) <= 0.95
    assert np.median(scores) < 0.99
    label = arrays(cases[FEMALE_SEED])[1]
    spacing = (4.07, 4.07, 3.0)
    mild = simulate_noisy_labels(label, spacing, np.random.default_rng(1), severity=0.1)
    harsh = simulate_noisy_labels(label, spacing, np.random.default_rng(1), severity=1.0)
    assert np.mean(list(label_dice(label, mild).values())) > np.mean(list(label_dice(label, harsh).values()))
    np.testing.assert_array_equal(simulate_noisy_labels(label, spacing, np.random.default_rng(1), 0.0), label)
    with pytest.raises(SegAnyPETError, match="severity"):
        simulate_noisy_labels(label, spacing, np.random.default_rng(1), severity=1.5)


def test_smaller_grid_keeps_anatomy_in_millimetres():
    case = generate_case(11, spacing=(8.0, 8.0, 6.0), in_plane=(80, 56), noisy=False)
    label = sitk.GetArrayFromImage(case.label)
    assert case.image.GetSpacing() == (8.0, 8.0, 6.0) and case.image.GetSize()[:2] == (80, 56)
    liver_ml = (label == LABELS["liver"]).sum() * 8 * 8 * 6 / 1000
    assert 800 <= liver_ml <= 2600
    np.testing.assert_array_equal(label, sitk.GetArrayFromImage(case.noisy_label))


def test_patients_vary():
    rng = np.random.default_rng(0)
    patients = [Patient.sample(rng) for _ in range(40)]
    assert {p.sex for p in patients} == {"M", "F"} and {p.arms for p in patients} == {"up", "down"}
    assert np.std([p.height for p in patients]) > 0.02 and np.std([p.fat for p in patients]) > 3
    anatomy = build_anatomy(np.random.default_rng(2), spacing=(8.0, 8.0, 6.0), in_plane=(80, 56))
    assert set(np.unique(anatomy.tissue)) >= {Tissue.LIVER, Tissue.MYOCARDIUM, Tissue.RENAL_PELVIS, Tissue.MARROW}


def test_cli_writes_nnunet_dataset_with_previews(tmp_path):
    out = tmp_path / "Dataset501_Phantom"
    assert main(["-q", "phantom", str(out), "--cases", "1", "--test-cases", "1", "--seed", "7",
                 "--workers", "2", "--preview"]) == 0
    content = json.loads((out / "dataset.json").read_text())
    assert content["channel_names"] == {"0": "PET"} and content["numTraining"] == 1
    assert content["file_ending"] == ".nii.gz"
    assert content["labels"] == {"background": 0, **LABELS}
    for path in ("imagesTr/phantom_000_0000.nii.gz", "labelsTr/phantom_000.nii.gz", "labelsLQ/phantom_000.nii.gz",
                 "imagesTs/phantom_001_0000.nii.gz", "labelsTs/phantom_001.nii.gz", "previews/phantom_000.png",
                 "previews/overview.png", "phantom_info.json"):
        assert (out / path).is_file(), path
    assert not (out / "labelsLQ/phantom_001.nii.gz").exists()
    assert (out / "previews/phantom_000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((out / "phantom_info.json").read_text())
    assert [c["case"] for c in info] == ["phantom_000", "phantom_001"] and info[0]["seed"] == [7, 0]
    # Same seed, one worker, in-process: identical arrays.
    expected = generate_case((7, 0))
    written = sitk.ReadImage(str(out / "imagesTr/phantom_000_0000.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(expected.image))
    assert written.GetSpacing() == pytest.approx((4.07, 4.07, 3.0))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsLQ/phantom_000.nii.gz")))
    np.testing.assert_array_equal(labels, sitk.GetArrayFromImage(expected.noisy_label))


def test_cli_refuses_non_empty_folder_and_bad_options(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["phantom", str(out), "--cases", "1"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "notes.txt").read_text() == "keep me"
    assert main(["phantom", str(tmp_path / "x"), "--cases", "0"]) == 2
    assert main(["phantom", str(tmp_path / "y"), "--cases", "1", "--severity", "2"]) == 2
    assert main(["phantom", str(tmp_path / "z"), "--cases", "1", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "training case" in err and "severity" in err and "workers" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
