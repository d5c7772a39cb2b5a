"""SIGTERM and SIGINT end a training run after the current step with RUN/last.pt saved; resumed, the
run equals an uninterrupted one (metrics rows, weights, optimizer and scheduler state)."""
from __future__ import annotations

import csv
import os
import signal

import torch

from SegAnyPETLib.cli import main
from SegAnyPETLib.training.step import InteractiveTrainingStep

FAST = ["--arch", "tiny", "--batch-size", "1", "--accumulation", "1", "--hq-cases", "2", "--num-workers", "0",
        "--max-steps", "3", "--set", "click_iterations=2", "--set", "lq_click_iterations=1", "--set", "n_prompts=2",
        "--set", "rampup_steps=10", "--set", "min_target_voxels=20", "--quiet-progress"]


def rows(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def signal_during_step(monkeypatch, signum: int, step_index: int) -> None:
    """Send ``signum`` to this process in the middle of optimizer step ``step_index`` (its forward pass)."""
    forward = InteractiveTrainingStep.forward
    sent = []

    def forward_and_signal(self, hq_batch, lq_batch, lam, seed):
        if seed[2] == step_index and not sent:
            sent.append(True)
            os.kill(os.getpid(), signum)
        return forward(self, hq_batch, lq_batch, lam, seed)

    monkeypatch.setattr(InteractiveTrainingStep, "forward", forward_and_signal)


def test_interrupted_and_resumed_equals_uninterrupted(phantom_dataset, tmp_path, monkeypatch):
    data = ["--data", str(phantom_dataset), *FAST]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(["train", *data, "--out", str(straight)]) == 0

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as patch:
        signal_during_step(patch, signal.SIGTERM, 0)
        assert main(["train", *data, "--out", str(stopped)]) == 128 + signal.SIGTERM
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # handlers restored
    assert torch.load(stopped / "last.pt", weights_only=True)["step"] == 1  # the step under way was finished
    assert [r["step"] for r in rows(stopped / "metrics.csv")] == ["1"]

    with monkeypatch.context() as patch:
        signal_during_step(patch, signal.SIGINT, 1)
        assert main(["train", *data, "--out", str(stopped), "--resume"]) == 128 + signal.SIGINT
    assert torch.load(stopped / "last.pt", weights_only=True)["step"] == 2

    # A run killed while writing last.pt leaves its temporary file; the next start removes it.
    stale = stopped / ".tmp-0123456789ab-last.pt"
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", *data, "--out", str(stopped), "--resume"]) == 0
    assert not stale.exists() and not list(stopped.glob(".tmp-*"))

    assert rows(stopped / "metrics.csv") == rows(straight / "metrics.csv")
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(stopped / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    assert a["model_state_dict"].keys() == b["model_state_dict"].keys()
    assert all(torch.equal(a["model_state_dict"][k], b["model_state_dict"][k]) for k in a["model_state_dict"])
    assert a["scheduler"] == b["scheduler"]
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key, state in a["optimizer"]["state"].items():
        assert all(torch.equal(state[name], b["optimizer"]["state"][key][name]) for name in state)
