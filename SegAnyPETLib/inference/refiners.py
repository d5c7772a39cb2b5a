"""Mask refiners: each takes the object's mask and returns a new one, without running a network.

A session runs the refiners its config lists, in that order, after every change
(:attr:`~SegAnyPETLib.inference.config.SessionConfig.refiners`; ``lesion_refiners`` for an object
marked as a lesion). They work on a region of the input grid (:class:`Region`) that holds every
voxel they may read or change, so a click never touches the whole volume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .. import edges, lesions
from .crops import Box, grow_box, relative, union_box

Index = Tuple[int, int, int]


@dataclass
class Region:
    """What the refiners see: a box of the input grid and the object's clicks and limits there."""

    image: np.ndarray  # the input's values over the region (z, y, x), a view
    spacing: Tuple[float, float, float]  # (z, y, x) mm
    positive: List[Index]  # the positive clicks' voxels, relative to the region (may lie outside it)
    negative: List[Index]
    crops_box: Box  # the object's crops, relative to the region
    excluded: Optional[np.ndarray]  # bool over the region: parts left out as another object, or None
    band_mm: float  # contrast_edge: how far from the mask's surface a voxel may change
    fraction: float  # contrast_edge, focal_uptake: the edge between the surroundings' level (0) and the object's (1)


def clicked_islands(mask: np.ndarray, region: Region) -> np.ndarray:
    """The parts of the mask that hold a positive click (the Segment Editor's "keep selected island").

    While no positive click lies in any part (the network left each out by a voxel), the parts next
    to one (its 26 neighbours) count instead: a part only next to a click that another part holds
    is another structure (the liver beside an aortic click). A mask no click touches is kept whole.
    """
    return _keep_islands(mask, region, with_neighbours=False)


def touching_islands(mask: np.ndarray, region: Region) -> np.ndarray:
    """The parts of the mask that hold or touch a positive click (a mask none touches is kept whole):
    after the contrast edge, drops the slivers it cut off while keeping a click it set apart."""
    return _keep_islands(mask, region, with_neighbours=True)


def contrast_edge(mask: np.ndarray, region: Region) -> np.ndarray:
    """The mask's edge moved to the PET contrast (:func:`SegAnyPETLib.edges.contrast_edge`), never into
    a part left out as another object."""
    refined = edges.contrast_edge(region.image, mask, region.spacing, region.band_mm, region.fraction,
                                  region.positive, region.negative)
    if region.excluded is not None:
        refined &= ~region.excluded
    return refined


def focal_uptake(mask: np.ndarray, region: Region) -> np.ndarray:
    """The lesion at each positive click against the tissue in ``mask`` (:func:`SegAnyPETLib.lesions.focal_uptake`)."""
    return lesions.focal_uptake(region.image, region.spacing, mask, region.positive, region.negative, region.fraction)


REFINERS: Dict[str, Callable[[np.ndarray, Region], np.ndarray]] = {
    "clicked_islands": clicked_islands,
    "contrast_edge": contrast_edge,
    "touching_islands": touching_islands,
    "focal_uptake": focal_uptake,
}


def refine(mask: np.ndarray, region: Region, names: Sequence[str]) -> np.ndarray:
    """``mask`` (bool over the region) through the refiners ``names`` in order."""
    for name in names:
        mask = REFINERS[name](mask, region)
    return mask


def refine_object(image: np.ndarray, spacing: Sequence[float], crops_box: Box, network: np.ndarray,
                  positive: Sequence[Index], negative: Sequence[Index], excluded: Any, names: Sequence[str],
                  band_mm: float, fraction: float) -> Tuple[Box, np.ndarray]:
    """The object's mask after the refiners ``names``: (the box of the input grid they read and
    wrote, the bool mask over it).

    ``image``: the whole input (z, y, x), read only inside the box; ``network``: the crops' mask over
    ``crops_box``; ``positive``/``negative``: the clicks' voxels on the input grid; ``excluded``: an
    object with ``within(box)`` giving the parts left out as another object, or None.
    """
    region = _region_box(names, crops_box, positive, spacing, band_mm, image.shape)
    mask = np.zeros([s.stop - s.start for s in region], dtype=bool)
    mask[relative(crops_box, region)] = network
    left_out = excluded.within(region) if excluded is not None else None
    if left_out is not None:
        mask &= ~left_out
    shift = [s.start for s in region]
    moved = lambda voxels: [tuple(i - s for i, s in zip(v, shift)) for v in voxels]  # noqa: E731
    context = Region(image[region], tuple(spacing), moved(positive), moved(negative), relative(crops_box, region),
                     left_out, band_mm, fraction)
    return region, refine(mask, context, names)


def _region_box(names: Sequence[str], crops_box: Box, positive: Sequence[Index], spacing: Sequence[float],
                band_mm: float, shape: Sequence[int]) -> Box:
    """The box of the input grid the refiners ``names`` read and write, for a mask inside ``crops_box``."""
    boxes = [crops_box]
    if "contrast_edge" in names:  # the mask's box grown by the surroundings' shell, as edges.mask_box
        boxes.append(grow_box(crops_box, [int(np.ceil((edges.SHELL_MM[1] + band_mm) / s)) + 1 for s in spacing], shape))
    if "focal_uptake" in names:  # the lesion's search box around each positive click
        radius = np.maximum(np.round(lesions.MAX_LESION_MM / np.asarray(spacing, float)).astype(int), 1) + 1
        boxes += [grow_box(tuple(slice(i, i + 1) for i in click), radius, shape) for click in positive]
    return union_box(boxes)


def _keep_islands(mask: np.ndarray, region: Region, with_neighbours: bool) -> np.ndarray:
    mask = mask.copy()
    box = region.crops_box
    islands, count = ndimage.label(mask[box])
    if count < 2:
        return mask
    holding, near = set(), set()
    for index in region.positive:
        at = tuple(i - b.start for i, b in zip(index, box))
        if all(0 <= a < n for a, n in zip(at, islands.shape)):
            holding.add(int(islands[at]))
        near.update(np.unique(islands[tuple(slice(max(a - 1, 0), max(a + 2, 0)) for a in at)]).tolist())
    holding.discard(0)
    near.discard(0)
    touched = near if with_neighbours or not holding else holding
    if touched:
        mask[box] = np.isin(islands, sorted(touched))
    return mask
