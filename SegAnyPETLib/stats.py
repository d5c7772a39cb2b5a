"""Per-segment SUV statistics: volume, SUVmin/max/mean/SD, SUVpeak, TLG, SUVmax position.

The core, :func:`segment_statistics`, takes numpy arrays so the Slicer module can pass the arrays
of its MRML nodes: the SUV volume and one boolean mask per segment, all (z, y, x); segments may
overlap, each is measured on its own. Geometry follows ITK (LPS): spacing (x, y, z) in mm, origin
of voxel (0, 0, 0) and the 3 x 3 direction matrix (row-major, columns = the i, j, k axes); for a
Slicer IJKToRAS matrix use :func:`geometry_from_ijk_to_ras`. :func:`label_image_statistics` does
the same for a SimpleITK label image.

Definitions
    volume   voxel count x voxel volume (mL). TLG = SUVmean x volume (g for SUV in g/mL).
    SUVsd    population standard deviation (ddof = 0) of the segment's voxels.
    SUVmax   position: the first maximal voxel in (z, y, x) order; index (i, j, k) and LPS mm.
    SUVpeak  see :data:`SUVPEAK_DEFINITION` (PERCIST 1.0, Wahl et al. 2009): the highest mean SUV in
             a sphere of 1 mL (radius 6.2035 mm) whose centre may be any voxel centre of the
             segment; the sphere averages all image voxels it covers, in or out of the segment,
             each weighted by the fraction of its volume inside the sphere (counted on a sub-grid
             of at least 10 points and at most 0.2 mm per axis). Near the image border the mean is over the part of the sphere
             inside the image.

CSV columns (:data:`COLUMNS`; stable, the Slicer module reads ``segment``, ``volume [mL]``,
``SUVmax [g/mL]``, ``SUVmean [g/mL]`` and ``SUVpeak [g/mL]``): segment, label, voxels, volume [mL],
SUVmin/SUVmax/SUVmean/SUVsd/SUVpeak [g/mL], TLG [g], SUVmax i/j/k, SUVmax x/y/z [mm] (LPS),
SUVpeak x/y/z [mm] (LPS, sphere centre), PERCIST threshold [g/mL] (reference regions only),
SUVpeak definition. The unit is g/mL for SUVbw, SUL and SUVibw; an SUVbsa image gives cm2/mL.

PERCIST reference regions (:func:`reference_regions`), placed reproducibly:
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
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, signal

from .errors import SegAnyPETError

logger = logging.getLogger(__name__)

SUVPEAK_RADIUS_MM: float = 10.0 * (3.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # 1 cm^3 sphere: 6.2035 mm
SUVPEAK_SUBSAMPLES: int = 10  # at least this many sub-grid points per voxel and axis ...
SUVPEAK_SUBGRID_MM: float = 0.2  # ... and no coarser than this
SUVPEAK_DEFINITION: str = (
    "PERCIST SUVpeak: highest mean SUV in a 1 cm3 sphere (radius 6.2 mm) centred on any voxel of the segment; "
    "voxels weighted by their volume fraction inside the sphere; at the image border, mean of the part inside the image"
)
COLUMNS: Tuple[str, ...] = (
    "segment", "label", "voxels", "volume [mL]",
    "SUVmin [g/mL]", "SUVmax [g/mL]", "SUVmean [g/mL]", "SUVsd [g/mL]", "SUVpeak [g/mL]", "TLG [g]",
    "SUVmax i", "SUVmax j", "SUVmax k", "SUVmax x [mm]", "SUVmax y [mm]", "SUVmax z [mm]",
    "SUVpeak x [mm]", "SUVpeak y [mm]", "SUVpeak z [mm]", "PERCIST threshold [g/mL]", "SUVpeak definition",
)  # fmt: skip
LIVER_SPHERE_RADIUS_MM = 15.0
BLOOD_POOL_RADIUS_MM = 5.0
BLOOD_POOL_HALF_LENGTH_MM = 10.0

Vector = Tuple[float, float, float]


@dataclass
class SegmentStatistics:
    """The statistics of one segment; NaN / None for an empty segment."""

    segment: str
    label: Optional[int]
    voxel_count: int
    volume_ml: float
    suv_min: float
    suv_max: float
    suv_mean: float
    suv_sd: float
    suv_peak: float
    tlg: float
    suv_max_index_ijk: Optional[Tuple[int, int, int]]
    suv_max_position_lps: Optional[Vector]
    suv_peak_position_lps: Optional[Vector]
    percist_threshold: Optional[float] = None

    def as_row(self) -> Dict[str, Any]:
        """The CSV row: :data:`COLUMNS` to values (None for an empty cell)."""
        ijk = self.suv_max_index_ijk or (None, None, None)
        top = self.suv_max_position_lps or (None, None, None)
        peak = self.suv_peak_position_lps or (None, None, None)
        values = [
            self.segment, self.label, self.voxel_count, self.volume_ml,
            self.suv_min, self.suv_max, self.suv_mean, self.suv_sd, self.suv_peak, self.tlg,
            *ijk, *top, *peak, self.percist_threshold, SUVPEAK_DEFINITION,
        ]  # fmt: skip
        return dict(zip(COLUMNS, values))


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


# ----------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Grid:
    spacing: np.ndarray  # (x, y, z) mm
    origin: np.ndarray  # LPS mm
    direction: np.ndarray  # 3 x 3, columns = the i, j, k axes

    @classmethod
    def make(cls, spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]) -> "_Grid":
        spacing = np.asarray(spacing, dtype=np.float64).ravel()
        origin = np.asarray(origin, dtype=np.float64).ravel()
        direction = np.asarray(direction, dtype=np.float64).ravel()
        if spacing.shape != (3,) or not np.all(spacing > 0):
            raise SegAnyPETError(f"voxel spacing must be 3 positive numbers (x, y, z) in mm, got {spacing.tolist()}")
        if origin.shape != (3,) or direction.shape != (9,):
            raise SegAnyPETError(f"origin must be 3 numbers and direction 9, got {origin.tolist()} and {direction.tolist()}")
        return cls(spacing, origin, direction.reshape(3, 3))

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def spacing_zyx(self) -> np.ndarray:
        return self.spacing[::-1]

    def lps(self, zyx: Sequence[float]) -> Vector:
        ijk = np.asarray(zyx, dtype=np.float64)[::-1]
        return tuple(float(v) for v in self.origin + self.direction @ (self.spacing * ijk))

    def lps_of_indices(self, zyx_indices: np.ndarray) -> np.ndarray:
        """(N, 3) z, y, x indices -> (N, 3) LPS points in mm."""
        return self.origin + (zyx_indices[:, ::-1] * self.spacing) @ self.direction.T


def geometry_from_ijk_to_ras(matrix: Sequence[Sequence[float]]) -> Tuple[Vector, Vector, Tuple[float, ...]]:
    """Spacing (x, y, z), LPS origin and LPS direction (row-major) from a 4 x 4 IJK-to-RAS matrix (Slicer)."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    axes = ras_to_lps @ matrix[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    direction = axes / spacing
    origin = ras_to_lps @ matrix[:3, 3]
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


# ----------------------------------------------------------------------------------------- SUVpeak
def suv_peak_kernel(spacing: Sequence[float], radius_mm: float = SUVPEAK_RADIUS_MM) -> np.ndarray:
    """Weights (z, y, x) of the voxels around a voxel centre: their volume fraction inside the sphere.

    Each voxel is cut into a sub-grid of ``max(SUVPEAK_SUBSAMPLES, ceil(step / SUVPEAK_SUBGRID_MM))``
    points per axis; the fraction is the share of those points within ``radius_mm`` of the centre.
    """
    axes = []
    for step in np.asarray(spacing, dtype=np.float64)[::-1]:  # z, y, x
        half = int(math.floor(radius_mm / step + 0.5))
        count = max(SUVPEAK_SUBSAMPLES, int(math.ceil(step / SUVPEAK_SUBGRID_MM)))
        offsets = np.arange(-half, half + 1)[:, None] + (np.arange(count) + 0.5)[None, :] / count - 0.5
        axes.append((offsets * step) ** 2)  # (2 half + 1, count) squared distances along the axis
    z2, y2, x2 = axes
    plane = y2[:, None, :, None] + x2[None, :, None, :]  # (ky, kx, ny, nx)
    return np.stack(
        [((z[:, None, None, None, None] + plane[None]) <= radius_mm**2).mean(axis=(0, 3, 4)) for z in z2]
    )


def _kernel_coverage(shape: Sequence[int], kernel: np.ndarray, box: Tuple[slice, ...]) -> np.ndarray:
    """Sum of the kernel weights inside the image, for the kernel centred at each voxel of ``box``.

    Only voxels within half a kernel of the border miss weight, so the sums are computed on a
    small image with one interior voxel per axis and indexed back.
    """
    maps, small_shape = [], []
    for length, size, part in zip(shape, kernel.shape, box):
        half = size // 2
        index = np.arange(part.start, part.stop)
        if length > size:  # interior voxels see the whole kernel along this axis
            index = np.where(index < half, index, np.where(index >= length - half, index - length + size, half))
            length = size
        maps.append(index)
        small_shape.append(length)
    coverage = ndimage.correlate(np.ones(small_shape), kernel, mode="constant", cval=0.0)
    return coverage[np.ix_(*maps)]


def _box(slices: Tuple[slice, ...], margin: Sequence[int], shape: Sequence[int]) -> Tuple[slice, ...]:
    return tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(slices, margin, shape))


def _box_volume(slices: Tuple[slice, ...]) -> int:
    return int(np.prod([s.stop - s.start for s in slices]))


def _union(boxes: Iterable[Tuple[slice, ...]]) -> Tuple[slice, ...]:
    boxes = list(boxes)
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


# ----------------------------------------------------------------------------------------- core
@dataclass
class _Region:
    name: str
    label: Optional[int]
    box: Tuple[slice, ...]  # bounding box of the mask
    mask: np.ndarray  # the mask inside ``box``


def _bounding_box(mask: np.ndarray) -> Optional[Tuple[slice, ...]]:
    box = []
    for axis in range(3):
        hits = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _empty(name: str, label: Optional[int]) -> SegmentStatistics:
    nan = float("nan")
    return SegmentStatistics(name, label, 0, 0.0, nan, nan, nan, nan, nan, nan, None, None, None)


def _statistics(suv: np.ndarray, regions: Sequence[_Region], grid: _Grid) -> List[SegmentStatistics]:
    kernel = suv_peak_kernel(grid.spacing)
    margin = [size // 2 for size in kernel.shape]
    filled = [region for region in regions if region.mask.any()]
    # SUVpeak needs the sphere means at the segment voxels: one convolution over the union of the
    # (margin-grown) boxes, or one per segment when that is less work (segments far apart).
    grown = {id(region): _box(region.box, margin, suv.shape) for region in filled}
    union = _union(grown.values()) if filled else None
    shared = None
    if filled and _box_volume(union) <= sum(_box_volume(box) for box in grown.values()):
        shared = signal.convolve(suv[union], kernel, mode="same", method="auto")
    results = []
    for region in regions:
        if not any(region is other for other in filled):
            logger.warning("segment %s is empty", region.name)
            results.append(_empty(region.name, region.label))
            continue
        box, mask = region.box, region.mask
        suv_box = suv[box]
        values = suv_box[mask]
        top = np.unravel_index(int(np.argmax(np.where(mask, suv_box, -np.inf))), mask.shape)
        if shared is not None:
            frame, sums = union, shared
        else:
            frame = grown[id(region)]
            sums = signal.convolve(suv[frame], kernel, mode="same", method="auto")
        sums = sums[tuple(slice(b.start - f.start, b.stop - f.start) for b, f in zip(box, frame))]
        means = np.where(mask, sums / _kernel_coverage(suv.shape, kernel, box), -np.inf)
        peak = np.unravel_index(int(np.argmax(means)), mask.shape)
        corner = np.array([s.start for s in box])
        top_zyx, peak_zyx = corner + top, corner + peak
        count = int(values.size)
        mean = float(values.mean())
        volume = count * grid.voxel_ml
        results.append(
            SegmentStatistics(
                segment=region.name,
                label=region.label,
                voxel_count=count,
                volume_ml=volume,
                suv_min=float(values.min()),
                suv_max=float(suv_box[top]),
                suv_mean=mean,
                suv_sd=float(values.std()),
                suv_peak=float(means[peak]),
                tlg=mean * volume,
                suv_max_index_ijk=tuple(int(v) for v in top_zyx[::-1]),
                suv_max_position_lps=grid.lps(top_zyx),
                suv_peak_position_lps=grid.lps(peak_zyx),
            )
        )
    return results


def _suv_array(suv: np.ndarray, suv_factor: float) -> np.ndarray:
    suv = np.asarray(suv)
    if suv.ndim != 3:
        raise SegAnyPETError(f"statistics need a 3D SUV volume (one value per voxel), got shape {suv.shape}")
    return suv * float(suv_factor) if suv_factor != 1.0 else suv.astype(np.float64, copy=False)


def segment_statistics(
    suv: np.ndarray,
    masks: Mapping[str, np.ndarray],
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    suv_factor: float = 1.0,
    labels: Optional[Mapping[str, int]] = None,
) -> List[SegmentStatistics]:
    """Statistics of each segment ``name -> mask`` (boolean, (z, y, x) like ``suv``), in mapping order.

    ``suv * suv_factor`` are the SUVs (pass the factor of ``seganypet suv`` for an activity image).
    """
    suv = _suv_array(suv, suv_factor)
    grid = _Grid.make(spacing, origin, direction)
    regions = []
    for name, mask in masks.items():
        mask = np.asarray(mask)
        if mask.shape != suv.shape:
            raise SegAnyPETError(f"segment {name}: mask shape {mask.shape} differs from the SUV volume {suv.shape}")
        mask = mask.astype(bool, copy=False)
        box = _bounding_box(mask)
        if box is None:
            regions.append(_Region(name, (labels or {}).get(name), (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)))
        else:
            regions.append(_Region(name, (labels or {}).get(name), box, mask[box]))
    return _statistics(suv, regions, grid)


def check_same_grid(pet: sitk.Image, seg: sitk.Image) -> None:
    """Refuse a segmentation that is not on the PET grid (size, spacing, origin, direction)."""
    problems = []
    if pet.GetSize() != seg.GetSize():
        problems.append(f"size {seg.GetSize()} vs {pet.GetSize()}")
    for what, a, b, tolerance in (
        ("spacing", seg.GetSpacing(), pet.GetSpacing(), 1e-4),
        ("origin", seg.GetOrigin(), pet.GetOrigin(), 1e-3),
        ("direction", seg.GetDirection(), pet.GetDirection(), 1e-4),
    ):
        if not np.allclose(a, b, atol=tolerance * max(1.0, float(np.max(np.abs(b))))):
            problems.append(f"{what} {tuple(round(v, 4) for v in a)} vs {tuple(round(v, 4) for v in b)}")
    if problems:
        raise SegAnyPETError(
            f"the segmentation is not on the PET grid ({'; '.join(problems)}); resample it onto the PET first"
        )


def label_image_statistics(
    pet: sitk.Image,
    seg: sitk.Image,
    names: Optional[Mapping[int, str]] = None,
    suv_factor: float = 1.0,
) -> List[SegmentStatistics]:
    """Statistics of every non-zero label of ``seg`` (on the grid of ``pet``), in label order.

    ``names`` maps label values to segment names; without it the SegAnyPET label names are used
    where they fit (:data:`SegAnyPETLib.labels.LABELS`), ``label_<value>`` otherwise.
    """
    from .labels import LABELS

    check_same_grid(pet, seg)
    if seg.GetNumberOfComponentsPerPixel() != 1 or "float" in seg.GetPixelIDTypeAsString():
        raise SegAnyPETError(f"the segmentation must be an integer label image, got {seg.GetPixelIDTypeAsString()}")
    suv = _suv_array(sitk.GetArrayViewFromImage(pet), suv_factor)
    label_array = np.asarray(sitk.GetArrayViewFromImage(seg))
    if label_array.min() < 0:
        raise SegAnyPETError(f"the segmentation has negative label values ({label_array.min()}); labels are 0 (background) or positive")
    boxes = ndimage.find_objects(label_array)
    present = [index + 1 for index, box in enumerate(boxes) if box is not None]
    if names is None:
        by_value = {value: name for name, value in LABELS.items()}
        names = {value: by_value.get(value, f"label_{value}") for value in present}
    missing = [value for value in present if value not in names]
    if missing:
        raise SegAnyPETError(
            f"label values {missing} of the segmentation have no name in the labels file "
            f"(it names {sorted(names)}); add them or fix the segmentation"
        )
    regions = [_Region(names[value], value, boxes[value - 1], label_array[boxes[value - 1]] == value) for value in present]
    grid = _Grid.make(pet.GetSpacing(), pet.GetOrigin(), pet.GetDirection())
    return _statistics(suv, regions, grid)


# ----------------------------------------------------------------------------------------- PERCIST
def _organ_frame(mask: np.ndarray, pad: Sequence[int]) -> Tuple[Tuple[slice, ...], np.ndarray]:
    box = _bounding_box(mask)
    frame = _box(box, pad, mask.shape)
    return frame, mask[frame]


def _nearest(points_lps: np.ndarray, target: np.ndarray) -> int:
    return int(np.argmin(np.sum((points_lps - target) ** 2, axis=1)))


def _liver_reference(liver: np.ndarray, grid: _Grid) -> ReferenceRegion:
    frame, organ = _organ_frame(liver, (1, 1, 1))
    offset = np.array([s.start for s in frame])
    depth = ndimage.distance_transform_edt(organ, sampling=grid.spacing_zyx)
    voxels = np.argwhere(organ)
    points = grid.lps_of_indices(voxels + offset)
    right = points[:, 0] <= np.median(points[:, 0])  # LPS x grows to the patient's left
    voxels, points = voxels[right], points[right]
    centroid = points.mean(axis=0)
    fits = depth[tuple(voxels.T)] >= LIVER_SPHERE_RADIUS_MM
    warnings = []
    if fits.any():
        choice = np.flatnonzero(fits)[_nearest(points[fits], centroid)]
    else:
        choice = int(np.argmax(depth[tuple(voxels.T)]))
        warnings.append("the liver has no room for a 3 cm sphere: the sphere at its deepest point is clipped to the liver")
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


def _blood_pool_reference(aorta: np.ndarray, grid: _Grid) -> ReferenceRegion:
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
    fits = axis_depth[tuple(voxels.T)] >= BLOOD_POOL_RADIUS_MM
    warnings = []
    if fits.any():
        choice = np.flatnonzero(fits)[_nearest(points[fits], points.mean(axis=0))]
    else:
        choice = int(np.argmax(axis_depth[tuple(voxels.T)]))
        warnings.append("the descending aorta has no room for a 1 x 2 cm cylinder: it is clipped to the aorta")
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


def _ball_or_cylinder(shape: Sequence[int], centre: np.ndarray, grid: _Grid, radius: float, half_length: Optional[float]) -> np.ndarray:
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
    grid = _Grid.make(spacing, origin, direction)
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


# ----------------------------------------------------------------------------------------- output
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, ".8g")
    return str(value)


def statistics_table(rows: Sequence[SegmentStatistics]) -> str:
    """The CSV text: a header of :data:`COLUMNS` (units in brackets) and one row per segment."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(value) for value in row.as_row().values()])
    return buffer.getvalue()


def statistics_json(rows: Sequence[SegmentStatistics]) -> Dict[str, Any]:
    """JSON-ready statistics: the SUVpeak definition and one object per segment (NaN -> None)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, tuple):
            return list(value)
        return value

    return {
        "suv_peak_definition": SUVPEAK_DEFINITION,
        "units": {"volume_ml": "mL", "suv": "g/mL", "tlg": "g", "positions": "mm, LPS"},
        "segments": [{key: clean(value) for key, value in asdict(row).items()} for row in rows],
    }


def write_statistics_csv(rows: Sequence[SegmentStatistics], path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write :func:`statistics_table` atomically (refuses an existing file unless ``overwrite``)."""
    from .io import write_text

    write_text(path, statistics_table(rows), overwrite)


# ----------------------------------------------------------------------------------------- bench
def benchmark_statistics(shape: Tuple[int, int, int] = (300, 200, 200), segments: int = 15, seed: int = 0) -> Dict[str, float]:
    """Seconds for the statistics of a synthetic whole-body volume (z, y, x) of 2 mm voxels.

    Segment 1 is the body (a cylinder over most of the volume, the costly case for SUVpeak), the
    others random ellipsoids (organs, lesions); timed through the label image and the mask paths.
    """
    rng = np.random.default_rng(seed)
    suv = rng.gamma(2.0, 0.5, size=shape).astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((y - shape[1] / 2) / (0.45 * shape[1])) ** 2 + ((x - shape[2] / 2) / (0.45 * shape[2])) ** 2 <= 1
    labels[np.broadcast_to(body, shape)] = 1
    for value in range(2, segments + 1):
        centre = rng.uniform(0.15, 0.85, size=3) * shape
        radii = rng.uniform(0.02, 0.12, size=3) * shape
        inside = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2 <= 1
        labels[inside] = value
    pet, seg = sitk.GetImageFromArray(suv), sitk.GetImageFromArray(labels)
    pet.SetSpacing((2.0, 2.0, 2.0))
    seg.CopyInformation(pet)
    names = {value: f"segment {value}" for value in range(1, segments + 1)}
    start = time.perf_counter()
    label_image_statistics(pet, seg, names)
    label_seconds = time.perf_counter() - start
    masks = {name: labels == value for value, name in names.items()}
    start = time.perf_counter()
    segment_statistics(suv, masks, (2.0, 2.0, 2.0))
    mask_seconds = time.perf_counter() - start
    return {"voxels": float(np.prod(shape)), "segments": float(segments), "label_image_s": label_seconds, "masks_s": mask_seconds}
