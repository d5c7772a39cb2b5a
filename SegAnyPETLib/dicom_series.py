"""Read one PET DICOM series from a folder: find its images, sort the slices, check the geometry.

:func:`read_pet_series` looks at every file under the folder (sub-folders included), keeps the
images with Modality ``PT``, insists on one series (``series_uid`` picks one when there are
several) and sorts the slices along the slice normal (the cross product of the two
ImageOrientationPatient cosines), not by file name or InstanceNumber. The geometry must be a
regular grid: same orientation, pixel spacing and matrix on every slice, one slice per position
(several images at one position are frames of a dynamic or gated series, which this reader does
not take apart) and even slice spacing.

:class:`DicomSeries` keeps the headers without pixel data; :meth:`DicomSeries.rescaled_pixels`
reads the pixels and applies each slice's own RescaleSlope/RescaleIntercept, and
:meth:`DicomSeries.make_image` puts an array on the series' grid as a SimpleITK image (LPS
origin and direction, spacing x, y, z in mm).
"""
from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from .dicom_header import tag_label
from .errors import SegAnyPETError

logger = logging.getLogger(__name__)

# Slices closer than this (mm) along the normal count as the same position.
_SAME_POSITION_MM = 1e-3
# Slice gaps may differ by this fraction of the mean gap (rounding in ImagePositionPatient).
_SPACING_TOLERANCE = 0.01


@dataclass
class DicomSeries:
    """One PET series, slices sorted along the slice normal (first = lowest position)."""

    folder: Path
    files: List[Path]
    headers: List[pydicom.Dataset]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[float, ...]

    @property
    def size(self) -> Tuple[int, int, int]:
        """Image size (x, y, z) = (Columns, Rows, slices)."""
        return int(self.headers[0].Columns), int(self.headers[0].Rows), len(self.headers)

    @property
    def series_instance_uid(self) -> str:
        return str(self.headers[0].get("SeriesInstanceUID", ""))

    def rescaled_pixels(self) -> np.ndarray:
        """Pixel values ``stored * RescaleSlope + RescaleIntercept`` of every slice, (z, y, x) float64."""
        nx, ny, nz = self.size
        volume = np.empty((nz, ny, nx), dtype=np.float64)
        for index, path in enumerate(self.files):
            try:
                dataset = pydicom.dcmread(path)
                pixels = dataset.pixel_array
            except Exception as error:  # pydicom raises many types for missing codecs / bad data
                raise SegAnyPETError(f"cannot read the pixel data of {path}: {error}") from error
            if pixels.shape != (ny, nx):
                raise SegAnyPETError(f"{path}: pixel data has shape {pixels.shape}, expected {(ny, nx)}")
            slope = decimal_value(dataset, "RescaleSlope", path, 1.0)
            if slope == 0:
                raise SegAnyPETError(f"{path}: RescaleSlope (0028,1053) is 0; every voxel would be the intercept")
            volume[index] = pixels * slope + decimal_value(dataset, "RescaleIntercept", path, 0.0)
        return volume

    def make_image(self, array: np.ndarray) -> sitk.Image:
        """A float32 SimpleITK image of ``array`` (z, y, x) on this series' grid."""
        nx, ny, nz = self.size
        if array.shape != (nz, ny, nx):
            raise ValueError(f"array shape {array.shape} does not match the series grid {(nz, ny, nx)}")
        image = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def decimal_value(dataset: pydicom.Dataset, keyword: str, path: Path, default: float) -> float:
    """A one-value decimal string (DS) tag as a float, ``default`` when absent or empty; one clear
    error naming the tag and the file when it is not a finite number."""
    try:
        value = dataset.get(keyword)
    except ValueError:  # pydicom set to validate strictly
        value = "malformed"
    if value is None or str(value).strip() == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        raise SegAnyPETError(f"{path}: {tag_label(keyword)} is {str(value)!r}, not a decimal number")
    return number


def _dicom_files(folder: Path) -> List[Path]:
    return sorted(
        Path(root) / name
        for root, _dirs, names in os.walk(folder)
        for name in names
        if not name.startswith(".") and name.upper() != "DICOMDIR"
    )


def _read_headers(folder: Path) -> List[Tuple[Path, pydicom.Dataset]]:
    headers = []
    for path in _dicom_files(folder):
        try:
            headers.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except (InvalidDicomError, OSError, EOFError, ValueError):
            logger.debug("skipping %s: not a DICOM file", path)
    return headers


def _float_list(dataset: pydicom.Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    value = dataset.get(keyword)
    try:
        values = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([])
    if values.shape != (count,):
        raise SegAnyPETError(f"{path}: {keyword} missing or malformed ({value!r}); cannot place the slice in space")
    return values


def _choose_series(
    folder: Path, images: List[Tuple[Path, pydicom.Dataset]], series_uid: Optional[str]
) -> List[Tuple[Path, pydicom.Dataset]]:
    by_series: Dict[str, List[Tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    for path, dataset in images:
        by_series[str(dataset.get("SeriesInstanceUID", "unknown"))].append((path, dataset))
    if series_uid is not None:
        if series_uid not in by_series:
            raise SegAnyPETError(
                f"{folder}: no PET series with SeriesInstanceUID {series_uid}; found {', '.join(sorted(by_series))}"
            )
        return by_series[series_uid]
    if len(by_series) > 1:
        listing = "; ".join(
            f"{uid} ({len(items)} images, {items[0][1].get('SeriesDescription', 'no description')!s})"
            for uid, items in sorted(by_series.items())
        )
        raise SegAnyPETError(
            f"{folder} holds {len(by_series)} PET series: {listing}; pass --series UID (series_uid=) to choose one"
        )
    return next(iter(by_series.values()))


def read_pet_series(folder: str | os.PathLike, series_uid: Optional[str] = None) -> DicomSeries:
    """Find, sort and check the PET images (Modality PT) of one series under ``folder``."""
    folder = Path(folder)
    if not folder.exists():
        raise SegAnyPETError(f"DICOM folder {folder} does not exist")
    if not folder.is_dir():
        raise SegAnyPETError(f"{folder} is not a folder; pass the folder that holds the PET DICOM series")
    headers = _read_headers(folder)
    if not headers:
        raise SegAnyPETError(f"{folder} holds no DICOM files")
    images = [(path, ds) for path, ds in headers if str(ds.get("Modality", "")).upper() == "PT"]
    if not images:
        found = Counter(str(ds.get("Modality", "no Modality")) for _path, ds in headers)
        listing = ", ".join(f"{modality}: {count}" for modality, count in sorted(found.items()))
        raise SegAnyPETError(f"{folder} holds no PET images (Modality PT); found {listing}")
    images = _choose_series(folder, images, series_uid)
    return _sorted_series(folder, images)


def _sorted_series(folder: Path, images: Sequence[Tuple[Path, pydicom.Dataset]]) -> DicomSeries:
    first_path, first = images[0]
    frames = int(first.get("NumberOfFrames", 1) or 1)
    if frames > 1 or "PerFrameFunctionalGroupsSequence" in first:
        raise SegAnyPETError(
            f"{first_path}: multi-frame (Enhanced PET) images are not supported; export the series as one file per slice"
        )
    orientation = _float_list(first, "ImageOrientationPatient", 6, first_path)
    pixel_spacing = _float_list(first, "PixelSpacing", 2, first_path)
    rows, columns = int(first.get("Rows", 0)), int(first.get("Columns", 0))
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    normal = np.cross(row_cosine, column_cosine)
    positions = []
    for path, dataset in images:
        if not np.allclose(_float_list(dataset, "ImageOrientationPatient", 6, path), orientation, atol=1e-4):
            raise SegAnyPETError(f"{path}: ImageOrientationPatient differs from {first_path}; not one volume")
        if not np.allclose(_float_list(dataset, "PixelSpacing", 2, path), pixel_spacing, rtol=1e-4):
            raise SegAnyPETError(f"{path}: PixelSpacing differs from {first_path}; not one volume")
        if (int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))) != (rows, columns):
            raise SegAnyPETError(f"{path}: image matrix differs from {first_path}; not one volume")
        if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
            raise SegAnyPETError(f"{path}: multi-frame images are not supported")
        positions.append(_float_list(dataset, "ImagePositionPatient", 3, path))
    distances = np.array([float(np.dot(position, normal)) for position in positions])
    order = np.argsort(distances, kind="stable")
    distances = distances[order]
    gaps = np.diff(distances)
    if np.any(gaps < _SAME_POSITION_MM):
        count = int(np.sum(gaps < _SAME_POSITION_MM)) + 1
        raise SegAnyPETError(
            f"{folder}: {count} images share a slice position: a dynamic or gated series (several frames), "
            "which is not supported; export one frame as its own folder"
        )
    if len(images) > 1:
        slice_spacing = float(np.mean(gaps))
        if np.max(np.abs(gaps - slice_spacing)) > _SPACING_TOLERANCE * slice_spacing:
            raise SegAnyPETError(
                f"{folder}: uneven slice spacing ({gaps.min():.3f} to {gaps.max():.3f} mm): missing slices "
                "or a gantry tilt; the series is not a regular volume"
            )
    else:
        slice_spacing = float(first.get("SliceThickness", 0) or 0) or 1.0
        logger.warning("%s: a single slice; slice spacing taken as %.3g mm", folder, slice_spacing)
    direction = np.column_stack([row_cosine, column_cosine, normal])
    return DicomSeries(
        folder=folder,
        files=[images[i][0] for i in order],
        headers=[images[i][1] for i in order],
        # PixelSpacing is (row spacing, column spacing) = (y, x).
        spacing=(float(pixel_spacing[1]), float(pixel_spacing[0]), slice_spacing),
        origin=tuple(float(v) for v in positions[order[0]]),
        direction=tuple(float(v) for v in direction.ravel()),
    )
