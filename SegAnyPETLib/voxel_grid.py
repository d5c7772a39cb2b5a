"""Voxel geometry for the statistics: ITK's LPS grid of a (z, y, x) array, and bounding boxes.

Spacing is (x, y, z) in mm, the origin the LPS position of voxel (0, 0, 0) and the direction the
3 x 3 matrix (row-major, columns = the i, j, k axes); a box is a tuple of three slices (z, y, x).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from .errors import SegAnyPETError

Vector = Tuple[float, float, float]
Box = Tuple[slice, ...]


@dataclass(frozen=True)
class VoxelGrid:
    """Spacing (x, y, z) mm, LPS origin and direction (3 x 3, columns = the i, j, k axes)."""

    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @classmethod
    def make(cls, spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]) -> "VoxelGrid":
        """The grid, or one clear error for spacing that is not 3 positive finite numbers."""
        spacing = np.asarray(spacing, dtype=np.float64).ravel()
        origin = np.asarray(origin, dtype=np.float64).ravel()
        direction = np.asarray(direction, dtype=np.float64).ravel()
        if spacing.shape != (3,) or not np.all(np.isfinite(spacing) & (spacing > 0)):
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


def bounding_box(mask: np.ndarray) -> Optional[Box]:
    """The smallest box holding every True voxel of a 3D mask, None for an empty mask."""
    box = []
    for axis in range(3):
        hits = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def grow_box(slices: Box, margin: Sequence[int], shape: Sequence[int]) -> Box:
    """``slices`` grown by ``margin`` voxels per axis, clipped to an array of ``shape``."""
    return tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(slices, margin, shape))


def box_volume(slices: Box) -> int:
    return int(np.prod([s.stop - s.start for s in slices]))


def union_box(boxes: Iterable[Box]) -> Box:
    boxes = list(boxes)
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))
