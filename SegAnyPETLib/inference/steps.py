"""Steps that run the network again on other crops: extension, the interior crop and the part check.

Each is a function of the object's crops (:class:`~SegAnyPETLib.inference.crops.ObjectCrops`), called by
the session where its config turns it on:

- :func:`extend_crops`: where a crop's mask reaches a face of the crop while the image goes on, add an
  overlapping crop seeded from the mask (organs larger than the crop); keep it only where it agrees
  with its source crop in their overlap.
- :func:`add_interior_crop`: a new object's first click also gets a crop centred on the deepest point
  of its first mask (the networks are trained with the target at the crop's centre).
- :func:`foreign_parts` / :func:`take_back`: split a new object's first mask where it narrows and
  segment each part from its own centre; a part whose own mask ends without reaching the click is
  another object and is left out, until a positive click lands deep inside it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..edges import reaches_faces
from ..preprocessing import RAS_DIRECTION, image_bounds_ras
from .crops import Box, Crop, ObjectCrops, Point, relative

logger = logging.getLogger(__name__)

PART_DEPTH_MM = 3.0  # how much deeper than the narrowing between them two parts must be
MIN_PART_ML = 5.0  # smaller parts are not checked
MAX_PART_CHECKS = 4  # the largest parts are checked, an encoder run each


@dataclass
class BoxMask:
    """A bool mask that is empty outside ``box`` of the input grid."""

    box: Box
    array: np.ndarray

    def __getitem__(self, index: Tuple[int, int, int]) -> bool:
        at = tuple(i - b.start for i, b in zip(index, self.box))
        return all(0 <= a < n for a, n in zip(at, self.array.shape)) and bool(self.array[at])

    def within(self, box: Box) -> np.ndarray:
        """The mask over ``box``, which holds :attr:`box`."""
        out = np.zeros([s.stop - s.start for s in box], dtype=bool)
        out[relative(self.box, box)] = self.array
        return out


def run_steps(crops: ObjectCrops, config: Any, targets: List[Crop], points: Sequence[Point], first: bool,
              voxel: Tuple[int, int, int], spacing: Sequence[float]) -> Optional["BoxMask"]:
    """The steps ``config`` turns on after the last of ``points`` was decoded in ``targets``: crop
    extension, and at an object's first point the interior crop and the part check. Returns the
    parts the check left out (or None)."""
    point = points[-1]
    if config.extend:
        extend_crops(crops, targets, config.max_crops, config.extension_agreement, points)
    if first and config.interior_crop and len(crops) < config.max_crops:
        interior = add_interior_crop(crops, targets[0], point, points)
        if interior is not None and config.extend:
            extend_crops(crops, [interior], config.max_crops, config.extension_agreement, points)
    if first and config.part_check:
        box = crops.box()
        return foreign_parts(crops, crops.network_mask(box), box, voxel, point, spacing)
    return None


# ------------------------------------------------------------------------------------- extension
def extend_crops(crops: ObjectCrops, sources: Sequence[Crop], max_crops: int, agreement: float,
                 points: Sequence[Point]) -> List[Crop]:
    """Add crops beyond faces that the sources' masks touch inside the image; returns the crops added."""
    added: List[Crop] = []
    queue = list(sources)
    size = crops.model.preprocessing.crop_size
    while queue and len(crops) < max_crops:
        crop = queue.pop(0)
        for center, seed in _border_contacts(crops, crop):
            if len(crops) >= max_crops:
                break
            if any(other.grid.contains(center, margin=size / 4) for other in crops.crops):
                continue
            grid = crops.place(center)
            if grid in crops.rejected or grid in crops.grids():
                continue
            logger.debug("mask reaches the crop border: adding a crop around %s mm", np.round(center, 1).tolist())
            new = crops.add(grid, seeds=[seed])
            crops.predict(new, points)
            score = crops.overlap_dice(crop, new)
            if score < agreement:
                logger.debug("dropping the added crop: it disagrees with its source (overlap Dice %.2f)", score)
                crops.remove(new)
                continue
            added.append(new)
            queue.append(new)
    return added


def _border_contacts(crops: ObjectCrops, crop: Crop) -> List[Tuple[np.ndarray, Point]]:
    """For each crop face the mask touches (inside the image): a new crop centre and a seed."""
    mask = crops.mask_in_crop(crop)
    size = crop.grid.size
    spacing = np.asarray(crop.grid.spacing)
    low, high = image_bounds_ras(crops.image)
    contacts = []
    for axis in range(3):
        for side, layer in ((-1, 0), (1, size - 1)):
            face = np.take(mask, layer, axis=axis)
            if face.sum() < 8:
                continue
            # Does the image go on beyond this face? Compare in RAS coordinates.
            beyond = (RAS_DIRECTION.T @ crop.grid.to_physical(np.full(3, layer, float))[0])[axis] + side * spacing[axis]
            if not low[axis] <= beyond <= high[axis]:
                continue
            index = np.empty(3)
            index[axis] = layer
            index[[a for a in range(3) if a != axis]] = np.argwhere(face).mean(axis=0)
            outward = np.zeros(3)
            outward[axis] = side
            center = crop.grid.to_physical(index)[0] + RAS_DIRECTION @ (outward * spacing * (size - 1) / 4)
            contacts.append((center, Point(_seed_inside(mask, axis, layer, side, crop), 1)))
    return contacts


def _seed_inside(mask: np.ndarray, axis: int, layer: int, side: int, crop: Crop) -> np.ndarray:
    """The deepest mask voxel in the outer eighth of the crop next to a face, in LPS mm."""
    depth = max(2, crop.grid.size // 8)
    band = [slice(None)] * 3
    band[axis] = slice(layer - depth + 1, layer + 1) if side > 0 else slice(0, depth)
    region = np.zeros_like(mask)
    region[tuple(band)] = mask[tuple(band)]
    index = np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(region))), mask.shape)
    return crop.grid.to_physical(np.asarray(index, float))[0]


# ---------------------------------------------------------------------------------- interior crop
def add_interior_crop(crops: ObjectCrops, crop: Crop, click: Point, points: Sequence[Point]) -> Optional[Crop]:
    """Add a crop centred on the deepest voxel of ``crop``'s mask part that holds the click.

    None where the mask misses the click, its deepest point is within a crop voxel of the click, or
    the crop there would not hold the click (moved to fit in the image).
    """
    mask = crops.mask_in_crop(crop)
    parts, _ = ndimage.label(mask)
    index = tuple(crop.grid.nearest_index(click.lps)[0])
    if parts[index] == 0:
        return None
    depth = depth_below_surface(parts == parts[index], crop.grid.spacing)  # the crop's faces count as surface
    center = crop.grid.to_physical(np.asarray(np.unravel_index(int(np.argmax(depth)), mask.shape), float))[0]
    if np.linalg.norm(center - click.lps) < max(crop.grid.spacing):
        return None
    grid = crops.place(center)
    if not grid.contains(click.lps) or grid in crops.grids():
        return None
    interior = crops.add(grid)
    crops.predict(interior, points)
    return interior


# ------------------------------------------------------------------------------------- part check
def foreign_parts(crops: ObjectCrops, network: np.ndarray, box: Box, click: Tuple[int, int, int],
                  click_point: Point, spacing: Sequence[float]) -> Optional[BoxMask]:
    """The parts of the mask that, segmented from their own deepest voxel, do not reach the click.

    ``network`` is the object's mask over ``box`` (the crops' box); ``click`` the first click's voxel
    (z, y, x). The component holding the click is split into cores (:func:`depth_cores`), each voxel
    going to its nearest core; the largest other parts (``MAX_PART_CHECKS``, at least ``MIN_PART_ML``)
    are each segmented from a crop centred on their deepest voxel, clicked there alone. Returns the
    parts whose own mask does not reach the click, or None.
    """
    at = tuple(i - b.start for i, b in zip(click, box))
    if not network[at]:
        return None
    parts, _ = ndimage.label(network)
    inner = ndimage.find_objects((parts == parts[at]).astype(np.uint8))[0]
    part_box = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner))
    component = parts[inner] == parts[at]
    spacing = np.asarray(spacing, float)
    depth = depth_below_surface(component, spacing)
    cores = depth_cores(depth, PART_DEPTH_MM)
    if cores.max() < 2:
        return None
    nearest = ndimage.distance_transform_edt(cores == 0, sampling=spacing, return_distances=False, return_indices=True)
    owner = np.where(component, cores[tuple(nearest)], 0)
    own = owner[tuple(i - b.start for i, b in zip(click, part_box))]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volumes = ndimage.sum(component, owner, index=np.arange(cores.max() + 1)) * voxel_ml
    volumes[[0, own]] = 0
    largest = [label for label in np.argsort(-volumes)[:MAX_PART_CHECKS] if volumes[label] >= MIN_PART_ML]
    foreign = np.zeros(network.shape, dtype=bool)
    for label in largest:
        deepest = np.unravel_index(int(np.argmax(np.where(cores == label, depth, 0))), depth.shape)
        zyx = [float(d + b.start) for d, b in zip(deepest, part_box)]
        probe = np.asarray(crops.image.TransformContinuousIndexToPhysicalPoint(zyx[::-1]))
        if not _segments_with(crops, probe, click_point):
            logger.debug("leaving out %.0f mL of the mask: clicked alone it is another object", volumes[label])
            foreign[relative(part_box, box)] |= owner == label
    return BoxMask(box, foreign) if foreign.any() else None


def take_back(excluded: BoxMask, index: Tuple[int, int, int], spacing: Sequence[float]) -> Optional[BoxMask]:
    """The parts left out after a positive click at ``index`` (z, y, x) in one of them.

    A click in the part's inner half (at least half its greatest depth below its surface) says the
    part is the object after all, and it goes back into the mask; a click nearer its edge corrects
    the object's own edge where it meets the other object, and only the clicked voxel goes back.
    """
    parts, _ = ndimage.label(excluded.array)
    at = tuple(i - b.start for i, b in zip(index, excluded.box))
    part = parts == parts[at]
    box = ndimage.find_objects(part.view(np.uint8))[0]
    depth = depth_below_surface(part[box], spacing)
    foreign = excluded.array.copy()
    if depth[tuple(i - b.start for i, b in zip(at, box))] >= 0.5 * depth.max():
        foreign &= ~part
    else:
        foreign[at] = False
    return BoxMask(excluded.box, foreign) if foreign.any() else None


def _segments_with(crops: ObjectCrops, probe: np.ndarray, click: Point) -> bool:
    """Whether the probe (LPS mm), clicked alone in a crop centred on it, may segment ``click`` with it.

    False only where that mask's part holding the probe ends inside the crop without reaching the
    click; a part that misses the probe or reaches the crop's faces says nothing against it.
    """
    crop = Crop(crops.place(probe), None)
    crops.predict(crop, [Point(probe, 1)])
    parts, _ = ndimage.label(crops.mask_in_crop(crop))
    at_probe = parts[tuple(crop.grid.nearest_index(probe)[0])]
    if at_probe == 0:
        return True
    part = parts == at_probe
    if reaches_faces(part):
        return True  # the object goes on beyond the crop
    return crop.grid.contains(click.lps) and bool(part[tuple(crop.grid.nearest_index(click.lps)[0])])


def depth_below_surface(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` to its surface, the array's faces counting as surface."""
    return ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]


def depth_cores(depth: np.ndarray, prominence: float) -> np.ndarray:
    """Label the regions around the maxima of ``depth`` that rise ``prominence`` above their saddles.

    Among the levels of ``depth`` (1 mm apart), the one whose connected components include the most
    that reach ``prominence`` above it; returns those components labelled 1..n (all zero when fewer
    than two).
    """
    best, count = np.zeros(depth.shape, np.int32), 0
    for level in np.arange(1.0, float(depth.max()), 1.0):
        components, n = ndimage.label(depth >= level)
        if n < 2:
            continue
        peaks = ndimage.maximum(depth, components, index=np.arange(1, n + 1))
        prominent = np.flatnonzero(peaks >= level + prominence) + 1
        if len(prominent) > count:
            count = len(prominent)
            best = np.where(np.isin(components, prominent), np.searchsorted(prominent, components) + 1, 0)
    return best if count >= 2 else np.zeros(depth.shape, np.int32)
