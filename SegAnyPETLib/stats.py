"""Per-segment SUV statistics: volume, SUVmin/max/mean/SD, SUVpeak, TLG, SUVmax position.

The core, :func:`segment_statistics`, takes numpy arrays so the Slicer module can pass the arrays
of its MRML nodes: the SUV volume and one boolean mask per segment, all (z, y, x); segments may
overlap, each is measured on its own. Geometry follows ITK (LPS): spacing (x, y, z) in mm, origin
of voxel (0, 0, 0) and the 3 x 3 direction matrix (row-major, columns = the i, j, k axes); for a
Slicer IJKToRAS matrix use :func:`geometry_from_ijk_to_ras`. :func:`label_image_statistics` does
the same for a SimpleITK label image. PERCIST reference regions are in :mod:`SegAnyPETLib.percist`.

Definitions
    volume   voxel count x voxel volume (mL). TLG = SUVmean x volume (g for SUV in g/mL).
    SUVsd    population standard deviation (ddof = 0) of the segment's voxels.
    SUVmax   position: the first maximal voxel in (z, y, x) order; index (i, j, k) and LPS mm.
    SUVpeak  see :data:`SUVPEAK_DEFINITION` and :mod:`SegAnyPETLib.suv_peak` (PERCIST 1.0).

Refused, one :class:`SegAnyPETError` each: an SUV factor that is not a positive finite number, a
NaN or infinite voxel inside a segment or within the SUVpeak sphere of one (its statistics would be
NaN), a PET or segmentation that is not a 3D one-value-per-voxel image, a segmentation off the PET
grid, with negative or non-integer labels, or with labels that ``names`` does not name. Labels that
``names`` names but the segmentation lacks get an empty row and one warning listing them.

CSV columns (:data:`COLUMNS`; stable, the Slicer module reads ``segment``, ``volume [mL]``,
``SUVmax [g/mL]``, ``SUVmean [g/mL]`` and ``SUVpeak [g/mL]``): segment, label, voxels, volume [mL],
SUVmin/SUVmax/SUVmean/SUVsd/SUVpeak [g/mL], TLG [g], SUVmax i/j/k, SUVmax x/y/z [mm] (LPS),
SUVpeak x/y/z [mm] (LPS, sphere centre), PERCIST threshold [g/mL] (reference regions only),
SUVpeak definition. The unit is g/mL for SUVbw, SUL and SUVibw; an SUVbsa image gives cm2/mL.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, signal

from .errors import SegAnyPETError
from .io import check_volume, write_text
from .suv_peak import SUVPEAK_DEFINITION, kernel_coverage, suv_peak_kernel
from .voxel_grid import (  # noqa: F401  (geometry_from_ijk_to_ras: the Slicer module imports it from here)
    Box,
    Vector,
    VoxelGrid,
    bounding_box,
    box_volume,
    geometry_from_ijk_to_ras,
    grow_box,
    union_box,
)

logger = logging.getLogger(__name__)

COLUMNS: Tuple[str, ...] = (
    "segment", "label", "voxels", "volume [mL]",
    "SUVmin [g/mL]", "SUVmax [g/mL]", "SUVmean [g/mL]", "SUVsd [g/mL]", "SUVpeak [g/mL]", "TLG [g]",
    "SUVmax i", "SUVmax j", "SUVmax k", "SUVmax x [mm]", "SUVmax y [mm]", "SUVmax z [mm]",
    "SUVpeak x [mm]", "SUVpeak y [mm]", "SUVpeak z [mm]", "PERCIST threshold [g/mL]", "SUVpeak definition",
)  # fmt: skip


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


# ----------------------------------------------------------------------------------------- core
@dataclass
class _Region:
    name: str
    label: Optional[int]
    box: Box  # bounding box of the mask
    mask: np.ndarray  # the mask inside ``box``


def _empty(name: str, label: Optional[int]) -> SegmentStatistics:
    nan = float("nan")
    return SegmentStatistics(name, label, 0, 0.0, nan, nan, nan, nan, nan, nan, None, None, None)


def _describe(region: _Region) -> str:
    return f"segment {region.name}" + (f" (label {region.label})" if region.label is not None else "")


def _finite_suv(suv: np.ndarray, regions: Sequence[_Region], kernel: np.ndarray, pet_name: str) -> np.ndarray:
    """``suv`` if every voxel is finite; else refuse a NaN or infinite voxel that a statistic reads
    (inside a segment, or within the SUVpeak sphere of one of its voxels) and zero the others."""
    finite = np.isfinite(suv)
    if finite.all():
        return suv
    margin = [size // 2 for size in kernel.shape]
    for region in regions:
        corner = np.array([s.start for s in region.box])
        inside = region.mask & ~finite[region.box]
        where = "inside it"
        if not inside.any():
            frame = grow_box(region.box, margin, suv.shape)
            placed = np.zeros([f.stop - f.start for f in frame], dtype=bool)
            placed[tuple(slice(b.start - f.start, b.stop - f.start) for b, f in zip(region.box, frame))] = region.mask
            inside = ndimage.binary_dilation(placed, structure=kernel > 0) & ~finite[frame]
            corner, where = np.array([f.start for f in frame]), "within the 1 mL SUVpeak sphere of its voxels"
        if inside.any():
            first = tuple(int(v) for v in (corner + np.argwhere(inside)[0])[::-1])
            raise SegAnyPETError(
                f"{pet_name} has {int(inside.sum())} NaN or infinite voxel(s) {where} of {_describe(region)}, "
                f"first at voxel (i, j, k) = {first}; its statistics would be NaN"
            )
    return np.where(finite, suv, 0.0)  # read by no statistic


def _statistics(suv: np.ndarray, regions: Sequence[_Region], grid: VoxelGrid, pet_name: str) -> List[SegmentStatistics]:
    kernel = suv_peak_kernel(grid.spacing)
    margin = [size // 2 for size in kernel.shape]
    filled = [region for region in regions if region.mask.any()]
    suv = _finite_suv(suv, filled, kernel, pet_name)
    # SUVpeak needs the sphere means at the segment voxels: one convolution over the union of the
    # (margin-grown) boxes, or one per segment when that is less work (segments far apart).
    grown = {id(region): grow_box(region.box, margin, suv.shape) for region in filled}
    union = union_box(grown.values()) if filled else None
    shared = None
    if filled and box_volume(union) <= sum(box_volume(box) for box in grown.values()):
        shared = signal.convolve(suv[union], kernel, mode="same", method="auto")
    results = []
    for region in regions:
        if not any(region is other for other in filled):
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
        means = np.where(mask, sums / kernel_coverage(suv.shape, kernel, box), -np.inf)
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


def check_suv_factor(suv_factor: Any) -> float:
    """The SUV factor as a float, or one clear error unless it is a positive finite number."""
    try:
        factor = float(suv_factor)
    except (TypeError, ValueError):
        factor = float("nan")
    if not (math.isfinite(factor) and factor > 0):
        raise SegAnyPETError(f"the SUV factor (--suv-factor) must be a positive finite number, got {suv_factor!r}")
    return factor


def _suv_array(suv: np.ndarray, suv_factor: float) -> np.ndarray:
    factor = check_suv_factor(suv_factor)
    suv = np.asarray(suv)
    if suv.ndim != 3:
        raise SegAnyPETError(f"statistics need a 3D SUV volume (one value per voxel), got shape {suv.shape}")
    return suv * factor if factor != 1.0 else suv.astype(np.float64, copy=False)


def segment_statistics(
    suv: np.ndarray,
    masks: Mapping[str, np.ndarray],
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    suv_factor: float = 1.0,
    labels: Optional[Mapping[str, int]] = None,
    *,
    pet_name: str = "the PET",
) -> List[SegmentStatistics]:
    """Statistics of each segment ``name -> mask`` (boolean, (z, y, x) like ``suv``), in mapping order.

    ``suv * suv_factor`` are the SUVs (pass the factor of ``seganypet suv`` for an activity image);
    ``pet_name`` starts the message that refuses a NaN voxel. An empty mask gives an empty row.
    """
    suv = _suv_array(suv, suv_factor)
    grid = VoxelGrid.make(spacing, origin, direction)
    regions = []
    for name, mask in masks.items():
        mask = np.asarray(mask)
        if mask.shape != suv.shape:
            raise SegAnyPETError(f"segment {name}: mask shape {mask.shape} differs from the SUV volume {suv.shape}")
        mask = mask.astype(bool, copy=False)
        box = bounding_box(mask)
        if box is None:
            logger.warning("segment %s is empty", name)
            regions.append(_Region(name, (labels or {}).get(name), (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)))
        else:
            regions.append(_Region(name, (labels or {}).get(name), box, mask[box]))
    return _statistics(suv, regions, grid, pet_name)


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
    *,
    pet_name: str = "the PET",
    seg_name: str = "the segmentation",
) -> List[SegmentStatistics]:
    """Statistics of every non-zero label of ``seg`` (on the grid of ``pet``), in label order.

    ``names`` maps label values to segment names; a label it names that ``seg`` lacks gets an empty
    row (one warning lists them). Without ``names`` the SegAnyPET label names are used where they
    fit (:data:`SegAnyPETLib.labels.LABELS`), ``label_<value>`` otherwise. ``pet_name`` and
    ``seg_name`` (e.g. the files) start the messages that refuse them.
    """
    from .labels import LABELS

    check_volume(pet, pet_name)
    check_volume(seg, seg_name)
    check_same_grid(pet, seg)
    if "float" in seg.GetPixelIDTypeAsString():
        raise SegAnyPETError(f"{seg_name} must be an integer label image, got {seg.GetPixelIDTypeAsString()}")
    suv = _suv_array(sitk.GetArrayViewFromImage(pet), suv_factor)
    label_array = np.asarray(sitk.GetArrayViewFromImage(seg))
    if label_array.min() < 0:
        raise SegAnyPETError(f"{seg_name} has negative label values ({label_array.min()}); labels are 0 (background) or positive")
    boxes = ndimage.find_objects(label_array)
    present = [index + 1 for index, box in enumerate(boxes) if box is not None]
    if names is None:
        by_value = {value: name for name, value in LABELS.items()}
        names = {value: by_value.get(value, f"label_{value}") for value in present}
    missing = [value for value in present if value not in names]
    if missing:
        raise SegAnyPETError(
            f"label values {missing} of {seg_name} have no name in the labels file "
            f"(it names {sorted(names)}); add them or fix the segmentation"
        )
    absent = sorted(value for value in names if value not in present)
    if absent:
        logger.warning("%s lacks %d named label(s), given empty rows: %s", seg_name, len(absent),
                       ", ".join(f"{names[value]} ({value})" for value in absent))
    empty = (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)
    regions = [
        _Region(names[value], value, boxes[value - 1], label_array[boxes[value - 1]] == value) if value in present
        else _Region(names[value], value, *empty)
        for value in sorted(set(present) | set(absent))
    ]
    grid = VoxelGrid.make(pet.GetSpacing(), pet.GetOrigin(), pet.GetDirection())
    return _statistics(suv, regions, grid, pet_name)


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


def write_statistics_csv(
    rows: Sequence[SegmentStatistics], path: str | os.PathLike, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> None:
    """Write :func:`statistics_table` atomically (refuses an existing file unless ``overwrite``, and
    any of ``inputs``; see :func:`SegAnyPETLib.io.ensure_writable`)."""
    write_text(path, statistics_table(rows), overwrite, inputs)


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
