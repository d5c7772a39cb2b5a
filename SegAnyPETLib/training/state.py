"""The full training state in ``RUN/last.pt``: weights, optimizer, scheduler, scaler, RNG and step.

``last.pt`` is also a model checkpoint (:func:`SegAnyPETLib.checkpoints.save_checkpoint`, written
atomically), so a run's latest weights load like any model; :func:`load_training_state` puts a
run back exactly where it stopped, or refuses a file that is not a training state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from ..errors import SegAnyPETError

STATE_KEYS = ("model_state_dict", "optimizer", "scheduler", "scaler", "torch_rng", "step", "best_dice")


def save_training_state(path: Path, model, optimizer, scheduler, scaler, step: int, best: float,
                        config: Dict[str, Any], metadata: Dict[str, Any]) -> Path:
    """Write the training state after ``step`` optimizer steps atomically (see ``save_checkpoint``)."""
    from ..checkpoints import save_checkpoint

    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "step": step,
        "best_dice": best,
        "train_config": config,
    }
    return save_checkpoint(path, model, metadata=metadata, extra=extra)


def load_training_state(path: Path, model, optimizer, scheduler, scaler) -> Tuple[int, float]:
    """Restore the objects from ``path``; return (completed steps, best validation Dice)."""
    from ..checkpoints import read_checkpoint, refuse_non_finite

    state = read_checkpoint(path)
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise SegAnyPETError(f"{path} is not a training state (no {', '.join(missing)}); cannot resume from it")
    refuse_non_finite(state["model_state_dict"], path)
    try:
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise SegAnyPETError(f"{path} does not fit this run's network or optimizer ({error}); start a new run") from error
    return int(state["step"]), float(state["best_dice"])
