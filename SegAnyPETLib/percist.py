"""PERCIST reference regions (Wahl et al. 2009), placed reproducibly, and their statistics.

    liver       3 cm sphere in the right lobe: the liver voxels with an LPS x below the liver's
                median x (the patient's right), among them those at least 15 mm inside the liver
                (Euclidean distance map), the one nearest the right part's centroid.
                Threshold 1.5 x mean + 2 x SD.
    blood pool  10 mm diameter, 20 mm long cylinder along the image's slice (k) axis in the
                descending aorta: aorta voxels posterior (LPS y) of the aorta's centroid, whose
                axis +-10 mm stays at least 5 mm inside the aorta, the one nearest the posterior
                part's centroid. Threshold 2 x mean + 2 x SD.
    When nothing fits, the deepest voxel is used, the region is clipped to the organ and the
    result carries a warning.

Masks are (z, y, x) like the SUV volume; geometry as in :mod:`SegAnyPETLib.voxel_grid`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .errors import SegAnyPETError
from .stats import SegmentStatistics, segment_statistics
from .voxel_grid import Vector, VoxelGrid, bounding_box, grow_box

logger = logging.getLogger(__name__)

LIVER_SPHERE_RADIUS_MM = 15.0
BLOOD_POOL_RADIUS_MM = 5.0
BLOOD_POOL_HALF_LENGTH_MM = 10.0


@dataclass
class ReferenceRegion:
    """A PERCIST reference region: its mask (z, y, x), where it was placed and how."""

    name: str
    mask: np.ndarray
    centre_ijk: Tuple[int, int, int]
    centre_lps: Vector
    description: str
    threshold_scale: float  # PERCIST threshold = threshold_scale x mean + 2 x SD
    warnings: List[str] = field(default_factory=list)


def _organ_frame(mask: np.ndarray, pad: Sequence[int]) -> Tuple[Tuple[slice, ...], np.ndarray]:
    box = bounding_box(mask)
    frame = grow_box(box, pad, mask.shape)
    return frame, mask[frame]


def _nearest(points_lps: np.ndarray, target: np.ndarray) -> int:
    return int(np.argmin(np.sum((points_lps - target) ** 2, axis=1)))


def _centre(voxels: np.ndarray, points: np.ndarray, depth: np.ndarray, radius_mm: float, no_room: str) -> Tuple[int, List[str]]:
    """The candidate (row of ``voxels``) for a reference region's centre: of those ``radius_mm`` deep,
    the one nearest the candidates' centroid; where none is, the deepest, with the warning ``no_room``."""
    deep = depth[tuple(voxels.T)]
    fits = deep >= radius_mm
    if fits.any():
        return int(np.flatnonzero(fits)[_nearest(points[fits], points.mean(axis=0))]), []
    return int(np.argmax(deep)), [no_room]


def _liver_reference(liver: np.ndarray, grid: VoxelGrid) -> ReferenceRegion:
    frame, organ = _organ_frame(liver, (1, 1, 1))
    offset = np.array([s.start for s in frame])
    depth = ndimage.distance_transform_edt(organ, sampling=grid.spacing_zyx)
    voxels = np.argwhere(organ)
    points = grid.lps_of_indices(voxels + offset)
    right = points[:, 0] <= np.median(points[:, 0])  # LPS x grows to the patient's left
    voxels, points = voxels[right], points[right]
    choice, warnings = _centre(voxels, points, depth, LIVER_SPHERE_RADIUS_MM,
                               "the liver has no room for a 3 cm sphere: the sphere at its deepest point is clipped to the liver")
    centre = voxels[choice] + offset
    sphere = _ball_or_cylinder(liver.shape, centre, grid, LIVER_SPHERE_RADIUS_MM, None)
    return ReferenceRegion(
        name="PERCIST liver reference",
        mask=sphere & liver,
        centre_ijk=tuple(int(v) for v in centre[::-1]),
        centre_lps=grid.lps(centre),
        description="3 cm diameter sphere in the right liver lobe",
        threshold_scale=1.5,
        warnings=warnings,
    )


def _blood_pool_reference(aorta: np.ndarray, grid: VoxelGrid) -> ReferenceRegion:
    half_slices = int(math.ceil(BLOOD_POOL_HALF_LENGTH_MM / grid.spacing[2] - 1e-9))
    frame, organ = _organ_frame(aorta, (half_slices + 1, 1, 1))
    offset = np.array([s.start for s in frame])
    depth = ndimage.distance_transform_edt(organ, sampling=grid.spacing_zyx)
    # the cylinder's axis must stay inside along +-10 mm of the slice axis
    axis_depth = ndimage.minimum_filter1d(depth, size=2 * half_slices + 1, axis=0, mode="constant", cval=0.0)
    voxels = np.argwhere(organ)
    points = grid.lps_of_indices(voxels + offset)
    posterior = points[:, 1] >= points[:, 1].mean()  # LPS y grows to the patient's back
    voxels, points = voxels[posterior], points[posterior]
    choice, warnings = _centre(voxels, points, axis_depth, BLOOD_POOL_RADIUS_MM,
                               "the descending aorta has no room for a 1 x 2 cm cylinder: it is clipped to the aorta")
    centre = voxels[choice] + offset
    cylinder = _ball_or_cylinder(aorta.shape, centre, grid, BLOOD_POOL_RADIUS_MM, BLOOD_POOL_HALF_LENGTH_MM)
    return ReferenceRegion(
        name="PERCIST blood pool reference",
        mask=cylinder & aorta,
        centre_ijk=tuple(int(v) for v in centre[::-1]),
        centre_lps=grid.lps(centre),
        description="1 cm diameter x 2 cm cylinder in the descending aorta, along the slice axis",
        threshold_scale=2.0,
        warnings=warnings,
    )


def _ball_or_cylinder(shape: Sequence[int], centre: np.ndarray, grid: VoxelGrid, radius: float, half_length: Optional[float]) -> np.ndarray:
    """Voxels whose centre lies in a ball (``half_length`` None) or a slice-axis cylinder around ``centre``."""
    reach = max(radius, half_length or 0.0)
    box = tuple(
        slice(max(int(c - math.ceil(reach / s)), 0), min(int(c + math.ceil(reach / s)) + 1, n))
        for c, s, n in zip(centre, grid.spacing_zyx, shape)
    )
    z, y, x = np.meshgrid(*[(np.arange(b.start, b.stop) - c) * s for b, c, s in zip(box, centre, grid.spacing_zyx)], indexing="ij")
    inside = (x**2 + y**2 + z**2 <= radius**2) if half_length is None else (x**2 + y**2 <= radius**2) & (np.abs(z) <= half_length)
    result = np.zeros(tuple(shape), dtype=bool)
    result[box] = inside
    return result


def reference_regions(
    masks: Mapping[str, np.ndarray],
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    liver: str = "liver",
    aorta: str = "aorta",
) -> List[ReferenceRegion]:
    """PERCIST reference regions from the ``liver`` and ``aorta`` masks of ``masks`` (the ones present)."""
    present = {name: np.asarray(masks[name]).astype(bool, copy=False) for name in (liver, aorta) if name in masks}
    present = {name: mask for name, mask in present.items() if mask.any()}
    if not present:
        raise SegAnyPETError(
            f"PERCIST reference regions need a non-empty segment named {liver!r} or {aorta!r}; found {', '.join(masks) or 'none'}"
        )
    grid = VoxelGrid.make(spacing, origin, direction)
    regions = []
    if liver in present:
        regions.append(_liver_reference(present[liver], grid))
    else:
        logger.warning("no %s segment: no PERCIST liver reference", liver)
    if aorta in present:
        regions.append(_blood_pool_reference(present[aorta], grid))
    else:
        logger.warning("no %s segment: no PERCIST blood pool reference", aorta)
    for region in regions:
        for warning in region.warnings:
            logger.warning("%s: %s", region.name, warning)
    return regions


def reference_statistics(
    suv: np.ndarray,
    regions: Sequence[ReferenceRegion],
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    suv_factor: float = 1.0,
) -> List[SegmentStatistics]:
    """Statistics of the reference regions, with their PERCIST threshold (scale x mean + 2 x SD)."""
    rows = segment_statistics(suv, {r.name: r.mask for r in regions}, spacing, origin, direction, suv_factor)
    for row, region in zip(rows, regions):
        row.percist_threshold = region.threshold_scale * row.suv_mean + 2.0 * row.suv_sd
    return rows
