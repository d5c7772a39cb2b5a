"""Interactive click-to-segment on one PET volume, with cached image embeddings.

``set_image`` validates the volume; the first click of an object picks a crop centred on it and
runs the image encoder once; every further click inside the crop only reruns the prompt encoder and
the mask decoder, with the points so far and the previous low-resolution logits as the mask prompt
(the official SegAnyPET protocol). When the mask reaches a face of its crop while the image goes on
beyond it (a liver larger than the crop, for example), the session adds an overlapping crop seeded
from the mask, and merges the crops' probabilities with a Gaussian weight that favours each crop's
centre (as nnU-Net merges sliding windows), so large organs are not cut at a straight line. The
crops' probabilities reach the input grid by trilinear interpolation, so boundaries fall between
crop voxels (the official code pastes its thresholded mask back with nearest neighbour, which is
the only difference with a single crop). The first click of an object also adds a crop centred on
the deepest point of its first mask (``interior_crop``): the networks are trained on crops centred on
a voxel of their target with the clicks elsewhere, and a click at an organ's edge puts the crop's
centre between two organs. The mask keeps only the parts that hold a positive click
(``clicked_islands_only``), so a leak into a separate neighbour is dropped. A leak joined to the
object is checked by clicking it (``part_check``): the first mask is split where it narrows, and a
part whose own segmentation does not reach the first click is another object and is left out
(until a positive click lands deep inside it).
Last, the mask's edge moves to the PET contrast (``contrast_edge``, :mod:`SegAnyPETLib.edges`):
within one voxel of its surface a voxel is in the object where its uptake is 40 % of the way from
the surroundings' level to the object's, where the scanner's blur puts an organ's edge. In lesion
mode (``lesion``, :mod:`SegAnyPETLib.lesions`) the object is instead the focal uptake at each
positive click, measured against the tissue the network segments there.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from .checkpoints import check_mask_threshold
from .device import resolve_device
from . import edges, lesions
from .errors import SegAnyPETError
from .metrics import dice
from .model import Sam3D
from .model.common import upsample_logits
from .preprocessing import (
    CropGrid,
    PreprocessConfig,
    as_image,
    crop_footprint,
    CropToImage,
    extract_crop,
    image_bounds_ras,
    RAS_DIRECTION,
    validate_pet,
)

logger = logging.getLogger(__name__)

SPACES = ("ijk", "ras", "lps")
# Every subset of the crop's three axes: the flips of test-time mirroring (the first is the identity).
MIRRORINGS: List[Tuple[int, ...]] = [tuple(a for a in range(3) if m >> a & 1) for m in range(8)]


class Cancelled(Exception):
    """The user cancelled a running encoder; the session is unchanged."""


@dataclass
class Point:
    """A prompt point: LPS millimetres and 1 (positive) or 0 (negative)."""

    lps: np.ndarray
    label: int


@dataclass
class _Crop:
    grid: CropGrid
    region: Optional[Tuple[slice, slice, slice]]
    seeds: List[Point] = field(default_factory=list)
    logits: Optional[torch.Tensor] = None
    _prob: Optional[np.ndarray] = None
    _weight: Optional[np.ndarray] = None
    _to_image: Optional[CropToImage] = None  # crop values -> its image region (trilinear)


def gaussian_importance(size: int, sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian weight over a cubic crop, highest at the centre, never zero."""
    axis = np.arange(size) - (size - 1) / 2.0
    profile = np.exp(-0.5 * (axis / (sigma_scale * size)) ** 2)
    weight = profile[:, None, None] * profile[None, :, None] * profile[None, None, :]
    return np.maximum(weight / weight.max(), 1e-3).astype(np.float32)


class InteractiveSession:
    """Click-to-segment on one volume: ``set_image`` once, then ``add_click`` for each click.

    Args:
        model: a network from :func:`SegAnyPETLib.load_model` (its ``preprocessing`` is used).
        device: ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"``...
        max_crops: most crops per object, including those added for large organs.
        extend: add crops when the mask reaches a crop face inside the image.
        extension_agreement: keep an added crop only if its mask and its source crop's agree this
            well (Dice) where the two overlap; a crop that sees a different object there (a leak
            into a neighbour) would only add false positives.
        precision: encoder precision on GPU: ``"auto"`` (float16/bfloat16 autocast) or ``"fp32"``.
        mask_threshold: probability above which a voxel is in the mask; default: the model's
            (0.5, or the value calibrated for its checkpoint).
        mirror: average each prediction over the 8 mirrorings of its crop (nnU-Net's test-time
            mirroring): 8x the encoder work per crop, 8 decoder runs per click in one batch.
        clicked_islands_only: keep only the parts of the mask that hold a positive click (the
            Segment Editor's "keep selected island"), so a leak into a separate neighbouring organ
            is dropped; the parts next to a click count only while the network leaves every
            positive click out by a voxel; a mask that no positive click touches is kept whole.
        interior_crop: a new object's first click also adds a crop centred on the deepest point of
            the mask's part that holds the click, and the crops are blended: one more encoder run
            per object.
        part_check: split a new object's first mask where it narrows (regional maxima of the
            depth below its surface, ``part_depth_mm`` above the saddle between them) and segment
            each part but the click's from its deepest voxel alone; a part whose own mask does not
            reach the first click is another object (the spleen's first mask taking the left
            kidney) and is left out of the mask until a positive click lands in its inner half (a
            click nearer its edge brings back only its own voxel). One more encoder run per part
            checked.
        contrast_edge: move the mask's edge to the PET contrast (:func:`~SegAnyPETLib.edges.contrast_edge`):
            within one voxel of the coarser of the model's and the image's grids of the surface, a
            voxel is in the object where its uptake is 40 % of the way from the surroundings' level
            to the object's; the edge does not move against a click.
        lesion: segment lesions: the object is the focal uptake at each positive click, above
            ``edge_fraction`` of the way from the level of the tissue the network segments there to
            the local SUVmax (:func:`~SegAnyPETLib.lesions.focal_uptake`). May be changed between
            objects.
        progress: optional ``callback(fraction, text)`` while the encoder runs.
    """

    max_cached_crops = 16  # encoded crops kept for later objects; the least recently used go first
    part_depth_mm = 3.0  # how much deeper than the narrowing between them two parts must be
    min_part_ml = 5.0  # smaller parts are not checked
    max_part_checks = 4  # the largest parts checked (an encoder run each)
    edge_fraction = 0.4  # where the contrast edge lies, from the surroundings' uptake to the object's

    def __init__(
        self,
        model: Sam3D,
        device: str = "auto",
        max_crops: int = 6,
        extend: bool = True,
        extension_agreement: float = 0.9,
        precision: str = "auto",
        mask_threshold: Optional[float] = None,
        mirror: bool = False,
        clicked_islands_only: bool = True,
        interior_crop: bool = True,
        part_check: bool = True,
        contrast_edge: bool = True,
        lesion: bool = False,
        progress: Optional[Callable[[float, str], None]] = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.preprocessing: PreprocessConfig = model.preprocessing
        self.max_crops = max_crops
        self.extend = extend
        self.extension_agreement = extension_agreement
        self.precision = precision
        self.mask_threshold = check_mask_threshold(model.mask_threshold if mask_threshold is None else mask_threshold)
        self.mirror = mirror
        self.clicked_islands_only = clicked_islands_only
        self.interior_crop = interior_crop
        self.part_check = part_check
        self.contrast_edge = contrast_edge
        self.lesion = lesion
        self.progress = progress
        self.timing: Dict[str, float] = {}
        self._cancel = threading.Event()
        self._lock = threading.RLock()
        self._image: Optional[sitk.Image] = None
        self._embeddings: Dict[CropGrid, torch.Tensor] = {}  # insertion order = least recently used first
        self._weight_full = gaussian_importance(self.preprocessing.crop_size)
        self._dense_pe: Optional[torch.Tensor] = None
        self._clear_object()

    # ----------------------------------------------------------------------------- image
    def set_image(self, image, spacing=None, origin=None, direction=None, name: str = "image") -> None:
        """Use a new volume: a SimpleITK image, or a (z, y, x) array with spacing/origin/direction.
        ``name`` (e.g. the file) starts the message when the volume is refused."""
        image = as_image(image, spacing, origin, direction)
        validate_pet(image, name)
        with self._lock:
            self._image = sitk.Cast(image, sitk.sitkFloat32)
            self._shape = tuple(reversed(image.GetSize()))
            self._bounds_ras = image_bounds_ras(self._image)
            self._embeddings.clear()
            self._clear_object()

    @property
    def image(self) -> sitk.Image:
        if self._image is None:
            raise SegAnyPETError("no image: call set_image first")
        return self._image

    # ----------------------------------------------------------------------------- clicks
    def add_click(self, point: Sequence[float], positive: bool = True, space: str = "ijk") -> np.ndarray:
        """Add a point and return the object's mask, (z, y, x) uint8 on the input grid.

        ``space``: ``"ijk"`` voxel index (i = x column, j = y row, k = slice), ``"lps"`` (ITK/DICOM)
        or ``"ras"`` (Slicer, NIfTI) millimetres.
        """
        with self._lock:
            lps = self.to_lps(point, space)
            self._history.append(self._snapshot())
            try:
                self._points.append(Point(lps, int(bool(positive))))
                self._update_for_point(self._points[-1])
            except BaseException:
                self._restore(self._history.pop())
                raise
            return self.mask

    def set_points(self, points: Sequence[Sequence[float]], labels: Sequence[int], space: str = "ijk") -> np.ndarray:
        """Replace all points of the object (a point was moved or deleted) and predict again.

        The points are replayed in order from an empty mask, reusing the cached embeddings.
        """
        with self._lock:
            converted = [Point(self.to_lps(p, space), int(bool(l))) for p, l in zip(points, labels)]
            snapshot = self._snapshot()
            try:
                self._clear_object(keep_history=True)
                for point in converted:
                    self._points.append(point)
                    self._update_for_point(point)
            except BaseException:
                self._restore(snapshot)
                raise
            self._history.append(snapshot)
            return self.mask

    def undo(self) -> np.ndarray:
        """Take back the last change; returns the mask before it."""
        with self._lock:
            if self._history:
                self._restore(self._history.pop())
            return self.mask

    def reset(self) -> np.ndarray:
        """Remove every point of the current object (undoable)."""
        with self._lock:
            self._history.append(self._snapshot())
            self._clear_object(keep_history=True)
            return self.mask

    def new_object(self) -> None:
        """Start the next target; cached embeddings are kept for it."""
        with self._lock:
            self._clear_object()

    def cancel(self) -> None:
        """Ask a running encoder (in another thread) to stop; that call raises :class:`Cancelled`."""
        self._cancel.set()

    @property
    def mask(self) -> np.ndarray:
        """Current mask of the object, (z, y, x) uint8 (a copy)."""
        if self._image is None:
            raise SegAnyPETError("no image: call set_image first")
        mask = self._network_mask()
        if self.lesion:
            mask = self._focal_uptake(mask)
        elif self.contrast_edge:
            mask = self._contrast_edge(mask)
            if self._foreign is not None:
                mask &= ~self._foreign  # not back across the cut from a part that is another object
            if self.clicked_islands_only:  # the edge may have cut a part off; it keeps the clicks' voxels
                mask = self._clicked_islands(mask, with_neighbours=True)
        return mask.astype(np.uint8, copy=False)

    @property
    def points(self) -> List[Tuple[Tuple[float, float, float], int]]:
        """The object's points as (LPS mm, label)."""
        return [(tuple(float(v) for v in p.lps), p.label) for p in self._points]

    @property
    def num_crops(self) -> int:
        return len(self._crops)

    @property
    def crops(self) -> List[CropGrid]:
        return [crop.grid for crop in self._crops]

    # ----------------------------------------------------------------------------- coordinates
    def to_lps(self, point: Sequence[float], space: str = "ijk") -> np.ndarray:
        """Convert a point to LPS mm, refusing points outside the volume."""
        image = self.image
        if space not in SPACES:
            raise SegAnyPETError(f"unknown point space {space!r}; use one of {', '.join(SPACES)}")
        values = np.asarray(point, dtype=float).ravel()
        if values.size != 3 or not np.all(np.isfinite(values)):
            raise SegAnyPETError(f"a point needs three finite coordinates, got {list(point)}")
        if space == "ijk":
            index = values
            lps = np.asarray(image.TransformContinuousIndexToPhysicalPoint(values.tolist()))
        else:
            lps = values * np.array([-1.0, -1.0, 1.0]) if space == "ras" else values
            index = np.asarray(image.TransformPhysicalPointToContinuousIndex(lps.tolist()))
        size = np.asarray(image.GetSize())
        if np.any(index < -0.5) or np.any(index > size - 0.5):
            raise SegAnyPETError(
                f"click {values.tolist()} ({space}) is outside the volume (voxel index "
                f"{np.round(index, 1).tolist()}, image size {size.tolist()})"
            )
        return lps

    # ----------------------------------------------------------------------------- internals
    def _clear_object(self, keep_history: bool = False) -> None:
        self._points: List[Point] = []
        self._crops: List[_Crop] = []
        self._rejected: Set[CropGrid] = set()  # added crops this object dropped: not decoded again on each click
        self._foreign: Optional[np.ndarray] = None  # parts of the first mask that are another object
        if not keep_history:
            self._history: List[tuple] = []
        if self._image is not None:
            self._mask = np.zeros(self._shape, dtype=np.uint8)

    def _snapshot(self) -> tuple:
        crops = [(crop, crop.logits, list(crop.seeds)) for crop in self._crops]
        return list(self._points), crops, self._mask.copy(), self._foreign

    def _restore(self, snapshot: tuple) -> None:
        points, crops, mask, self._foreign = snapshot
        self._points = list(points)
        self._crops = []
        for crop, logits, seeds in crops:
            if crop.logits is not logits:
                crop._prob = None
            crop.logits, crop.seeds = logits, list(seeds)
            self._crops.append(crop)
        self._mask = mask

    def _clicked_islands(self, mask: np.ndarray, with_neighbours: bool = False) -> np.ndarray:
        """The face-connected parts of ``mask`` that hold a positive click.

        The parts next to a click (its 26 neighbours) count too where no positive click lies in any
        part (the network left them out by a voxel), or with ``with_neighbours``. A part that is only
        next to a click the network left out is another structure (the liver beside an aortic
        click). A mask that no positive click touches is kept whole.
        """
        mask = mask.copy()
        box = self._crops_box()
        if box is None:
            return mask
        islands, count = ndimage.label(mask[box])
        if count < 2:
            return mask
        holding, near = set(), set()
        for index in self._click_voxels()[0]:
            at = tuple(i - b.start for i, b in zip(index, box))
            if all(0 <= a < n for a, n in zip(at, islands.shape)):
                holding.add(int(islands[at]))
            near.update(np.unique(islands[tuple(slice(max(a - 1, 0), max(a + 2, 0)) for a in at)]).tolist())
        holding.discard(0)
        near.discard(0)
        touched = near if with_neighbours or not holding else holding
        if touched:
            mask[box] = np.isin(islands, sorted(touched))
        return mask

    def _network_mask(self) -> np.ndarray:
        """The object's mask as the network gives it (a new array): without the parts that are
        another object, only the clicked islands where asked, and without the contrast edge."""
        mask = self._mask if self._foreign is None else self._mask & ~self._foreign
        return self._clicked_islands(mask) if self.clicked_islands_only else mask.copy()

    def _contrast_edge(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` with its edge moved to the PET contrast, within one voxel of the coarser grid."""
        spacing = self.image.GetSpacing()[::-1]
        band_mm = 1.01 * max(max(spacing), max(self.preprocessing.spacing))
        image = sitk.GetArrayViewFromImage(self.image)  # a view: no copy of the volume
        return edges.contrast_edge(image, mask, spacing, band_mm, self.edge_fraction, *self._click_voxels())

    def _focal_uptake(self, context: np.ndarray) -> np.ndarray:
        """The lesions at the positive clicks, against the levels of the tissue in ``context``."""
        image = sitk.GetArrayViewFromImage(self.image)
        return lesions.focal_uptake(image, self.image.GetSpacing()[::-1], context, *self._click_voxels(), self.edge_fraction)

    def _click_voxels(self) -> Tuple[List[Tuple[int, int, int]], List[Tuple[int, int, int]]]:
        """The input-grid voxels of the positive clicks and of the negative ones."""
        return ([self._voxel(p) for p in self._points if p.label == 1],
                [self._voxel(p) for p in self._points if p.label == 0])

    def _crops_box(self) -> Optional[Tuple[slice, slice, slice]]:
        """(z, y, x) slices of the input grid around every crop of the object; None without crops."""
        regions = [crop.region for crop in self._crops if crop.region is not None]
        if not regions:
            return None
        return tuple(slice(min(r[a].start for r in regions), max(r[a].stop for r in regions)) for a in range(3))

    def _update_for_point(self, point: Point) -> None:
        started = time.perf_counter()
        self.timing = {"encoder_ms": 0.0}
        first_crop = not self._crops
        if point.label == 1 and self._foreign is not None and self._foreign[self._voxel(point)]:
            self._foreign = self._take_back(self._voxel(point))
        targets = [crop for crop in self._crops if crop.grid.contains(point.lps)]
        if not targets:
            if point.label == 0:
                return  # a negative click away from every crop changes nothing yet
            if len(self._crops) >= self.max_crops:
                raise SegAnyPETError(f"this object already uses {self.max_crops} crops; start a new object")
            # Centred on the click even where another object's crop holds it: the networks are trained
            # on crops centred on their target and segment what lies at the centre
            # (docs/experiments/crop_centre.py measures how much).
            targets = [self._new_crop(CropGrid.around(point.lps, self.preprocessing, self.image))]
        changed = []
        for crop in targets:
            self._predict(crop)
            changed.append(crop)
        if self.extend:
            changed += self._extend_crops(changed)
        if first_crop and self.interior_crop:
            changed += self._add_interior_crop(targets[0], point)
        self._merge(changed)
        if first_crop and self.part_check:
            self._foreign = self._foreign_parts(point)
        self.timing["total_ms"] = 1000 * (time.perf_counter() - started)
        self.timing["click_ms"] = self.timing["total_ms"] - self.timing["encoder_ms"]

    def _add_interior_crop(self, crop: _Crop, click: Point) -> List[_Crop]:
        """Add a crop centred on the deepest voxel of ``crop``'s mask part that holds the click.

        An object's first click is often near its edge (the protocol draws it anywhere inside), and
        the crop centred there sees a neighbouring organ as much as the clicked one; the added crop
        has the object at its centre and the click off it, as in training. Returns the new crops
        (with those added beyond its faces); none where the mask misses the click, its deepest point
        is within a crop voxel of the click, or the crop there would not hold the click.
        """
        if len(self._crops) >= self.max_crops:
            return []
        mask = self._crop_probability(crop) > self.mask_threshold
        index = tuple(crop.grid.nearest_index(click.lps)[0])
        parts, _ = ndimage.label(mask)
        if parts[index] == 0:
            return []
        # Depth within the crop: its faces count as the part's surface.
        depth = _depth(parts == parts[index], crop.grid.spacing)
        deepest = np.unravel_index(int(np.argmax(depth)), mask.shape)
        center = crop.grid.to_physical(np.asarray(deepest, float))[0]
        if np.linalg.norm(center - click.lps) < max(crop.grid.spacing):
            return []
        grid = CropGrid.around(center, self.preprocessing, self.image)
        if not grid.contains(click.lps) or any(other.grid == grid for other in self._crops):
            return []  # moved off the click to fit in the image, or no move at all
        interior = self._new_crop(grid)
        self._predict(interior)
        return [interior] + (self._extend_crops([interior]) if self.extend else [])

    def _foreign_parts(self, click: Point) -> Optional[np.ndarray]:
        """The parts of the mask that, segmented from their own deepest voxel, do not reach ``click``.

        The mask's component holding the click is split into cores (:func:`_depth_cores`), each
        voxel going to its nearest core; the ``max_part_checks`` largest parts but the click's, of at
        least ``min_part_ml``, are each segmented from a crop centred on their core's deepest voxel,
        with that voxel as the only click. Returns the parts whose own mask does not reach the
        click, or None.
        """
        mask, index = self._network_mask(), self._voxel(click)
        if not mask[index]:
            return None
        crops = self._crops_box()
        parts, _ = ndimage.label(mask[crops])
        at_click = parts[tuple(i - b.start for i, b in zip(index, crops))]
        inner = ndimage.find_objects((parts == at_click).astype(np.uint8))[0]
        box = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(crops, inner))
        component = parts[inner] == at_click
        spacing = np.asarray(self.image.GetSpacing()[::-1])
        depth = _depth(component, spacing)
        cores = _depth_cores(depth, self.part_depth_mm)
        if cores.max() < 2:
            return None
        nearest = ndimage.distance_transform_edt(cores == 0, sampling=spacing, return_distances=False, return_indices=True)
        owner = np.where(component, cores[tuple(nearest)], 0)
        own = owner[tuple(i - b.start for i, b in zip(index, box))]
        voxel_ml = float(np.prod(spacing)) / 1000.0
        volumes = ndimage.sum(component, owner, index=np.arange(cores.max() + 1)) * voxel_ml
        volumes[[0, own]] = 0
        largest = [label for label in np.argsort(-volumes)[: self.max_part_checks] if volumes[label] >= self.min_part_ml]
        foreign = np.zeros(self._shape, dtype=bool)
        for label in largest:
            deepest = np.unravel_index(int(np.argmax(np.where(cores == label, depth, 0))), depth.shape)
            zyx = [float(d + b.start) for d, b in zip(deepest, box)]
            probe = np.asarray(self.image.TransformContinuousIndexToPhysicalPoint(zyx[::-1]))
            if not self._segments_with(probe, click):
                logger.debug("leaving out %.0f mL of the mask: clicked alone it is another object", volumes[label])
                foreign[box] |= owner == label
        return foreign if foreign.any() else None

    def _take_back(self, index: Tuple[int, int, int]) -> Optional[np.ndarray]:
        """The parts left out after a positive click at ``index`` (z, y, x) in one of them.

        A click in the part's inner half (at least half its greatest depth below its surface) says
        the part is the object after all, and it goes back into the mask; a click nearer its edge
        corrects the object's own edge where it meets the other object (the prostate's rim at the
        bladder), and only the clicked voxel goes back. Returns None when nothing is left out.
        """
        parts, _ = ndimage.label(self._foreign)
        part = parts == parts[index]
        box = ndimage.find_objects(part.view(np.uint8))[0]
        spacing = self.image.GetSpacing()[::-1]
        depth = _depth(part[box], spacing)
        foreign = self._foreign.copy()
        if depth[tuple(i - b.start for i, b in zip(index, box))] >= 0.5 * depth.max():
            foreign &= ~part
        else:
            foreign[index] = False
        return foreign if foreign.any() else None

    def _segments_with(self, probe: np.ndarray, click: Point) -> bool:
        """Whether the probe (LPS mm), clicked alone in a crop centred on it, may segment ``click`` with it.

        False only where that mask's part holding the probe ends inside the crop without reaching
        the click; a part that misses the probe or reaches the crop's faces says nothing against it.
        """
        grid = CropGrid.around(probe, self.preprocessing, self.image)
        crop = _Crop(grid, None)
        self._predict(crop, [Point(probe, 1)])
        parts, _ = ndimage.label(self._crop_probability(crop) > self.mask_threshold)
        at_probe = parts[tuple(grid.nearest_index(probe)[0])]
        if at_probe == 0:
            return True
        part = parts == at_probe
        if edges.reaches_faces(part):
            return True  # the object goes on beyond the crop
        return grid.contains(click.lps) and bool(part[tuple(grid.nearest_index(click.lps)[0])])

    def _voxel(self, point: Point) -> Tuple[int, int, int]:
        """The input-grid voxel (z, y, x) nearest to a point."""
        index = np.rint(self.image.TransformPhysicalPointToContinuousIndex(point.lps.tolist()))[::-1].astype(int)
        return tuple(int(v) for v in np.clip(index, 0, np.asarray(self._shape) - 1))

    def _new_crop(self, grid: CropGrid, seeds: Sequence[Point] = ()) -> _Crop:
        self._embedding(grid)  # encode now: a cancelled encoder leaves no crop behind
        crop = _Crop(grid, crop_footprint(grid, self.image), list(seeds))
        self._crops.append(crop)
        return crop

    @property
    def _mirrorings(self) -> List[Tuple[int, ...]]:
        return MIRRORINGS if self.mirror else [()]

    def _embedding(self, grid: CropGrid) -> torch.Tensor:
        """The crop's embeddings, one per mirroring (flipped back only at the logits).

        The cache keeps the current object's crops and the ``max_cached_crops`` most recently used.
        """
        cached = self._embeddings.pop(grid, None)
        if cached is None or cached.shape[0] != len(self._mirrorings):
            started = time.perf_counter()
            crop = torch.from_numpy(extract_crop(self.image, grid))
            cached = self._encode(torch.stack([crop.flip(axes) for axes in self._mirrorings])[:, None])
            self.timing["encoder_ms"] = self.timing.get("encoder_ms", 0.0) + 1000 * (time.perf_counter() - started)
        self._embeddings[grid] = cached  # the most recently used last
        in_use = {crop.grid for crop in self._crops} | {grid}
        stale = [g for g in self._embeddings if g not in in_use]
        for old in stale[: max(len(self._embeddings) - self.max_cached_crops, 0)]:
            del self._embeddings[old]
        return cached

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Run the image encoder block by block, reporting progress and honouring cancel()."""
        self._cancel.clear()
        encoder = self.model.image_encoder
        autocast = self.device.type == "cuda" and self.precision != "fp32"
        dtype = torch.bfloat16 if autocast and torch.cuda.is_bf16_supported() else torch.float16

        def progress(fraction: float) -> None:
            if self._cancel.is_set():
                raise Cancelled("encoder cancelled")
            self._report(fraction, "computing image embedding")

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=autocast):
            embedding = encoder(x.to(self.device), progress=progress)
        self._report(1.0, "image embedding ready")
        return embedding.float()

    def _report(self, fraction: float, text: str) -> None:
        if self.progress is not None:
            self.progress(fraction, text)

    def _prompts(self, crop: _Crop, points: Optional[Sequence[Point]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if points is None:
            points = crop.seeds + [p for p in self._points if crop.grid.contains(p.lps)]
        coords = crop.grid.nearest_index(np.array([p.lps for p in points]))
        labels = [p.label for p in points]
        return (
            torch.as_tensor(coords, dtype=torch.float32, device=self.device)[None],
            torch.as_tensor(labels, dtype=torch.int64, device=self.device)[None],
        )

    def _predict(self, crop: _Crop, points: Optional[Sequence[Point]] = None) -> None:
        """Decode the crop's points (or ``points``) and previous logits; with mirroring, one batch over the mirrorings."""
        low = self.model.config.low_res_size
        previous = crop.logits if crop.logits is not None else torch.zeros(1, 1, low, low, low, device=self.device)
        coords, labels = self._prompts(crop, points)
        mirrorings = self._mirrorings
        top = crop.grid.size - 1
        with torch.inference_mode():
            logits, _ = self.model.decode(
                self._embedding(crop.grid),  # encoded again if mirroring was switched since
                torch.cat([_mirror_points(coords, axes, top) for axes in mirrorings]),
                labels.expand(len(mirrorings), -1),
                torch.cat([previous.flip([2 + a for a in axes]) for axes in mirrorings]),
            )
            logits = torch.stack([l.flip([1 + a for a in axes]) for l, axes in zip(logits, mirrorings)])
        crop.logits, crop._prob = logits.mean(0, keepdim=True), None

    def _crop_probability(self, crop: _Crop) -> np.ndarray:
        """Sigmoid of the logits upsampled to the crop (trilinear, as the official code), (i, j, k)."""
        with torch.inference_mode():
            upsampled = upsample_logits(crop.logits, (crop.grid.size,) * 3)
            return torch.sigmoid(upsampled)[0, 0].float().cpu().numpy()

    def _region_values(self, crop: _Crop) -> Tuple[np.ndarray, np.ndarray]:
        """The crop's probability and weight on its footprint of the input grid (cached)."""
        if crop._to_image is None:
            crop._to_image = CropToImage(crop.grid, self.image, crop.region)
        if crop._prob is None:
            crop._prob = crop._to_image(self._crop_probability(crop))
        if crop._weight is None:
            crop._weight = crop._to_image(self._weight_full)
        return crop._prob, crop._weight

    def _merge(self, changed: Sequence[_Crop]) -> None:
        """Recompute the mask where the changed crops lie, from every crop overlapping there."""
        started = time.perf_counter()
        for target in {id(c): c for c in changed}.values():
            if target.region is None:
                continue
            region = target.region
            numerator = np.zeros([s.stop - s.start for s in region], np.float32)
            denominator = np.zeros_like(numerator)
            for crop in self._crops:
                overlap = _intersect(region, crop.region)
                if overlap is None or crop.logits is None:
                    continue
                prob, weight = self._region_values(crop)
                inner, outer = _relative(overlap, crop.region), _relative(overlap, region)
                numerator[outer] += prob[inner] * weight[inner]
                denominator[outer] += weight[inner]
            with np.errstate(invalid="ignore", divide="ignore"):
                merged = np.where(denominator > 0, numerator / np.maximum(denominator, 1e-12), 0.0)
            self._mask[region] = (merged > self.mask_threshold).astype(np.uint8)
        self.timing["paste_ms"] = 1000 * (time.perf_counter() - started)

    def _extend_crops(self, crops: Sequence[_Crop]) -> List[_Crop]:
        """Add crops beyond faces that the mask touches inside the image; returns the new crops."""
        added: List[_Crop] = []
        queue = list(crops)
        while queue and len(self._crops) < self.max_crops:
            crop = queue.pop(0)
            for center, seed in self._border_contacts(crop):
                if len(self._crops) >= self.max_crops:
                    break
                if any(other.grid.contains(center, margin=self.preprocessing.crop_size / 4) for other in self._crops):
                    continue
                grid = CropGrid.around(center, self.preprocessing, self.image)
                if grid in self._rejected or any(other.grid == grid for other in self._crops):
                    continue
                logger.debug("mask reaches the crop border: adding a crop around %s mm", np.round(center, 1).tolist())
                new = self._new_crop(grid, seeds=[seed])
                self._predict(new)
                agreement = self._overlap_dice(crop, new)
                if agreement < self.extension_agreement:
                    logger.debug("dropping the added crop: it disagrees with its source (overlap Dice %.2f)", agreement)
                    self._crops.remove(new)
                    self._rejected.add(grid)
                    continue
                added.append(new)
                queue.append(new)
        return added

    def _overlap_dice(self, a: _Crop, b: _Crop) -> float:
        """Dice of two crops' masks where both crops see the image."""
        overlap = _intersect(a.region, b.region)
        if overlap is None:
            return 0.0
        masks = [self._region_values(crop)[0][_relative(overlap, crop.region)] > self.mask_threshold for crop in (a, b)]
        return dice(*masks)

    def _border_contacts(self, crop: _Crop) -> List[Tuple[np.ndarray, Point]]:
        """For each crop face the mask touches (inside the image): a new crop centre and a seed."""
        mask = self._crop_probability(crop) > self.mask_threshold
        size = crop.grid.size
        spacing = np.asarray(crop.grid.spacing)
        extent = spacing * (size - 1)
        contacts = []
        for axis in range(3):
            for side, layer in ((-1, 0), (1, size - 1)):
                face = np.take(mask, layer, axis=axis)
                if face.sum() < 8:
                    continue
                # Does the image go on beyond this face? Compare in RAS coordinates.
                face_ras = RAS_DIRECTION.T @ crop.grid.to_physical(np.full(3, layer, float))[0]
                beyond = face_ras[axis] + side * spacing[axis]
                low, high = self._bounds_ras
                if not (low[axis] <= beyond <= high[axis]):
                    continue
                others = [a for a in range(3) if a != axis]
                coords = np.argwhere(face).mean(axis=0)
                index = np.empty(3)
                index[axis] = layer
                index[others] = coords
                contact = crop.grid.to_physical(index)[0]
                outward = np.zeros(3)
                outward[axis] = side
                center = contact + RAS_DIRECTION @ (outward * extent / 4)
                contacts.append((center, Point(self._seed_inside(mask, axis, layer, side, crop.grid), 1)))
        return contacts

    @staticmethod
    def _seed_inside(mask: np.ndarray, axis: int, layer: int, side: int, grid: CropGrid) -> np.ndarray:
        """The deepest mask voxel in the outer eighth of the crop next to a face, in LPS mm."""
        depth = max(2, grid.size // 8)
        band = [slice(None)] * 3
        band[axis] = slice(layer - depth + 1, layer + 1) if side > 0 else slice(0, depth)
        region = np.zeros_like(mask)
        region[tuple(band)] = mask[tuple(band)]
        distance = ndimage.distance_transform_edt(region)
        index = np.unravel_index(int(np.argmax(distance)), mask.shape)
        return grid.to_physical(np.asarray(index, float))[0]


def _depth(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` to its surface, the array's faces counting as surface."""
    return ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]


def _depth_cores(depth: np.ndarray, prominence: float) -> np.ndarray:
    """Label the regions around the maxima of ``depth`` that rise ``prominence`` above their saddles.

    Among the levels of ``depth`` (1 mm apart), the one whose connected components include the most
    that reach ``prominence`` above it; returns those components labelled 1..n (all zero when fewer
    than two).
    """
    best, count = np.zeros(depth.shape, np.int32), 0
    for level in np.arange(1.0, float(depth.max()), 1.0):
        components, n = ndimage.label(depth >= level)
        if n < 2:
            continue
        peaks = ndimage.maximum(depth, components, index=np.arange(1, n + 1))
        prominent = np.flatnonzero(peaks >= level + prominence) + 1
        if len(prominent) > count:
            count = len(prominent)
            best = np.where(np.isin(components, prominent), np.searchsorted(prominent, components) + 1, 0)
    return best if count >= 2 else np.zeros(depth.shape, np.int32)


def _mirror_points(coords: torch.Tensor, axes: Sequence[int], top: int) -> torch.Tensor:
    """Crop voxel coordinates (B, N, 3) after flipping the crop along ``axes`` (indices 0..top)."""
    mirrored = coords.clone()
    for axis in axes:
        mirrored[..., axis] = top - mirrored[..., axis]
    return mirrored


def _relative(overlap, region) -> Tuple[slice, ...]:
    """``overlap`` (slices of the input grid) as slices into an array that covers ``region``."""
    return tuple(slice(o.start - r.start, o.stop - r.start) for o, r in zip(overlap, region))


def _intersect(a, b):
    if a is None or b is None:
        return None
    out = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))
    return None if any(s.stop <= s.start for s in out) else out
