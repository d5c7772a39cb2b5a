"""Classical click-driven PET segmenters, run through the same protocol as the model.

- ``threshold``: the usual PET lesion method: voxels at or above 40 % of the local SUVmax around
  the positive clicks, the connected region holding the clicks; a voxel closer to a negative click
  than to every positive click is excluded (a Voronoi cut), so negative clicks can split a region.
- ``growcut``: Slicer's "Grow from seeds" engine (``vtkImageGrowCutSegment``, from the slicer-core
  wheel) seeded with the positive clicks (foreground) and the negative clicks plus the faces of a box
  around the clicks (background).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import SegAnyPETError

Index = Tuple[int, int, int]


class ClickBaseline:
    """Common click bookkeeping; subclasses implement :meth:`segment`."""

    name = "baseline"

    def __init__(self) -> None:
        self._array: Optional[np.ndarray] = None
        self._spacing = np.ones(3)
        self.positive: List[Index] = []
        self.negative: List[Index] = []

    def set_image(self, image: sitk.Image) -> None:
        self._array = sitk.GetArrayFromImage(image).astype(np.float32)
        self._spacing = np.asarray(image.GetSpacing()[::-1], dtype=float)  # (z, y, x)
        self.new_object()

    def new_object(self, target: str = "") -> None:
        self.positive, self.negative = [], []

    def click(self, index_zyx: Index, positive: bool) -> np.ndarray:
        (self.positive if positive else self.negative).append(tuple(int(i) for i in index_zyx))
        if not self.positive:
            return np.zeros(self._array.shape, np.uint8)
        return self.segment().astype(np.uint8)

    def segment(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _box(self, margin_mm: float) -> Tuple[slice, ...]:
        """Bounding box of the clicks plus ``margin_mm``, clipped to the image."""
        points = np.array(self.positive + self.negative)
        margin = np.ceil(margin_mm / self._spacing).astype(int)
        low = np.maximum(points.min(axis=0) - margin, 0)
        high = np.minimum(points.max(axis=0) + margin + 1, self._array.shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


class ThresholdBaseline(ClickBaseline):
    """Region at >= ``fraction`` x local SUVmax connected to the positive clicks."""

    name = "threshold"

    def __init__(self, fraction: float = 0.4, local_radius_mm: float = 10.0, margin_mm: float = 150.0) -> None:
        super().__init__()
        self.fraction = fraction
        self.local_radius_mm = local_radius_mm
        self.margin_mm = margin_mm

    def segment(self) -> np.ndarray:
        box = self._box(self.margin_mm)
        values = self._array[box]
        offset = np.array([s.start for s in box])
        positive = [np.asarray(p) - offset for p in self.positive]
        negative = [np.asarray(p) - offset for p in self.negative]
        radius = np.maximum(np.round(self.local_radius_mm / self._spacing).astype(int), 1)
        local_max = max(
            float(values[tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip(p, radius))].max()) for p in positive
        )
        candidate = values >= self.fraction * local_max
        if negative:
            grid = np.indices(values.shape, dtype=np.float32)
            def nearest(points):
                return np.min([sum(((grid[a] - p[a]) * self._spacing[a]) ** 2 for a in range(3)) for p in points], axis=0)
            candidate &= nearest(positive) <= nearest(negative)
        for p in positive:  # a click on a voxel under the threshold still marks that voxel
            candidate[tuple(p)] = True
        components, _ = ndimage.label(candidate, structure=ndimage.generate_binary_structure(3, 1))
        keep = {int(components[tuple(p)]) for p in positive} - {0}
        mask = np.zeros(self._array.shape, bool)
        mask[box] = np.isin(components, list(keep))
        return mask


class GrowCutBaseline(ClickBaseline):
    """Slicer's GrowCut ("Grow from seeds") inside a box around the clicks."""

    name = "growcut"

    def __init__(self, margin_mm: float = 100.0, seed_radius_mm: float = 4.0) -> None:
        super().__init__()
        try:
            import slicer  # noqa: F401  (the slicer-core wheel or 3D Slicer)
            from vtk.util import numpy_support  # noqa: F401
        except ImportError as error:
            raise SegAnyPETError(
                "the growcut baseline needs Slicer's GrowCut engine: pip install slicer-core (the repository's [slicer] extra)"
            ) from error
        self.margin_mm = margin_mm
        self.seed_radius_mm = seed_radius_mm

    def segment(self) -> np.ndarray:
        import slicer
        import vtk
        from vtk.util import numpy_support

        box = self._box(self.margin_mm)
        values = np.ascontiguousarray(self._array[box])
        offset = np.array([s.start for s in box])
        seeds = np.zeros(values.shape, np.uint8)
        # Background seeds on the box's outer two voxel layers: GrowCut does not grow from voxels
        # on the image border itself, so a seed shell only there would never spread.
        shell = np.ones(values.shape, bool)
        shell[2:-2, 2:-2, 2:-2] = False
        seeds[shell] = 2
        radius = np.maximum(np.round(self.seed_radius_mm / self._spacing).astype(int), 0)
        for points, label in ((self.negative, 2), (self.positive, 1)):
            for p in points:
                c = np.asarray(p) - offset
                seeds[tuple(slice(max(ci - r, 0), ci + r + 1) for ci, r in zip(c, radius))] = label

        def to_vtk(array: np.ndarray, vtk_type: int) -> "vtk.vtkImageData":
            image = vtk.vtkImageData()
            image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
            image.SetSpacing(*self._spacing[::-1])
            image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk_type))
            return image

        grow = slicer.vtkImageGrowCutSegment()
        grow.SetIntensityVolume(to_vtk(values.astype(np.float32), vtk.VTK_FLOAT))
        grow.SetSeedLabelVolume(to_vtk(seeds, vtk.VTK_UNSIGNED_CHAR))
        grow.Update()
        labels = numpy_support.vtk_to_numpy(grow.GetOutput().GetPointData().GetScalars()).reshape(values.shape)
        mask = np.zeros(self._array.shape, bool)
        mask[box] = labels == 1
        return mask


BASELINES = {"threshold": ThresholdBaseline, "growcut": GrowCutBaseline}


def make_baseline(name: str) -> ClickBaseline:
    if name not in BASELINES:
        raise SegAnyPETError(f"unknown baseline {name!r}; choose {', '.join(BASELINES)}")
    return BASELINES[name]()
