"""Lesions: the focal uptake at a click, measured against the tissue the network finds around it.

PET lesion delineation thresholds the image a fixed fraction of the way from the background's level
to the lesion's peak (the "contrast-oriented" or background-corrected thresholds, 40-50 %). The
background is usually a region the user draws by hand. Here it is the tissue the network segments
from the same click: a liver lesion's liver, a lung nodule's lung. The network's own mask of a small
lesion is too coarse, but the organ it returns for one is the right background.

``focal_uptake`` takes, for each positive click, the connected region above that threshold holding
the click. The peak is the local SUVmax within ``LOCAL_PEAK_MM``. A negative click inside the region
raises its threshold until the region leaves it out, and so does a region that reaches
``MAX_LESION_MM`` from the click (it has leaked into the tissue around the lesion).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .edges import SHELL_MM, edge_levels, mask_box, reaches_faces

LOCAL_PEAK_MM = 10.0  # the lesion's peak: the highest voxel this close to the click on each axis
MAX_LESION_MM = 100.0  # the region is looked for this far from the click on each axis
Index = Tuple[int, int, int]


def focal_uptake(image: np.ndarray, spacing: Sequence[float], context: np.ndarray, positive: Sequence[Index],
                 negative: Sequence[Index] = (), fraction: float = 0.4) -> np.ndarray:
    """The union of the focal regions at the ``positive`` clicks, a new bool array like ``image``.

    ``context`` is the network's mask of the object (bool, same grid): its part holding a click gives
    the background level there. ``spacing`` is (z, y, x) mm; clicks are (z, y, x) voxel indices.
    """
    result = np.zeros(image.shape, dtype=bool)
    spacing = np.asarray(spacing, dtype=float)
    for click in positive:
        box = _box(click, MAX_LESION_MM, spacing, image.shape)
        at = tuple(i - b.start for i, b in zip(click, box))
        values = image[box]
        near = _box(at, LOCAL_PEAK_MM, spacing, values.shape)
        top = tuple(int(i) + s.start for i, s in zip(np.unravel_index(np.argmax(values[near]), values[near].shape), near))
        seeds, peak = (at, top), float(values[top])
        background = _background(values, context[box], seeds, peak, spacing, fraction)
        if background is None or peak <= background:  # no focal uptake here: the click's voxel alone
            result[click] = True
            continue
        inside = [tuple(i - b.start for i, b in zip(n, box)) for n in negative]
        inside = [n for n in inside if all(0 <= i < s for i, s in zip(n, values.shape))]
        # A region reaching MAX_LESION_MM from the click has leaked into the tissue around it: the
        # threshold rises in steps of 10 % of the contrast until it stays focal.
        for step in np.arange(fraction, 0.95, 0.1):
            region = _region(values > background + step * (peak - background), seeds)
            while True:  # each pass leaves out at least one more negative click
                hit = [values[n] for n in inside if region[n]]
                if not hit:
                    break
                region = _region(values > max(hit), seeds)
            if not reaches_faces(region):
                break
        result[box] |= region
    return result


def _box(center: Sequence[int], radius_mm: float, spacing: np.ndarray, shape: Sequence[int]) -> Tuple[slice, ...]:
    radius = np.maximum(np.round(radius_mm / spacing).astype(int), 1)
    return tuple(slice(max(int(c) - r, 0), min(int(c) + r + 1, n)) for c, r, n in zip(center, radius, shape))


def _region(above: np.ndarray, seeds: Tuple[Index, Index]) -> np.ndarray:
    """The component of ``above`` holding the first seed (the click), else the second (the local
    peak); empty if neither is above."""
    components, _ = ndimage.label(above)
    label = components[seeds[0]] or components[seeds[1]]
    return components == label if label else np.zeros(above.shape, dtype=bool)


def _background(values: np.ndarray, context: np.ndarray, seeds: Tuple[Index, Index], peak: float,
                spacing: np.ndarray, fraction: float) -> Optional[float]:
    """The uptake level around the lesion: the median of the network's part holding the click
    outside the lesion's first estimate (from that part's median), or, where the click is outside
    the network's mask or the part is hardly larger than the lesion, the surroundings' level of the
    region above half the peak (:func:`~SegAnyPETLib.edges.edge_levels`). None where that region
    has no surroundings (no focal uptake)."""
    at = seeds[0]
    if context[at]:
        parts, _ = ndimage.label(context)
        part = parts == parts[at]
        level = float(np.median(values[part]))
        core = _region(values > level + fraction * (peak - level), seeds)
        around = part & ~ndimage.binary_dilation(core)
        if around.sum() >= 2 * core.sum():
            return float(np.median(values[around]))
    core = _region(values > 0.5 * peak, seeds)
    if not core.any():
        return None
    box = mask_box(core, SHELL_MM[1], spacing)
    levels = edge_levels(values[box], core[box], spacing)
    return None if levels is None else levels[1]
