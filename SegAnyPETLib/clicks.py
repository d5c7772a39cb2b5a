"""The simulated-click protocol of SegAnyPET / SAM-Med3D (evaluation and training).

The first click is a uniformly random voxel of the target; every next click is a uniformly random
voxel of the error region (false negatives and false positives) of the current prediction,
positive if it lies in a false negative, negative otherwise. Where the model can only act inside a
region (the official protocol's one crop), the error region is taken inside it, as the official
evaluation computes it on the cropped label.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch


def next_click(prediction: Optional[np.ndarray], target: np.ndarray, rng: np.random.Generator,
               reach: Optional[np.ndarray] = None) -> Tuple[Tuple[int, ...], bool]:
    """Index (numpy order) and polarity of the next click; ``prediction=None`` for the first click.
    ``reach``: where the click can act (bool like ``target``), None for anywhere."""
    target = target.astype(bool, copy=False)
    if not target.any():
        raise ValueError("the target is empty: nothing to click on")
    if reach is not None and (target & reach).any():
        target = target & reach
    if prediction is None:
        error = target
    else:
        prediction = prediction.astype(bool, copy=False)
        error = target ^ prediction
        if reach is not None:
            error &= reach
        if not error.any():  # perfect already: a confirming click inside the target
            error = target
    candidates = np.flatnonzero(error)
    flat = int(candidates[rng.integers(len(candidates))])
    index = np.unravel_index(flat, target.shape)
    return tuple(int(i) for i in index), bool(target.flat[flat])


def next_clicks_batch(prediction: Optional[torch.Tensor], target: torch.Tensor, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batched :func:`next_click` on (B, X, Y, Z) bool tensors: coords (B, 1, 3) float and labels (B, 1).

    A sample without any error voxel (or the first click) draws from its target; an empty target
    draws from the whole crop (its click is then negative).
    """
    target = target.bool()
    error = target if prediction is None else target ^ prediction.bool()
    empty = ~error.flatten(1).any(dim=1)
    error = torch.where(empty[:, None, None, None], target, error)
    fallback = ~error.flatten(1).any(dim=1)
    error = torch.where(fallback[:, None, None, None], torch.ones_like(error), error)
    scores = torch.rand(error.shape, generator=generator, device="cpu").to(error.device)
    flat = torch.argmax(torch.where(error, scores + 1.0, scores.new_zeros(())).flatten(1), dim=1)
    size = error.shape[1:]
    coords = torch.stack(
        [flat // (size[1] * size[2]), (flat // size[2]) % size[1], flat % size[2]], dim=1
    )
    labels = target.flatten(1).gather(1, flat[:, None]).long()
    return coords[:, None].float(), labels
