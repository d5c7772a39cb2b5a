"""The PERCIST SUVpeak sphere (Wahl et al. 2009): its voxel weights and its coverage at the border.

SUVpeak is the highest mean SUV in a sphere of 1 mL (radius 6.2035 mm) whose centre may be any
voxel centre of the segment; the sphere averages all image voxels it covers, in or out of the
segment, each weighted by the fraction of its volume inside the sphere (counted on a sub-grid of
at least :data:`SUVPEAK_SUBSAMPLES` points and at most :data:`SUVPEAK_SUBGRID_MM` per axis). Near
the image border the mean is over the part of the sphere inside the image.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage

SUVPEAK_RADIUS_MM: float = 10.0 * (3.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # 1 cm^3 sphere: 6.2035 mm
SUVPEAK_SUBSAMPLES: int = 10  # at least this many sub-grid points per voxel and axis ...
SUVPEAK_SUBGRID_MM: float = 0.2  # ... and no coarser than this
SUVPEAK_DEFINITION: str = (
    "PERCIST SUVpeak: highest mean SUV in a 1 cm3 sphere (radius 6.2 mm) centred on any voxel of the segment; "
    "voxels weighted by their volume fraction inside the sphere; at the image border, mean of the part inside the image"
)


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


def kernel_coverage(shape: Sequence[int], kernel: np.ndarray, box: Tuple[slice, ...]) -> np.ndarray:
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
