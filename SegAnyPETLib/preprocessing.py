"""From a PET image in any orientation and spacing to the network's crop, and back.

The official SegAnyPET / SAM-Med3D protocol resamples to 1.5 mm, reorients to RAS, crops 128^3
around the target (padding with 0) and z-scores the crop over its voxels > 0. We resample straight
from the input image into the crop grid (one interpolation, no whole-body resampled copy), which
is the same operation. The crop tensor's dimensions follow the voxel index order (i, j, k) of that
RAS grid (as torchio loads a RAS NIfTI for training): dim 2 runs to the patient's right, dim 3 to
anterior, dim 4 to superior. Physical coordinates are ITK's LPS millimetres throughout.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from .errors import SegAnyPETError

# Axis directions of the RAS crop grid, as columns in LPS space.
RAS_DIRECTION = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class PreprocessConfig:
    """How a checkpoint expects its input; stored in every checkpoint we write."""

    spacing: Tuple[float, float, float] = (1.5, 1.5, 1.5)
    crop_size: int = 128
    normalization: str = "zscore_positive"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "PreprocessConfig":
        """The config stored in a checkpoint; one error naming the field for an unknown field,
        a spacing that is not three positive finite numbers, a crop size that is not a positive
        whole number and an unknown normalization."""
        from collections.abc import Mapping

        if not isinstance(values, Mapping):
            raise SegAnyPETError(f"preprocessing must be a mapping of field: value, got {type(values).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in values if key not in known)
        if unknown:
            raise SegAnyPETError(f"preprocessing has unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
        values = dict(values)
        if "spacing" in values:
            spacing = values["spacing"]
            try:
                values["spacing"] = tuple(float(s) for s in spacing)
            except (TypeError, ValueError):
                values["spacing"] = ()
            if len(values["spacing"]) != 3 or not all(np.isfinite(s) and s > 0 for s in values["spacing"]):
                raise SegAnyPETError(f"preprocessing.spacing must be three positive finite numbers (mm), got {spacing!r}")
        crop_size = values.get("crop_size", cls.crop_size)
        if not isinstance(crop_size, int) or isinstance(crop_size, bool) or crop_size < 1:
            raise SegAnyPETError(f"preprocessing.crop_size must be a positive whole number of voxels, got {crop_size!r}")
        config = cls(**values)
        if config.normalization != "zscore_positive":
            raise SegAnyPETError(f"preprocessing.normalization: unknown normalization {config.normalization!r}; known: zscore_positive")
        return config


OFFICIAL_PREPROCESSING = PreprocessConfig()


def as_image(
    image: Any,
    spacing: Optional[Sequence[float]] = None,
    origin: Optional[Sequence[float]] = None,
    direction: Optional[Sequence[float]] = None,
) -> sitk.Image:
    """A SimpleITK image from an image or a (z, y, x) numpy array plus its geometry (x, y, z order)."""
    if isinstance(image, sitk.Image):
        return image
    array = np.asarray(image)
    if array.ndim != 3:
        raise SegAnyPETError(f"expected a 3D (z, y, x) array, got shape {array.shape}")
    result = sitk.GetImageFromArray(array.astype(np.float32, copy=False))
    if spacing is not None:
        result.SetSpacing([float(s) for s in spacing])
    if origin is not None:
        result.SetOrigin([float(o) for o in origin])
    if direction is not None:
        result.SetDirection([float(d) for d in np.asarray(direction, dtype=float).ravel()])
    return result


def validate_pet(image: sitk.Image, name: str = "image") -> np.ndarray:
    """Check that ``image`` can be a PET volume; return its (z, y, x) float32 array.

    Refuses 2D, 4D and vector images, empty, NaN/inf, constant, CT-like (Hounsfield units) and
    label-like images, and values no PET in SUV or Bq/mL holds (a maximum below 1e-6 or above 1e9),
    each with one message naming the problem; warns about a maximum below 0.01 or above 1e7
    (other units, or an unusual scaling), naming the range found.
    """
    import logging

    from .io import check_volume

    lowest_peak, highest_value = 1e-6, 1e9  # SUV maxima are ~1-100, Bq/mL ones ~1e3-1e6
    usual_peak, usual_value = 1e-2, 1e7
    check_volume(image, name)
    if min(image.GetSize()) < 2:
        raise SegAnyPETError(f"{name} is empty or flat (size {image.GetSize()})")
    array = sitk.GetArrayViewFromImage(image).astype(np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        raise SegAnyPETError(f"{name} contains {np.size(array) - int(finite.sum())} NaN or infinite voxels")
    low, high = float(array.min()), float(array.max())
    if high <= low:
        raise SegAnyPETError(f"{name} is constant (every voxel is {low:g}); nothing to segment")
    if high <= 0:
        raise SegAnyPETError(f"{name} has no positive voxel; PET activity or SUV must be positive")
    found = f"values from {low:.3g} to {high:.3g}"
    if high < lowest_peak or max(high, -low) > highest_value:
        raise SegAnyPETError(
            f"{name} has {found}, which no PET volume in SUV or Bq/mL holds (its maximum lies between "
            f"{lowest_peak:g} and {highest_value:g}); check the image's units and scaling"
        )
    if high < usual_peak or max(high, -low) > usual_value:
        logging.getLogger(__name__).warning(
            "%s has %s, unusual for a PET volume in SUV or Bq/mL (maximum usually %g to %g); check its units",
            name, found, usual_peak, usual_value,
        )
    if low < -500 and np.mean(array < -100) > 0.05:
        raise SegAnyPETError(
            f"{name} looks like CT (values down to {low:g}, HU-like background); load the PET volume"
        )
    sample = array.ravel()[:: max(1, array.size // 200000)]
    if array.size > 1000 and np.unique(sample).size <= 16 and np.array_equal(sample, np.round(sample)):
        raise SegAnyPETError(f"{name} looks like a label map (a few integer values); load the PET volume")
    return array


@dataclass(frozen=True)
class CropGrid:
    """A cubic RAS grid of ``size`` voxels of ``spacing`` mm whose first voxel is at ``origin`` (LPS)."""

    origin: Tuple[float, float, float]
    spacing: Tuple[float, float, float]
    size: int

    @classmethod
    def around(cls, center: Sequence[float], config: PreprocessConfig, image: Optional[sitk.Image] = None) -> "CropGrid":
        """The crop centred on ``center`` (LPS mm); shifted to lie inside ``image`` where it fits."""
        spacing = np.asarray(config.spacing, dtype=float)
        half_extent = spacing * (config.crop_size - 1) / 2.0
        center_ras = RAS_DIRECTION.T @ np.asarray(center, dtype=float)
        if image is not None:
            low, high = image_bounds_ras(image)
            for axis in range(3):
                if high[axis] - low[axis] >= 2 * half_extent[axis]:
                    center_ras[axis] = np.clip(center_ras[axis], low[axis] + half_extent[axis], high[axis] - half_extent[axis])
                else:
                    center_ras[axis] = (low[axis] + high[axis]) / 2.0
        origin = RAS_DIRECTION @ (center_ras - half_extent)
        return cls(tuple(float(v) for v in origin), tuple(float(s) for s in spacing), int(config.crop_size))

    @classmethod
    def at_click(cls, point: Sequence[float], config: PreprocessConfig, image: sitk.Image) -> "CropGrid":
        """The official crop: voxels of the model's lattice over ``image`` (anchored at the image's
        voxel centre lowest in R, A and S), with the lattice voxel nearest to ``point`` (LPS mm) at
        index ``size // 2`` on each axis; it may reach beyond the image (zeros there)."""
        spacing = np.asarray(config.spacing, dtype=float)
        low, _ = image_bounds_ras(image)
        snapped = low + np.rint((RAS_DIRECTION.T @ np.asarray(point, dtype=float) - low) / spacing) * spacing
        origin = RAS_DIRECTION @ (snapped - spacing * (config.crop_size // 2))
        return cls(tuple(float(v) for v in origin), tuple(float(s) for s in spacing), int(config.crop_size))

    @property
    def direction(self) -> Tuple[float, ...]:
        return tuple(RAS_DIRECTION.ravel())

    def reference(self) -> sitk.Image:
        """An empty image on this grid, for ``sitk.Resample``."""
        ref = sitk.Image([self.size] * 3, sitk.sitkUInt8)
        ref.SetOrigin(self.origin)
        ref.SetSpacing(self.spacing)
        ref.SetDirection(self.direction)
        return ref

    def to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) continuous crop indices (i, j, k)."""
        offsets = np.atleast_2d(points_lps) - np.asarray(self.origin)
        return (offsets @ RAS_DIRECTION) / np.asarray(self.spacing)

    def nearest_index(self, points_lps: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) integer indices (i, j, k) of the nearest crop voxels, clipped to the crop."""
        return np.clip(np.rint(self.to_index(points_lps)).astype(int), 0, self.size - 1)

    def to_physical(self, indices: np.ndarray) -> np.ndarray:
        """(N, 3) crop indices (i, j, k) -> (N, 3) LPS mm."""
        return np.asarray(self.origin) + (np.atleast_2d(indices) * np.asarray(self.spacing)) @ RAS_DIRECTION.T

    def contains(self, point_lps: Sequence[float], margin: float = 0.0) -> bool:
        """Whether the point lies in the crop, at least ``margin`` voxels from its faces."""
        index = self.to_index(np.asarray(point_lps, dtype=float))[0]
        return bool(np.all(index >= margin - 0.5) and np.all(index <= self.size - 0.5 - margin))

    @property
    def center(self) -> np.ndarray:
        return self.to_physical(np.full(3, (self.size - 1) / 2.0))[0]


def image_bounds_ras(image: sitk.Image) -> Tuple[np.ndarray, np.ndarray]:
    """Extent of the image's voxel centres along the R, A, S axes (as RAS coordinates)."""
    size = np.asarray(image.GetSize()) - 1
    corners = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])], dtype=float)
    physical = np.array([image.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    ras = physical @ RAS_DIRECTION
    return ras.min(axis=0), ras.max(axis=0)


def zscore_positive(crop: np.ndarray) -> np.ndarray:
    """Z-score with the mean and std of the voxels > 0 (official; scale-invariant: SUV or Bq/mL).

    The std is the sample std (n - 1), as torchio's ``ZNormalization`` in the official pipelines.
    """
    positive = crop[crop > 0].astype(np.float64)
    if positive.size < 2:
        return np.zeros_like(crop, dtype=np.float32)
    std = float(positive.std(ddof=1))
    return ((crop.astype(np.float64) - positive.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def resample_crop(image: sitk.Image, grid: CropGrid) -> np.ndarray:
    """Resample ``image`` into the crop grid (linear, 0 outside the image): (i, j, k) float32.

    Where the crop's voxels are voxels of the image (an image on the model's grid), they are copied,
    without interpolation.
    """
    lattice = _image_indices(grid, image)
    if lattice is not None:
        axes, indices = lattice
        array = sitk.GetArrayViewFromImage(image).transpose(axes)
        inside = [(i >= 0) & (i < n) for i, n in zip(indices, array.shape)]
        crop = np.zeros((grid.size,) * 3, dtype=np.float32)
        crop[np.ix_(*inside)] = array[np.ix_(*[i[v] for i, v in zip(indices, inside)])]
        return crop
    resampled = sitk.Resample(image, grid.reference(), sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)


def _image_indices(grid: CropGrid, image: sitk.Image) -> Optional[Tuple[Tuple[int, int, int], list]]:
    """Where every crop voxel is an image voxel: the numpy (z, y, x) axis of each crop axis (i, j, k)
    and the image indices along it; else None."""
    to_index = np.linalg.inv(np.asarray(image.GetDirection(), float).reshape(3, 3) * np.asarray(image.GetSpacing(), float))
    steps = to_index @ RAS_DIRECTION * np.asarray(grid.spacing)  # image index per crop index, (x, y, z) x (i, j, k)
    corner = to_index @ (np.asarray(grid.origin) - np.asarray(image.GetOrigin(), float))
    if not (np.allclose(steps, np.rint(steps), atol=1e-6) and np.allclose(corner, np.rint(corner), atol=1e-4)):
        return None
    steps, corner = np.rint(steps).astype(int), np.rint(corner).astype(int)
    if sorted(np.abs(steps).sum(axis=0).tolist()) != [1, 1, 1] or sorted(np.abs(steps).sum(axis=1).tolist()) != [1, 1, 1]:
        return None
    image_axis = [int(np.flatnonzero(steps[:, a])[0]) for a in range(3)]
    axes = tuple(2 - axis for axis in image_axis)
    indices = [corner[axis] + steps[axis, a] * np.arange(grid.size) for a, axis in enumerate(image_axis)]
    return axes, indices


def extract_crop(image: sitk.Image, grid: CropGrid) -> np.ndarray:
    """The network input for a crop: resampled and z-scored, (i, j, k) float32."""
    return zscore_positive(resample_crop(image, grid))


def crop_label(label: sitk.Image, grid: CropGrid) -> np.ndarray:
    """Resample a binary/label image into the crop grid with nearest neighbour: (i, j, k) uint8."""
    resampled = sitk.Resample(label, grid.reference(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)


def crop_footprint(grid: CropGrid, image: sitk.Image) -> Optional[Tuple[slice, slice, slice]]:
    """(z, y, x) slices of the image region the crop covers, or None if they do not overlap."""
    corners = np.array([[i, j, k] for i in (0, grid.size - 1) for j in (0, grid.size - 1) for k in (0, grid.size - 1)], float)
    physical = grid.to_physical(corners)
    index = np.array([image.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in physical])
    low = np.maximum(np.floor(index.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1, np.asarray(image.GetSize()))
    if np.any(high <= low):
        return None
    return tuple(slice(int(low[a]), int(high[a])) for a in (2, 1, 0))


def crop_coordinates(grid: CropGrid, image: sitk.Image, region: Tuple[slice, slice, slice]) -> np.ndarray:
    """The continuous crop index (i, j, k) of each voxel of ``region`` of the image: (z, y, x, 3) float32."""
    axes = [np.arange(r.start, r.stop, dtype=float) for r in (region[2], region[1], region[0])]  # x, y, z
    # image index -> LPS -> crop continuous index is affine: crop = offset + sum over image axes
    spacing = np.asarray(image.GetSpacing(), float)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    origin_index = grid.to_index(np.asarray(image.GetOrigin(), float))[0]
    steps = grid.to_index(np.asarray(grid.origin) + (direction * spacing).T) - grid.to_index(np.asarray(grid.origin))
    index = np.empty(tuple(len(a) for a in axes[::-1]) + (3,), np.float32)
    for c in range(3):  # crop axis i, j, k
        index[..., c] = (origin_index[c]
                         + (axes[0] * steps[0, c])[None, None, :]
                         + (axes[1] * steps[1, c])[None, :, None]
                         + (axes[2] * steps[2, c])[:, None, None])
    return index


class CropToImage:
    """Crop values (i, j, k) on an image region: trilinear (as ITK's linear resampler) or nearest
    neighbour (``mode="nearest"``, the official paste-back).

    The coordinates are computed once per crop, so a click's paste-back is one ``grid_sample`` or one
    lookup. A voxel belongs to the crop where its nearest crop voxel does (within half a crop voxel of
    the crop's outer voxel centres, values clamped there); elsewhere it gets ``default``.
    """

    def __init__(self, grid: CropGrid, image: sitk.Image, region: Tuple[slice, slice, slice],
                 mode: str = "trilinear") -> None:
        index = crop_coordinates(grid, image, region)
        self.inside = np.all((index >= -0.5) & (index < grid.size - 0.5), axis=-1)
        self.mode = mode
        if mode == "nearest":
            nearest = np.clip(np.floor(index + 0.5), 0, grid.size - 1).astype(np.int64)
            self._flat = (nearest[..., 0] * grid.size + nearest[..., 1]) * grid.size + nearest[..., 2]
        else:
            # grid_sample reads (x, y, z) = (k, j, i) of a (i, j, k) volume, -1..1 between the outer centres
            self._grid = torch.from_numpy(index[..., ::-1] * np.float32(2 / (grid.size - 1)) - 1)[None]

    def __call__(self, values: np.ndarray, default: float = 0.0) -> np.ndarray:
        """``values`` (i, j, k) of the crop on the region: (z, y, x) float32."""
        if self.mode == "nearest":
            out = np.ascontiguousarray(values, dtype=np.float32).ravel()[self._flat]
        else:
            volume = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
            with torch.inference_mode():
                out = F.grid_sample(volume, self._grid, mode="bilinear", padding_mode="border", align_corners=True)
            out = out[0, 0].numpy()
        out[~self.inside] = default
        return out
