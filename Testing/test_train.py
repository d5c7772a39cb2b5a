"""The trainer: SAM-Med3D recipe, CPCL terms, exact resume, DDP on two CPU processes."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import SimpleITK as sitk
import torch
import yaml

from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.training.config import load_config
from SegAnyPETLib.cli import main
from SegAnyPETLib.data import load_case, open_dataset
from SegAnyPETLib.evaluate import ModelSegmenter, evaluate_case
from SegAnyPETLib.inference.config import PRESETS
from SegAnyPETLib.clicks import next_clicks_batch
from SegAnyPETLib.model import build_model
from SegAnyPETLib.training.losses import consistency_loss, dice_ce_loss, predictive_entropy, rampup_weight, rectify_labels
from SegAnyPETLib.training.step import InteractiveTrainingStep, mask_only_iterations

QUICK = ["--arch", "tiny", "--batch-size", "1", "--accumulation", "2", "--hq-cases", "2", "--num-workers", "0",
         "--set", "click_iterations=3", "--set", "lq_click_iterations=2", "--set", "rampup_steps=10",
         "--set", "min_target_voxels=20", "--quiet-progress"]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_training_writes_checkpoints_and_metrics_and_resumes_exactly(phantom_dataset, tmp_path):
    data = ["--data", str(phantom_dataset)]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", *data, *QUICK, "--out", str(straight), "--max-steps", "3", "--set", "checkpoint_every=1"]) == 0
    assert main(["train", *data, *QUICK, "--out", str(resumed), "--max-steps", "1", "--set", "checkpoint_every=1"]) == 0
    assert main(["train", *data, *QUICK, "--out", str(resumed), "--max-steps", "3", "--resume"]) == 0
    for name in ("last.pt", "best.pt", "metrics.csv", "config.yaml"):
        assert (straight / name).exists()
    rows = read_csv(straight / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for column in ("loss", "loss_hq", "loss_cps", "loss_lq", "lambda", "lr"):
        assert all(float(r[column]) >= 0 for r in rows)
    assert float(rows[-1]["loss_cps"]) > 0 and float(rows[-1]["loss_lq"]) > 0  # CPCL terms are active
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    assert all(torch.equal(a["model_state_dict"][k], b["model_state_dict"][k]) for k in a["model_state_dict"])
    assert [r["loss"] for r in read_csv(resumed / "metrics.csv")] == [r["loss"] for r in rows]
    model = load_model(straight / "last.pt", device="cpu")  # a training state is also a model
    assert model.config.name == "tiny" and model.metadata["trained_steps"] == 3
    assert model.preprocessing.crop_size == 64


def test_the_bundled_recipe_trains_and_validates_its_network(phantom_dataset, tmp_path):
    out = tmp_path / "bundled"
    assert main(["train", "--config", "bundled_tiny", "--data", str(phantom_dataset), "--out", str(out),
                 "--max-steps", "1", "--batch-size", "1", "--hq-cases", "1", "--val-cases", "1",
                 "--num-workers", "0", "--quiet-progress"]) == 0
    validation = read_csv(out / "validation.csv")
    assert [int(r["step"]) for r in validation] == [1] and 0 <= float(validation[0]["dice_1_click"]) <= 1
    model = load_model(out / "best.pt", device="cpu")
    # best.pt is picked on the recipe's val_targets (the five organs of the goal): their mean Dice
    # at one click on the held-out case, recomputed here from the saved weights.
    val_targets = yaml.safe_load((out / "config.yaml").read_text())["val_targets"]
    assert sorted(val_targets) == ["heart", "kidney_left", "kidney_right", "liver", "spleen"]
    case = open_dataset(phantom_dataset, split="train").cases[-1]
    image, label = load_case(case)
    results = evaluate_case([ModelSegmenter(model, device="cpu")], case.case_id, image, sitk.GetArrayFromImage(label),
                            {t: case.labels[t] for t in val_targets}, (1,), seed=0)
    assert len(results) == 5
    recorded = float(validation[0]["dice_1_click_val_targets"])
    assert recorded == pytest.approx(sum(r.dice for r in results) / 5, abs=1e-6)
    assert model.metadata["val_dice_1_click_val_targets"] == pytest.approx(recorded, abs=1e-6)
    assert model.config.name == "tiny_conv" and model.config.embedding_grid == 16
    assert model.preprocessing.spacing == (4.0, 4.0, 4.0)
    # Fine-tuning the calibrated bundled model: its mask threshold and preset do not carry over to new weights.
    demo = load_model("demo", device="cpu")
    assert demo.mask_threshold != 0.5 and demo.inference == PRESETS["bundled"]
    assert main(["train", "--config", "bundled_tiny", "--init", "demo", "--data", str(phantom_dataset),
                 "--out", str(tmp_path / "finetuned"), "--max-steps", "1", "--batch-size", "1", "--hq-cases", "1", "--val-cases", "1",
                 "--num-workers", "0", "--quiet-progress"]) == 0
    finetuned = load_model(tmp_path / "finetuned" / "last.pt", device="cpu")
    assert finetuned.mask_threshold == 0.5 and finetuned.inference == PRESETS["official"]


def test_run_folders_are_protected(phantom_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    assert main(["train", "--data", str(phantom_dataset), *QUICK, "--out", str(run), "--max-steps", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["train", "--data", str(phantom_dataset), *QUICK, "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", "--data", str(phantom_dataset), *QUICK, "--out", str(tmp_path / "x"), "--targets", "pancreas"]) == 2
    assert "pancreas" in capsys.readouterr().err
    assert main(["train", "--data", str(phantom_dataset), *QUICK, "--out", str(tmp_path / "y"), "--targets", "liver",
                 "--set", "val_targets=[liver, spleen]"]) == 2
    assert "val_targets names spleen" in capsys.readouterr().err


def test_two_process_ddp_on_cpu(phantom_dataset, tmp_path):
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "SegAnyPETLib.train", "--data", str(phantom_dataset), *QUICK, "--out", str(run), "--max-steps", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-6000:]
    assert "2 ranks finished with identical weights" in result.stderr + result.stdout
    assert [int(r["step"]) for r in read_csv(run / "metrics.csv")] == [1, 2]


def test_strategies_switch_the_cpcl_terms():
    torch.manual_seed(0)
    model = build_model("tiny").train()
    images = torch.randn(2, 1, 64, 64, 64)
    targets = torch.zeros(2, 1, 64, 64, 64)
    targets[:, :, 20:40, 20:40, 20:40] = 1
    batch = {"image": images, "target": targets}
    results = {}
    for strategy in ("finetune", "consistency", "cpcl"):
        step = InteractiveTrainingStep(model, strategy, click_iterations=2, lq_click_iterations=2, n_prompts=2,
                                       uncertainty_threshold=-1.0)  # every voxel "uncertain": cpcl flips all labels
        results[strategy] = step(batch, batch if strategy != "finetune" else None, lam=1.0, seed=(0, 0, 0, 0))
    assert results["finetune"]["loss_cps"] == 0 and results["finetune"]["loss_lq"] == 0
    assert results["consistency"]["loss_cps"] > 0
    assert torch.isclose(results["consistency"]["loss_hq"], results["cpcl"]["loss_hq"])
    assert not torch.isclose(results["consistency"]["loss_lq"], results["cpcl"]["loss_lq"])  # rectified labels


def test_loss_terms():
    p = torch.full((1, 1, 4, 4, 4), 0.7)
    assert consistency_loss([p, p.clone()]) == 0
    assert consistency_loss([p, 1 - p]) > 0
    assert torch.isclose(predictive_entropy(torch.tensor(0.5)), torch.log(torch.tensor(2.0)))
    noisy = torch.tensor([0.0, 1.0, 0.0, 1.0])
    uncertainty = torch.tensor([0.1, 0.1, 0.69, 0.69])
    assert rectify_labels(noisy, uncertainty, 0.6).tolist() == [0.0, 1.0, 1.0, 0.0]
    target = torch.zeros(1, 1, 8, 8, 8)
    target[..., 2:6, 2:6, 2:6] = 1
    assert dice_ce_loss(40 * (2 * target - 1), target) < 0.01 < dice_ce_loss(torch.zeros_like(target), target)
    assert rampup_weight(0, 100, 0.1) == pytest.approx(0.1 * torch.exp(torch.tensor(-5.0)).item())
    assert rampup_weight(100, 100, 0.1) == pytest.approx(0.1)
    assert rampup_weight(50, 100, 0.1, "exp") < rampup_weight(50, 100, 0.1, "gaussian")


def test_simulated_clicks_follow_the_protocol():
    generator = torch.Generator().manual_seed(0)
    target = torch.zeros(3, 10, 10, 10, dtype=torch.bool)
    target[:, 2:5, 2:5, 2:5] = True
    coords, labels = next_clicks_batch(None, target, generator)
    for b in range(3):
        x, y, z = coords[b, 0].long().tolist()
        assert target[b, x, y, z] and labels[b, 0] == 1
    prediction = target.clone()
    prediction[:, 7:9, 7:9, 7:9] = True  # false positives only
    coords, labels = next_clicks_batch(prediction, target, generator)
    for b in range(3):
        x, y, z = coords[b, 0].long().tolist()
        assert prediction[b, x, y, z] and not target[b, x, y, z] and labels[b, 0] == 0
    chosen = mask_only_iterations(11, generator)
    assert 10 in chosen and len(chosen) == 2 and all(i == 10 or 2 <= i <= 8 for i in chosen)


def test_options_are_checked_against_their_types(phantom_dataset, tmp_path, capsys):
    """YAML reads 4e-5 (no dot) as text: numbers given so still work; anything else is refused."""
    assert load_config("bundled_tiny", {"lr": "4e-5", "milestone_steps": [10, 20]}).lr == 4e-5
    for option, message in (("lr=fast", "lr must be a finite number, got 'fast'"),
                            ("max_steps=3.5", "max_steps must be a whole number"),
                            ("milestone_steps=5", "milestone_steps must be a list")):
        assert main(["train", "--data", str(phantom_dataset), *QUICK, "--out", str(tmp_path / "run"), "--set", option]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_centre_shift_moves_the_target_off_the_crop_centre(phantom_dataset):
    """By default the crop is centred on a target voxel (SAM-Med3D); ``centre_shift`` moves the
    centre off the target, so the network must read the clicks to know what to segment."""
    from SegAnyPETLib.preprocessing import PreprocessConfig
    from SegAnyPETLib.training.data import CropSampleDataset, TrainingCase

    case = next(iter(open_dataset(phantom_dataset, split="train").cases))
    image, label = load_case(case)
    cases = [TrainingCase.from_images(case.case_id, image, label, case.labels, 20)]
    preprocessing = PreprocessConfig(spacing=(4.0, 4.0, 4.0), crop_size=64)
    centre = slice(31, 33)

    def centre_covered(shift):
        dataset = CropSampleDataset(cases, preprocessing, augment=False, min_target_voxels=20, centre_shift=shift)
        samples = [dataset[i]["target"][0] for i in range(40)]
        assert all(target.sum() >= 20 for target in samples)
        return [bool(target[centre, centre, centre].any()) for target in samples]

    centred, shifted = sum(centre_covered(0.0)), sum(centre_covered(60.0))
    assert centred >= 32  # the others: crops moved to stay inside the image (the brain at its top)
    assert shifted <= centred / 2
