"""Evaluation: metrics, the click protocol, the baselines, the report and sharding."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from SegAnyPETLib.baselines import GrowCutBaseline, ThresholdBaseline
from SegAnyPETLib.cli import main
from SegAnyPETLib.clicks import next_click
from SegAnyPETLib.metrics import dice, normalized_surface_dice


def ball(shape, centre, radius):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def hot_image(shape=(30, 40, 40), seed=0):
    """Background SUV 1 with noise, a hot sphere (SUV 8) and a warm sphere (SUV 3)."""
    rng = np.random.default_rng(seed)
    values = 1.0 + 0.05 * rng.standard_normal(shape)
    hot, warm = ball(shape, (15, 12, 12), 5), ball(shape, (15, 28, 28), 6)
    values[hot], values[warm] = 8.0, 3.0
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.SetSpacing((3.0, 3.0, 3.0))
    label = np.zeros(shape, np.uint8)
    label[hot], label[warm] = 1, 2
    return image, label


def test_dice_and_nsd():
    a = ball((20, 20, 20), (10, 10, 10), 5)
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0 and dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    shifted = np.roll(a, 1, axis=2)
    expected = 2 * (a & shifted).sum() / (a.sum() + shifted.sum())
    assert dice(a, shifted) == pytest.approx(expected)
    assert normalized_surface_dice(a, a, (1, 1, 1), 2.0) == 1.0
    assert normalized_surface_dice(a, shifted, (2, 2, 2), 2.0) == 1.0  # one voxel = 2 mm, within tolerance
    assert normalized_surface_dice(a, shifted, (2, 2, 2), 1.0) < 1.0
    assert normalized_surface_dice(a, np.zeros_like(a), (1, 1, 1)) == 0.0


def test_next_click_protocol():
    rng = np.random.default_rng(0)
    target = ball((10, 10, 10), (5, 5, 5), 3)
    for _ in range(20):
        index, positive = next_click(None, target, rng)
        assert target[index] and positive
    prediction = target.copy()
    prediction[0:2, 0:2, 0:2] = True
    index, positive = next_click(prediction, target, rng)
    assert prediction[index] and not target[index] and not positive
    with pytest.raises(ValueError, match="empty"):
        next_click(None, np.zeros_like(target), rng)


def test_threshold_baseline_finds_a_hot_lesion_and_negative_clicks_cut():
    image, label = hot_image()
    baseline = ThresholdBaseline()
    baseline.set_image(image)
    mask = baseline.click((15, 12, 12), True)
    assert dice(mask, label == 1) > 0.9
    baseline.new_object()
    warm = baseline.click((15, 28, 28), True)
    assert dice(warm, label == 2) > 0.8
    cut = baseline.click((15, 28, 33), False)
    assert cut.sum() < warm.sum() and cut[15, 28, 28]


def test_growcut_baseline_segments_from_clicks():
    image, label = hot_image()
    baseline = GrowCutBaseline()
    baseline.set_image(image)
    mask = baseline.click((15, 12, 12), True)
    assert dice(mask, label == 1) > 0.8


def write_dataset(root, cases=2):
    (root / "imagesTs").mkdir(parents=True)
    (root / "labelsTs").mkdir()
    for i in range(cases):
        image, label = hot_image(seed=i)
        sitk.WriteImage(image, str(root / "imagesTs" / f"case_{i:03d}_0000.nii.gz"))
        label_image = sitk.GetImageFromArray(label)
        label_image.CopyInformation(image)
        sitk.WriteImage(label_image, str(root / "labelsTs" / f"case_{i:03d}.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "PET"}, "labels": {"background": 0, "lesion": 1, "spleen": 2},
        "numTraining": 0, "file_ending": ".nii.gz"}))


def test_a_bad_case_is_named_in_the_error(tmp_path, tiny_checkpoint, capsys):
    data = tmp_path / "data"
    write_dataset(data, cases=1)
    path = data / "imagesTs" / "case_000_0000.nii.gz"
    constant = sitk.Image(sitk.ReadImage(str(path)).GetSize(), sitk.sitkFloat32)  # not a PET volume
    constant.CopyInformation(sitk.ReadImage(str(path)))
    sitk.WriteImage(constant, str(path))
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert error.startswith("seganypet evaluate: error: ") and f"case case_000 ({path})" in error and "is constant" in error


def test_evaluate_command_writes_the_report_and_shards_merge(tmp_path, tiny_checkpoint, capsys):
    data = tmp_path / "data"
    write_dataset(data)
    common = ["evaluate", "--model", str(tiny_checkpoint), "--data", str(data), "--clicks", "1,3", "--device", "cpu",
              "--baseline", "threshold", "--baseline", "growcut"]
    assert main([*common, "--out", str(tmp_path / "full")]) == 0
    with open(tmp_path / "full" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["method", "case", "target", "clicks", "dice", "nsd"]
    assert len(rows) == 3 * 2 * 2 * 2  # methods x cases x targets x click counts
    assert {r["method"] for r in rows} == {tiny_checkpoint.name, "threshold", "growcut"}
    threshold_lesion = [float(r["dice"]) for r in rows if r["method"] == "threshold" and r["target"] == "lesion"]
    assert min(threshold_lesion) > 0.8
    summary = (tmp_path / "full" / "summary.md").read_text()
    assert "seen organs" in summary and "other targets" in summary and "| lesion |" in summary
    assert (tmp_path / "full" / "summary.png").read_bytes()[:4] == b"\x89PNG"
    # Two shards give the same rows once merged.
    for shard in ("0/2", "1/2"):
        assert main([*common, "--out", str(tmp_path / "sharded"), "--shard", shard]) == 0
    with open(tmp_path / "sharded" / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    key = lambda r: (r["method"], r["case"], r["target"], r["clicks"])  # noqa: E731
    assert sorted(merged, key=key) == sorted(rows, key=key)
    # Existing results are not overwritten without --overwrite.
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "full")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "bad"), "--targets", "pancreas"]) == 2
    # A config other than the checkpoint's own is part of the method's name: a preset, or the options.
    assert main([*common[:-4], "--out", str(tmp_path / "low"), "--clicks", "1", "--set", "mask_threshold=0.2"]) == 0
    with open(tmp_path / "low" / "results.csv", newline="") as handle:
        assert {r["method"] for r in csv.DictReader(handle)} == {f"{tiny_checkpoint.name} (mask_threshold=0.2)"}
    assert main([*common[:-4], "--out", str(tmp_path / "bundled"), "--preset", "bundled"]) == 0
    with open(tmp_path / "bundled" / "results.csv", newline="") as handle:
        bundled_rows = list(csv.DictReader(handle))
    assert {r["method"] for r in bundled_rows} == {f"{tiny_checkpoint.name} (bundled)"}
    # Lesion mode for the named targets only: the lesions are their focal uptake, the organs as before.
    assert main([*common[:-4], "--out", str(tmp_path / "lesions"), "--preset", "bundled", "--lesion-targets", "lesion"]) == 0
    with open(tmp_path / "lesions" / "results.csv", newline="") as handle:
        lesion_rows = list(csv.DictReader(handle))
    assert {r["method"] for r in lesion_rows} == {f"{tiny_checkpoint.name} (bundled) (lesion mode: lesion)"}
    assert [r["dice"] for r in lesion_rows if r["target"] != "lesion"] == [r["dice"] for r in bundled_rows if r["target"] != "lesion"]
    assert min(float(r["dice"]) for r in lesion_rows if r["target"] == "lesion") > 0.8
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "official-lesions"), "--lesion-targets", "lesion"]) == 2
    assert "no lesion refiners" in capsys.readouterr().err
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "unknown"), "--lesion-targets", "tumour"]) == 2
    assert "tumour not in" in capsys.readouterr().err and not (tmp_path / "unknown").exists()


def test_confusions_experiment_splits_the_evaluated_masks_by_neighbour(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import runpy
    from pathlib import Path

    data = tmp_path / "data"
    write_dataset(data)
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--data", str(data), "--clicks", "1", "--device", "cpu",
                 "--out", str(tmp_path / "eval")]) == 0
    with open(tmp_path / "eval" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    script = Path(__file__).parents[1] / "docs" / "experiments" / "confusions.py"
    monkeypatch.setattr("sys.argv", [str(script), "--model", str(tiny_checkpoint), "--data", str(data)])
    capsys.readouterr()
    runpy.run_path(str(script), run_name="__main__")
    table = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    dices = {cells[0].strip(): float(cells[1]) for cells in table if cells[0].strip()}
    for target in ("lesion", "spleen"):  # the same clicks and masks as seganypet evaluate
        expected = np.mean([float(r["dice"]) for r in rows if r["target"] == target])
        assert dices[target] == pytest.approx(expected, abs=1e-3)
    target, neighbours = None, 0
    for cells in table:
        target = cells[0].strip() or target
        if cells[2].strip():  # leaving out a neighbour's voxels only removes false positives
            neighbours += 1
            assert float(cells[4]) >= dices[target] - 1e-3 and 1.0 <= float(cells[3].split()[0]) <= 100.0
    assert neighbours  # the random network's masks take in unlabelled voxels at least


def test_next_click_stays_where_the_model_can_act():
    rng = np.random.default_rng(1)
    target = np.zeros((10, 10, 10), bool)
    target[2:9, 2:9, 2:9] = True
    reach = np.zeros_like(target)
    reach[:, :, :5] = True
    prediction = np.zeros_like(target)
    for _ in range(30):
        index, positive = next_click(prediction, target, rng, reach)
        assert reach[index] and positive and target[index]
    prediction = target & reach  # no error left inside the reach: a confirming click inside it
    index, positive = next_click(prediction, target, rng, reach)
    assert reach[index] and target[index] and positive


def test_the_official_protocol_clicks_inside_its_one_crop():
    """With one crop per object (official), a target larger than the crop gets its later clicks
    inside the crop, as the official evaluation draws them from the cropped label; without the
    limit the clicks outside the crop would be refused."""
    from SegAnyPETLib.evaluate import ModelSegmenter, run_protocol
    from conftest import random_model

    model = random_model("tiny")
    size = model.preprocessing.crop_size
    shape = (size + 30,) * 3
    target = np.zeros(shape, bool)
    target[5:-5, 5:-5, 5:-5] = True  # larger than the crop on every axis
    values = (np.where(target, 5.0, 1.0) + 0.1 * np.random.default_rng(0).random(shape)).astype(np.float32)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((4.0, 4.0, 4.0))
    segmenter = ModelSegmenter(model, device="cpu", preset="official")
    segmenter.set_image(image)
    assert segmenter.reach is None  # no crop yet: the first click may be anywhere
    masks = run_protocol(segmenter, target, (1, 5), np.random.default_rng(0), "box")
    reach = segmenter.reach
    assert segmenter.session.num_crops == 1 and 0 < reach.sum() <= size**3 < target.sum()
    assert all(reach[tuple(int(round(v)) for v in lps_index)] for lps_index in
               (image.TransformPhysicalPointToContinuousIndex(p)[::-1] for p, _ in segmenter.session.points))
    assert not masks[5][~reach].any()  # the official mask lives in its crop
