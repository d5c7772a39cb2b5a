"""Segmentation metrics on the original image grid: Dice and normalised surface Dice (NSD)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def dice(prediction: np.ndarray, target: np.ndarray) -> float:
    """2|P n T| / (|P| + |T|); 1.0 when both are empty."""
    prediction, target = prediction.astype(bool), target.astype(bool)
    total = int(prediction.sum()) + int(target.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(prediction, target).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)


def normalized_surface_dice(prediction: np.ndarray, target: np.ndarray, spacing_zyx: Sequence[float], tolerance_mm: float = 2.0) -> float:
    """Fraction of both surfaces lying within ``tolerance_mm`` of the other surface (voxel-surface NSD).

    Surfaces are the boundary voxels of each mask; distances are Euclidean in mm with the given
    (z, y, x) spacing. 1.0 when both masks are empty, 0.0 when exactly one is.
    """
    prediction, target = prediction.astype(bool), target.astype(bool)
    if not prediction.any() and not target.any():
        return 1.0
    if not prediction.any() or not target.any():
        return 0.0
    # Work on the joint bounding box plus the tolerance, for speed on whole-body volumes.
    both = prediction | target
    margin = [int(np.ceil(tolerance_mm / s)) + 2 for s in spacing_zyx]
    box = tuple(
        slice(max(int(np.min(idx)) - m, 0), int(np.max(idx)) + m + 1)
        for idx, m in zip(np.nonzero(both), margin)
    )
    prediction, target = prediction[box], target[box]
    surface_p, surface_t = _surface(prediction), _surface(target)
    distance_to_t = ndimage.distance_transform_edt(~surface_t, sampling=spacing_zyx)
    distance_to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing_zyx)
    close = int((distance_to_t[surface_p] <= tolerance_mm).sum()) + int((distance_to_p[surface_t] <= tolerance_mm).sum())
    return close / float(surface_p.sum() + surface_t.sum())
