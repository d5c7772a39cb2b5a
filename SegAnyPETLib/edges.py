"""Move a mask's edge to where the PET contrast puts it.

A PET scanner blurs a uniformly active organ with its point-spread function, so the organ's edge
lies where the image crosses a fixed fraction of the way from its surroundings' level to its own
(half way for a large object and a symmetric PSF; the "contrast-oriented" thresholds of PET
segmentation use 40-50 %). A network that works on a coarser grid than the image, or that is
simply unsure at the edge, places the edge a voxel too far in or out. ``contrast_edge`` keeps the
network's mask except in a narrow band around its surface, where each voxel takes the side of that
threshold: above it for an object hotter than its surroundings, below it for a colder one (lungs).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

OBJECT_DEPTH_MM = 6.0  # the object's level: the median deeper than this below the mask's surface
SHELL_MM = (4.0, 14.0)  # the surroundings' level: the median of this shell outside the mask
SMALL_OBJECT_PERCENTILE = 90  # a mask with too little interior (a lesion) takes this percentile
MIN_VOXELS = 5


def edge_levels(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float],
                distance: Optional[np.ndarray] = None) -> Optional[Tuple[float, float]]:
    """(object level, surroundings level) of ``mask`` in ``image``, or None without a shell.

    ``distance`` is the signed distance to the mask's surface in mm (positive outside), computed when
    not given. Both arrays are (z, y, x) with ``spacing`` (z, y, x) mm.
    """
    if distance is None:
        distance = signed_distance(mask, spacing)
    shell = (distance > SHELL_MM[0]) & (distance < SHELL_MM[1])
    if shell.sum() < MIN_VOXELS:
        return None
    interior = distance < -OBJECT_DEPTH_MM
    if interior.sum() >= MIN_VOXELS:
        inside = float(np.median(image[interior]))
    else:  # partial volume lowers a small object's interior: take its hottest voxels
        inside = float(np.percentile(image[mask], SMALL_OBJECT_PERCENTILE))
    return inside, float(np.median(image[shell]))


def mask_box(mask: np.ndarray, margin_mm: float, spacing: Sequence[float]) -> Tuple[slice, ...]:
    """The bounding box of a non-empty ``mask`` grown by ``margin_mm`` (and a voxel) on each side."""
    margin = [int(np.ceil(margin_mm / s)) + 1 for s in spacing]
    return tuple(slice(max(sl.start - m, 0), sl.stop + m)
                 for sl, m in zip(ndimage.find_objects(mask.view(np.uint8))[0], margin))


def reaches_faces(mask: np.ndarray) -> bool:
    """Whether ``mask`` touches a face of its array."""
    return any(np.take(mask, layer, axis).any() for axis in range(3) for layer in (0, -1))


def signed_distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance in mm to the surface of ``mask``: positive outside, negative inside."""
    return (ndimage.distance_transform_edt(~mask, sampling=spacing)
            - ndimage.distance_transform_edt(mask, sampling=spacing))


def contrast_edge(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float], band_mm: float,
                  fraction: float = 0.4, positive: Sequence[Tuple[int, int, int]] = (),
                  negative: Sequence[Tuple[int, int, int]] = ()) -> np.ndarray:
    """``mask`` with the voxels within ``band_mm`` of its surface set by the local PET contrast.

    A band voxel is in the object where the image is past ``fraction`` of the way from the
    surroundings' level to the object's (:func:`edge_levels`). The edge never moves against a click:
    the voxels of ``positive`` clicks are not taken out, those of ``negative`` ones not added.
    Returns a new bool array; the mask unchanged where it has no surroundings or no contrast.
    """
    result = mask.astype(bool)  # a copy
    if not result.any():
        return result
    box = mask_box(result, SHELL_MM[1] + band_mm, spacing)
    local, values = result[box].copy(), image[box]
    distance = signed_distance(local, spacing)
    levels = edge_levels(values, local, spacing, distance)
    if levels is None or levels[0] == levels[1]:
        return result
    inside, outside = levels
    threshold = outside + fraction * (inside - outside)
    band = np.abs(distance) <= band_mm
    past = values > threshold if inside > outside else values < threshold
    refined = np.where(band, past, local)
    for clicks, keep in ((positive, np.logical_or), (negative, np.logical_and)):
        for index in clicks:
            at = tuple(i - b.start for i, b in zip(index, box))
            if all(0 <= i < n for i, n in zip(at, local.shape)):
                refined[at] = keep(refined[at], local[at])
    result[box] = refined
    return result
