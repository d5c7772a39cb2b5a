"""``seganypet calibrate``: the mask threshold chosen on validation cases, written to a copy."""
from __future__ import annotations

import pytest
import torch

from SegAnyPETLib.calibration import sweep_thresholds
from SegAnyPETLib.checkpoints import load_model, read_checkpoint
from SegAnyPETLib.cli import main
from SegAnyPETLib.data import open_dataset
from SegAnyPETLib.inference.config import resolve_config


def test_calibrate_writes_the_best_threshold_into_a_copy(tmp_path, tiny_checkpoint, phantom_dataset, capsys):
    out = tmp_path / "calibrated.pt"
    args = ["calibrate", "--model", str(tiny_checkpoint), "--data", str(phantom_dataset), "--cases", "1",
            "--targets", "liver,kidney_left", "--thresholds", "0.2,0.5,0.8", "--clicks", "1", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    calibrated = read_checkpoint(out)
    record = calibrated["metadata"]["mask_threshold_calibration"]
    last_case = open_dataset(phantom_dataset, split="train").cases[-1].case_id
    assert record["cases"] == [last_case] and record["clicks"] == [1]
    table = {float(t): d for t, d in record["mean_dice"].items()}
    assert set(table) == {0.2, 0.5, 0.8}
    assert calibrated["mask_threshold"] == max(table, key=table.get)
    assert f"mask threshold {calibrated['mask_threshold']:g}" in printed
    # The same numbers as a direct sweep, and the weights are untouched.
    model = load_model(tiny_checkpoint, device="cpu")
    direct = sweep_thresholds(model, open_dataset(phantom_dataset, split="train").cases[-1:], ["liver", "kidney_left"],
                              (0.2, 0.5, 0.8), clicks=(1,), device="cpu", progress=False)
    assert {t: round(d, 4) for t, d in direct.items()} == table
    original = read_checkpoint(tiny_checkpoint)["model_state_dict"]
    assert all(torch.equal(calibrated["model_state_dict"][k], v) for k, v in original.items())
    assert load_model(out, device="cpu").mask_threshold == calibrated["mask_threshold"]
    # Nothing is overwritten without being asked; bad thresholds and case counts are refused.
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-1], str(tmp_path / "x.pt"), "--thresholds", "0,0.5"])
    assert "must be probabilities" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "x.pt"), "--cases", "9"]) == 2
    assert "has 3 training cases" in capsys.readouterr().err


def test_a_bare_state_dict_is_wrapped_to_carry_the_threshold(tmp_path, tiny_model, phantom_dataset):
    bare = tmp_path / "bare.pth"
    torch.save(tiny_model.state_dict(), bare)
    out = tmp_path / "calibrated.pth"
    assert main(["calibrate", "--model", str(bare), "--data", str(phantom_dataset), "--cases", "1", "--targets", "liver",
                 "--thresholds", "0.4", "--clicks", "1", "--device", "cpu", "--out", str(out)]) == 0
    assert load_model(out, device="cpu").mask_threshold == 0.4


@pytest.mark.parametrize("flags, preset, options", [(["--set", "mirror=true"], None, {"mirror": True}),
                                                    (["--preset", "bundled"], "bundled", {})])
def test_calibrating_for_session_options_sweeps_with_them(tmp_path, tiny_checkpoint, phantom_dataset, flags, preset, options):
    """--preset and --set sweep the masks of sessions with those options, and say so."""
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--model", str(tiny_checkpoint), "--data", str(phantom_dataset), "--cases", "1",
                 "--targets", "liver", "--thresholds", "0.3,0.5", "--clicks", "1", "--device", "cpu", *flags,
                 "--out", str(out)]) == 0
    record = read_checkpoint(out)["metadata"]["mask_threshold_calibration"]
    assert record["preset"] == preset and record["options"] == options
    model = load_model(tiny_checkpoint, device="cpu")
    calibrated = load_model(out, device="cpu")  # the threshold travels with the options it was chosen for
    assert calibrated.inference == resolve_config(model, preset, **options).replace(mask_threshold=None)
    cases = open_dataset(phantom_dataset, split="train").cases[-1:]
    swept = sweep_thresholds(model, cases, ["liver"], (0.3, 0.5), clicks=(1,), device="cpu", progress=False,
                             preset=preset, **options)
    assert {t: round(d, 4) for t, d in swept.items()} == {float(t): d for t, d in record["mean_dice"].items()}
    plain = sweep_thresholds(model, cases, ["liver"], (0.3, 0.5), clicks=(1,), device="cpu", progress=False)
    assert plain != swept
