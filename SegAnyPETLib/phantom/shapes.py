"""Implicit 3D shapes in physical millimetres and the canvas that rasterises them.

Every shape answers ``inside(x, y, z)`` for broadcastable coordinate arrays (mm, LPS) and gives its
bounding box, so the canvas only evaluates it on the voxels near it. Shapes are smoothly deformed
with a few random sine modes: organs look like organs, not like plain ellipsoids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.interpolate import CubicSpline

Coords = Tuple[np.ndarray, np.ndarray, np.ndarray]
Predicate = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Grid:
    """A voxel grid with identity direction (LPS: x left, y posterior, z superior).

    ``size`` and ``spacing`` are in SimpleITK order (x, y, z); arrays are indexed [z, y, x].
    """

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.size[2], self.size[1], self.size[0])

    def axis(self, dim: int) -> np.ndarray:
        """Physical coordinates (mm) of the voxel centres along x (0), y (1) or z (2)."""
        return self.origin[dim] + self.spacing[dim] * np.arange(self.size[dim], dtype=np.float32)

    def region(self, lo: Sequence[float], hi: Sequence[float]) -> Optional[Tuple[slice, slice, slice]]:
        """Array slices [z, y, x] of the voxels whose centres lie in the box [lo, hi] (mm)."""
        bounds = []
        for dim in (2, 1, 0):
            first = int(np.ceil((lo[dim] - self.origin[dim]) / self.spacing[dim]))
            last = int(np.floor((hi[dim] - self.origin[dim]) / self.spacing[dim])) + 1
            first, last = max(first, 0), min(last, self.size[dim])
            if first >= last:
                return None
            bounds.append(slice(first, last))
        return tuple(bounds)  # type: ignore[return-value]

    def coords(self, region: Tuple[slice, slice, slice]) -> Coords:
        """Broadcastable (x, y, z) coordinate arrays of a region, shapes (1,1,X), (1,Y,1), (Z,1,1)."""
        zs, ys, xs = region
        x = self.axis(0)[xs][None, None, :]
        y = self.axis(1)[ys][None, :, None]
        z = self.axis(2)[zs][:, None, None]
        return x, y, z

    def point_to_index(self, point: Sequence[float]) -> Tuple[int, int, int]:
        """Nearest voxel [z, y, x] of a physical point (clipped to the grid)."""
        index = [int(round((point[d] - self.origin[d]) / self.spacing[d])) for d in range(3)]
        index = [min(max(i, 0), self.size[d] - 1) for d, i in enumerate(index)]
        return index[2], index[1], index[0]

    def index_to_point(self, index: Sequence[int]) -> np.ndarray:
        """Physical point (x, y, z) of a voxel index given as [z, y, x]."""
        return np.array([self.origin[d] + self.spacing[d] * index[2 - d] for d in range(3)])


class SmoothField:
    """A smooth random field: a sum of a few sine modes with random directions and phases.

    ``components`` 1 gives a scalar field, 3 a displacement field. Coordinates are divided by
    ``scale`` first, so ``frequency`` is in radians per ``scale``.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        amplitude: float,
        components: int = 1,
        modes: int = 4,
        frequency: Tuple[float, float] = (0.8, 2.2),
        scale: float = 1.0,
    ) -> None:
        directions = rng.normal(size=(modes, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self.wave = directions * rng.uniform(*frequency, size=(modes, 1)) / scale
        self.phase = rng.uniform(0, 2 * np.pi, size=modes)
        # Amplitudes shared out over the modes so the field's overall size is about ``amplitude``.
        self.amplitude = rng.normal(size=(modes, components)) * amplitude / np.sqrt(modes)
        self.components = components

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray):
        values = [0.0] * self.components
        # Python floats keep float32 coordinate arrays in float32 (NumPy's weak scalars).
        for wave, phase, amplitude in zip(self.wave.tolist(), self.phase.tolist(), self.amplitude.tolist()):
            s = np.sin(wave[0] * x + wave[1] * y + wave[2] * z + phase)
            for c in range(self.components):
                values[c] = values[c] + amplitude[c] * s
        return values[0] if self.components == 1 else values

    @property
    def bound(self) -> float:
        """An upper bound of |field| (per component)."""
        return float(np.abs(self.amplitude).sum(axis=0).max())


class Shape:
    """Base class: a region of space with a bounding box."""

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __and__(self, other: "Shape") -> "Shape":
        return Combined(self, other, "and")

    def __or__(self, other: "Shape") -> "Shape":
        return Combined(self, other, "or")

    def __sub__(self, other: "Shape") -> "Shape":
        return Combined(self, other, "minus")


class Ellipsoid(Shape):
    """A randomly deformed superellipsoid.

    ``rotation`` maps local axes to patient axes (columns are the local axes); ``exponent`` 2 is
    an ellipsoid, larger is boxier; ``deformation`` displaces the normalised local coordinates.
    """

    def __init__(
        self,
        center: Sequence[float],
        radii: Sequence[float],
        rotation: Optional[np.ndarray] = None,
        exponent: float = 2.0,
        deformation: Optional[SmoothField] = None,
    ) -> None:
        self.center = np.asarray(center, dtype=float)
        self.radii = np.asarray(radii, dtype=float)
        self.rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
        self.exponent = exponent
        self.deformation = deformation

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        grow = 1.0 + (self.deformation.bound if self.deformation else 0.0)
        extent = np.abs(self.rotation) @ self.radii * grow  # the rotated box around |u|, |v|, |w| <= grow
        return self.center - extent, self.center + extent

    def local(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Coords:
        """Normalised local coordinates (1 on the undeformed surface along each axis)."""
        c, radii, r = self.center.tolist(), self.radii.tolist(), self.rotation.tolist()
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        u = (r[0][0] * dx + r[1][0] * dy + r[2][0] * dz) / radii[0]
        v = (r[0][1] * dx + r[1][1] * dy + r[2][1] * dz) / radii[1]
        w = (r[0][2] * dx + r[1][2] * dy + r[2][2] * dz) / radii[2]
        if self.deformation is not None:
            du, dv, dw = self.deformation(u, v, w)
            u, v, w = u + du, v + dv, w + dw
        return u, v, w

    def level(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Implicit function: < 1 inside."""
        u, v, w = self.local(x, y, z)
        if self.exponent == 2.0:
            return u * u + v * v + w * w
        p = self.exponent
        return np.abs(u) ** p + np.abs(v) ** p + np.abs(w) ** p

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.level(x, y, z) < 1.0


class Tube(Shape):
    """Voxels within a (varying) radius of a smooth centre line through control points.

    ``inside`` expects the separable coordinate axes of :meth:`Grid.coords` (as every caller in
    this package passes): the centre line is cut into short chunks and each chunk is tested only
    against the voxels of its own small bounding box.
    """

    chunk = 16  # samples per chunk

    def __init__(self, points: Sequence[Sequence[float]], radii: Union[float, Sequence[float]], step: float = 1.5):
        points = np.asarray(points, dtype=float)
        radii = np.broadcast_to(np.asarray(radii, dtype=float), (len(points),))
        chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
        samples = np.linspace(0.0, chord[-1], max(int(chord[-1] / step), 2))
        if len(points) > 2:
            self.points = CubicSpline(chord, points, bc_type="natural")(samples)
        else:
            self.points = points[0] + (points[1] - points[0]) * (samples / chord[-1])[:, None]
        self.radii = np.interp(samples, chord, radii)

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        r = self.radii.max()
        return self.points.min(axis=0) - r, self.points.max(axis=0) + r

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        axes = (np.ravel(x), np.ravel(y), np.ravel(z))
        result = np.zeros((axes[2].size, axes[1].size, axes[0].size), dtype=bool)
        for start in range(0, len(self.points), self.chunk):
            points = self.points[start : start + self.chunk + 1].astype(np.float32)
            radii2 = (self.radii[start : start + self.chunk + 1] ** 2).astype(np.float32)
            reach = float(np.sqrt(radii2.max()))
            box = []
            for d in range(3):
                lo = np.searchsorted(axes[d], points[:, d].min() - reach)
                hi = np.searchsorted(axes[d], points[:, d].max() + reach, side="right")
                box.append(slice(lo, hi))
            if any(b.start >= b.stop for b in box):
                continue
            px = axes[0][box[0]][None, None, :, None] - points[:, 0]
            py = axes[1][box[1]][None, :, None, None] - points[:, 1]
            pz = axes[2][box[2]][:, None, None, None] - points[:, 2]
            result[box[2], box[1], box[0]] |= (px * px + py * py + pz * pz < radii2).any(axis=-1)
        return result


class Combined(Shape):
    """Intersection, union or difference of two shapes."""

    def __init__(self, first: Shape, second: Shape, how: str) -> None:
        self.first, self.second, self.how = first, second, how

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        lo1, hi1 = self.first.bounds()
        if self.how == "minus":
            return lo1, hi1
        lo2, hi2 = self.second.bounds()
        if self.how == "and":
            return np.maximum(lo1, lo2), np.minimum(hi1, hi2)
        return np.minimum(lo1, lo2), np.maximum(hi1, hi2)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a = self.first.inside(x, y, z)
        b = self.second.inside(x, y, z)
        if self.how == "and":
            return a & b
        if self.how == "or":
            return a | b
        return a & ~b


class Where(Shape):
    """A shape restricted by a predicate on coordinates (e.g. 'below the diaphragm')."""

    def __init__(self, shape: Shape, predicate: Predicate) -> None:
        self.shape, self.predicate = shape, predicate

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.shape.bounds()

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.shape.inside(x, y, z) & self.predicate(x, y, z)


KEEP = -1  # paint(): leave the organ label as it is (a tissue inside an organ, e.g. renal pelvis)


class Canvas:
    """Two co-registered uint8 volumes painted shape by shape, the later shape winning.

    ``label`` holds the organ labels (the ground truth), ``tissue`` the tissue class that decides
    the tracer uptake (several tissues per organ: myocardium and blood in the heart, ...).
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.label = np.zeros(grid.shape, dtype=np.uint8)
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)

    def mask(self, shape: Shape) -> Tuple[Optional[Tuple[slice, slice, slice]], Optional[np.ndarray]]:
        """The region of a shape and its boolean mask there (None, None when off the grid)."""
        region = self.grid.region(*shape.bounds())
        if region is None:
            return None, None
        mask = np.broadcast_to(shape.inside(*self.grid.coords(region)), self.label[region].shape)
        return region, mask

    def paint(
        self,
        shape: Shape,
        tissue: int,
        label: Union[int, Callable[[Coords], np.ndarray]] = 0,
        within_tissue: Optional[Sequence[int]] = None,
        within_label: Optional[Sequence[int]] = None,
        except_tissue: Optional[Sequence[int]] = None,
    ) -> int:
        """Paint ``shape``; ``label`` may be a value, KEEP, or a function of the coordinates.

        ``within_tissue``/``within_label`` restrict painting to voxels already of those classes,
        ``except_tissue`` protects voxels of those classes. Returns the number of voxels painted.
        """
        region, mask = self.mask(shape)
        if region is None:
            return 0
        mask = mask.copy()
        if within_tissue is not None:
            mask &= np.isin(self.tissue[region], within_tissue)
        if within_label is not None:
            mask &= np.isin(self.label[region], within_label)
        if except_tissue is not None:
            mask &= ~np.isin(self.tissue[region], except_tissue)
        if not mask.any():
            return 0
        self.tissue[region][mask] = tissue
        if callable(label):
            values = np.broadcast_to(label(self.grid.coords(region)), mask.shape)
            self.label[region][mask] = values[mask]
        elif label != KEEP:
            self.label[region][mask] = label
        return int(mask.sum())
