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
        values = dict(values)
        if "spacing" in values:
            values["spacing"] = tuple(float(s) for s in values["spacing"])
        config = cls(**values)
        if config.normalization != "zscore_positive":
            raise SegAnyPETError(f"unknown normalization {config.normalization!r} in checkpoint")
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

    Refuses 2D and 4D images, empty, NaN/inf, constant, CT-like (Hounsfield units) and label-like
    images, each with one message naming the problem.
    """
    if image.GetDimension() == 4:
        raise SegAnyPETError(f"{name} is 4D (size {image.GetSize()}); pick one frame of the dynamic series")
    if image.GetDimension() != 3:
        raise SegAnyPETError(f"{name} is {image.GetDimension()}D; a 3D PET volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SegAnyPETError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel; PET has one")
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
    """Z-score with the mean and std of the voxels > 0 (official; scale-invariant: SUV or Bq/mL)."""
    positive = crop[crop > 0]
    if positive.size < 2:
        return np.zeros_like(crop, dtype=np.float32)
    std = float(positive.std())
    return ((crop - float(positive.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def resample_crop(image: sitk.Image, grid: CropGrid) -> np.ndarray:
    """Resample ``image`` into the crop grid (linear, 0 outside the image): (i, j, k) float32."""
    resampled = sitk.Resample(image, grid.reference(), sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)


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
    """Crop values (i, j, k) on an image region, interpolated trilinearly (as ITK's linear resampler).

    The coordinates are computed once per crop, so a click's paste-back is one ``grid_sample``.
    A voxel belongs to the crop where its nearest crop voxel does (within half a crop voxel of the
    crop's outer voxel centres, values clamped there); elsewhere it gets ``default``.
    """

    def __init__(self, grid: CropGrid, image: sitk.Image, region: Tuple[slice, slice, slice]) -> None:
        index = crop_coordinates(grid, image, region)
        self.inside = np.all((index >= -0.5) & (index < grid.size - 0.5), axis=-1)
        # grid_sample reads (x, y, z) = (k, j, i) of a (i, j, k) volume, -1..1 between the outer centres
        self._grid = torch.from_numpy(index[..., ::-1] * np.float32(2 / (grid.size - 1)) - 1)[None]

    def __call__(self, values: np.ndarray, default: float = 0.0) -> np.ndarray:
        """``values`` (i, j, k) of the crop on the region: (z, y, x) float32."""
        volume = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
        with torch.inference_mode():
            out = F.grid_sample(volume, self._grid, mode="bilinear", padding_mode="border", align_corners=True)
        out = out[0, 0].numpy()
        out[~self.inside] = default
        return out
