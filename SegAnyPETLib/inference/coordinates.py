"""Click coordinates: voxel index or millimetres (LPS or RAS) to LPS millimetres, and back to voxels."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import SegAnyPETError

SPACES = ("ijk", "ras", "lps")


def to_lps(image: sitk.Image, point: Sequence[float], space: str = "ijk") -> np.ndarray:
    """A point in ``space`` as LPS mm; one clear error for a malformed point or one outside the volume.

    ``space``: ``"ijk"`` voxel index (i = x column, j = y row, k = slice), ``"lps"`` (ITK/DICOM) or
    ``"ras"`` (Slicer, NIfTI) millimetres."""
    if space not in SPACES:
        raise SegAnyPETError(f"unknown point space {space!r}; use one of {', '.join(SPACES)}")
    values = np.asarray(point, dtype=float).ravel()
    if values.size != 3 or not np.all(np.isfinite(values)):
        raise SegAnyPETError(f"a point needs three finite coordinates, got {list(point)}")
    if space == "ijk":
        index = values
        lps = np.asarray(image.TransformContinuousIndexToPhysicalPoint(values.tolist()))
    else:
        lps = values * np.array([-1.0, -1.0, 1.0]) if space == "ras" else values
        index = np.asarray(image.TransformPhysicalPointToContinuousIndex(lps.tolist()))
    size = np.asarray(image.GetSize())
    if np.any(index < -0.5) or np.any(index > size - 0.5):
        raise SegAnyPETError(f"click {values.tolist()} ({space}) is outside the volume (voxel index "
                             f"{np.round(index, 1).tolist()}, image size {size.tolist()})")
    return lps


def nearest_voxel(image: sitk.Image, lps: np.ndarray) -> Tuple[int, int, int]:
    """The voxel (z, y, x) of ``image`` nearest to an LPS point, clipped to the volume."""
    index = np.rint(image.TransformPhysicalPointToContinuousIndex(np.asarray(lps, float).tolist()))[::-1].astype(int)
    return tuple(int(v) for v in np.clip(index, 0, np.asarray(image.GetSize())[::-1] - 1))


def check_contradictions(image: sitk.Image, points: Sequence) -> None:
    """One clear error when a positive and a negative point (``.lps``, ``.label``) share a voxel."""
    seen: Dict[Tuple[int, int, int], int] = {}
    for point in points:
        voxel = nearest_voxel(image, point.lps)
        if seen.setdefault(voxel, point.label) != point.label:
            raise SegAnyPETError(f"a positive and a negative point on the same voxel (i, j, k) = {voxel[::-1]}: "
                                 "remove one of them")
