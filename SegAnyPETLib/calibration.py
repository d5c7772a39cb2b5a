"""A checkpoint's mask threshold, chosen on held-out validation cases by simulated clicks.

A small network trained briefly can be confident at the click yet unsure far from it inside a
large organ, so 0.5 is not always its best operating point. :func:`calibrate_checkpoint` runs the
evaluation protocol at several thresholds on validation cases (never the test set) and writes a
copy of the checkpoint that carries the best one; every session then uses it by default.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch

from .checkpoints import check_mask_threshold, checkpoint_file, model_from_checkpoint, read_checkpoint
from .errors import SegAnyPETError
from .inference.config import resolve_config
from .io import atomic_path, ensure_writable

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)


def sweep_thresholds(
    model,
    cases: Sequence,
    targets: Optional[Sequence[str]] = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    clicks: Sequence[int] = (1, 3, 5),
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    preset: Any = None,
    **overrides: Any,
) -> Dict[float, float]:
    """Mean Dice over cases, targets and click counts for each threshold (same clicks for all);
    ``preset`` and ``overrides``: the session options that will use the threshold."""
    from tqdm import tqdm

    from .data import load_case
    from .evaluate import ModelSegmenter, evaluate_case

    thresholds = [check_mask_threshold(t) for t in thresholds]
    overrides.pop("mask_threshold", None)  # the swept option
    segmenters = [ModelSegmenter(model, device, name=repr(t), preset=preset, mask_threshold=t, **overrides)
                  for t in thresholds]
    scores: Dict[float, list] = {t: [] for t in thresholds}
    for case in tqdm(cases, desc="calibrate", unit="case", disable=not progress):
        image, label = load_case(case)
        wanted = {t: v for t, v in case.labels.items() if targets is None or t in targets}
        for result in evaluate_case(segmenters, case.case_id, image, sitk.GetArrayViewFromImage(label), wanted, clicks, seed):
            scores[float(result.method)].append(result.dice)
    if not any(scores.values()):
        raise SegAnyPETError("no target found in the calibration cases")
    return {t: float(np.mean(values)) for t, values in scores.items()}


def calibrate_checkpoint(
    source: Union[str, Path],
    data: str,
    out: Union[str, Path],
    last_cases: Optional[int] = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    clicks: Sequence[int] = (1, 3, 5),
    targets: Optional[Sequence[str]] = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    preset: Any = None,
    **overrides: Any,
) -> Tuple[float, Dict[float, float]]:
    """Sweep ``thresholds`` on the last ``last_cases`` training-split cases of ``data`` (all when
    None) and write ``out``: the checkpoint unchanged but for its mask threshold and a record of
    the sweep in its metadata; ``preset`` and ``overrides`` calibrate it for sessions with those
    options, and ``out`` stores them as its inference config. Returns (chosen threshold, {threshold: mean Dice})."""
    from .data import open_dataset

    ensure_writable(out, overwrite)  # before minutes of clicks, not after
    name, path = checkpoint_file(source)
    checkpoint = read_checkpoint(path)
    model = model_from_checkpoint(checkpoint, path).eval()
    dataset = open_dataset(data, split="train")
    cases = list(dataset.cases)
    if last_cases is not None:
        if not 0 < last_cases <= len(cases):
            raise SegAnyPETError(f"--cases {last_cases}: {data} has {len(cases)} training cases")
        cases = cases[-last_cases:]
    dataset.select_targets(targets)  # unknown names fail before the sweep
    table = sweep_thresholds(model, cases, targets, thresholds, clicks, seed, device, progress, preset, **overrides)
    best = max(table, key=lambda t: (table[t], -abs(t - 0.5)))  # ties: the one nearest 0.5
    if not any(isinstance(checkpoint.get(key), Mapping) for key in ("model_state_dict", "state_dict", "model")):
        checkpoint = {"model_state_dict": checkpoint}  # a bare state_dict: wrap it to carry the threshold
    checkpoint["mask_threshold"] = best
    checkpoint["inference"] = resolve_config(model, preset, **overrides).replace(mask_threshold=None).to_dict()
    metadata = dict(checkpoint.get("metadata") or {})
    metadata["mask_threshold_calibration"] = {
        "model": name,
        "data": str(data),
        "cases": [case.case_id for case in cases],
        "clicks": list(clicks),
        "preset": preset,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "mean_dice": {repr(t): round(d, 4) for t, d in table.items()},
    }
    checkpoint["metadata"] = metadata
    with atomic_path(out, overwrite=overwrite) as tmp:
        torch.save(checkpoint, tmp)
    logger.info("mask threshold %.2f (mean Dice %.4f; 0.5 gives %s) written to %s",
                best, table[best], f"{table[0.5]:.4f}" if 0.5 in table else "n/a", out)
    return best, table
