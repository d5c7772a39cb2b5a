"""Interactive click-to-segment on one PET volume, with cached image embeddings.

``set_image`` takes the volume once; every click is a cheap prompt: the first click of an object
places a crop and runs the image encoder, and every further click inside the object's crops reruns
only the prompt encoder and the mask decoder, with the points so far and the previous low-resolution
logits as the mask prompt (the official SegAnyPET / SAM-Med3D protocol). What else happens is the
session's config (:class:`~SegAnyPETLib.inference.config.SessionConfig`): ``official`` does nothing
else; a checkpoint carries the config it was measured with (the bundled model's is ``bundled``).

The parts: :mod:`~SegAnyPETLib.inference.embeddings` (encoder runs and their cache),
:mod:`~SegAnyPETLib.inference.crops` (placement, decoding, blending), :mod:`~SegAnyPETLib.inference.steps`
(extension, interior crop, part check: more network runs) and :mod:`~SegAnyPETLib.inference.refiners`
(mask to mask, in the configured order). All per-click work stays inside the object's crops and the
refiners' margins; :attr:`InteractiveSession.last_update` says which box of the volume changed.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .checkpoints import check_mask_threshold
from .device import resolve_device
from .errors import SegAnyPETError
from .inference import steps
from .inference.config import preset_name, resolve_config
from .inference.coordinates import check_contradictions, nearest_voxel, to_lps
from .inference.crops import Box, MaskUpdate, ObjectCrops, Point, relative, union_box
from .inference.embeddings import EmbeddingCache
from .inference.refiners import refine_object
from .model import Sam3D
from .preprocessing import as_image, validate_pet


class InteractiveSession:
    """Click-to-segment on one volume: ``set_image`` once, then ``add_click`` for each click.

    Args:
        model: a network from :func:`SegAnyPETLib.load_model`.
        preset: a preset name (``official``, ``bundled``) or a :class:`SessionConfig`; default: the
            model's own config (``model.inference``), else ``official``.
        device: ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"``...
        precision: encoder precision on GPU: ``"auto"`` (float16/bfloat16 autocast) or ``"fp32"``.
        progress: optional ``callback(fraction, text)`` while the encoder runs.
        **overrides: options of :class:`SessionConfig` on top of the preset (``mirror=True`` ...).
    """

    history_limit = 50  # undo steps kept

    def __init__(self, model: Sam3D, preset: Any = None, device: str = "auto", precision: str = "auto",
                 progress: Optional[Callable[[float, str], None]] = None, **overrides: Any) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.embeddings = EmbeddingCache(self.model, self.device, precision, progress)
        self.timing: Dict[str, float] = {}
        self.warnings: List[str] = []
        self.last_update: Optional[MaskUpdate] = None
        self._lock = threading.RLock()
        self._image: Optional[sitk.Image] = None
        self._lesion = False
        self.configure(preset, **overrides)

    # ----------------------------------------------------------------------------- settings
    def configure(self, preset: Any = None, **overrides: Any) -> None:
        """Change the options (a preset and/or single options); they apply from the next change."""
        with self._lock:
            self.config = resolve_config(self.model, preset or getattr(self, "config", None), **overrides)
            self.threshold = check_mask_threshold(self.config.mask_threshold or self.model.mask_threshold)
            self.embeddings.mirror = self.config.mirror
            self._lesion = self._lesion and bool(self.config.lesion_refiners)
            if self._image is not None:
                self._crops = self._object_crops(self._crops.crops)
                self._render()

    @property
    def preset_name(self) -> str:
        """The preset the config equals, else ``custom``."""
        return preset_name(self.config) or "custom"

    @property
    def lesion(self) -> bool:
        """Whether the object is a lesion (its mask comes from the config's ``lesion_refiners``)."""
        return self._lesion

    @lesion.setter
    def lesion(self, lesion: bool) -> None:
        if lesion and not self.config.lesion_refiners:
            raise SegAnyPETError(f"the {self.preset_name} config has no lesion refiners, so lesion mode would change "
                                 "nothing; choose a preset with them or set lesion_refiners=clicked_islands,focal_uptake")
        with self._lock:
            self._lesion = bool(lesion)
            if self._image is not None:
                self._render()

    # ----------------------------------------------------------------------------- image
    def set_image(self, image, spacing=None, origin=None, direction=None, name: str = "image") -> None:
        """Use a new volume: a SimpleITK image, or a (z, y, x) array with spacing/origin/direction.
        ``name`` (e.g. the file) starts the message when the volume is refused."""
        image = as_image(image, spacing, origin, direction)
        validate_pet(image, name)
        with self._lock:
            self._image = sitk.Cast(image, sitk.sitkFloat32)
            self.embeddings.clear()
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
        or ``"ras"`` (Slicer, NIfTI) millimetres. A point on the voxel of a point of the other label
        is refused; :attr:`warnings` says when the mask does not hold a positive point.
        """
        with self._lock:
            new = Point(self.to_lps(point, space), int(bool(positive)))
            check_contradictions(self.image, self._points + [new])
            return self._change(lambda: self._add(new))

    def set_points(self, points: Sequence[Sequence[float]], labels: Sequence[int], space: str = "ijk") -> np.ndarray:
        """Replace all points of the object (a point was moved or deleted) and predict again: the
        points are replayed in order from an empty mask, reusing the cached embeddings."""
        with self._lock:
            converted = [Point(self.to_lps(p, space), int(bool(l))) for p, l in zip(points, labels)]
            check_contradictions(self.image, converted)

            def replay() -> None:
                self._clear_object(keep_history=True)
                for point in converted:
                    self._add(point)

            return self._change(replay)

    def reset(self) -> np.ndarray:
        """Remove every point of the current object (undoable)."""
        with self._lock:
            return self._change(lambda: self._clear_object(keep_history=True))

    def undo(self) -> np.ndarray:
        """Take back the last change; returns the mask before it."""
        with self._lock:
            if self._history:
                previous = self._region
                self._restore(self._history.pop())
                self._render(previous)
            return self.mask

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def new_object(self) -> None:
        """Start the next target; cached embeddings are kept for it."""
        with self._lock:
            self._clear_object()

    def cancel(self) -> None:
        """Ask a running encoder (in another thread) to stop; that call raises :class:`~SegAnyPETLib.errors.Cancelled`."""
        self.embeddings.cancel()

    def needs_encoder(self, point: Sequence[float], positive: bool = True, space: str = "ijk") -> bool:
        """Whether adding this point may run the image encoder (a new crop, a config that adds crops);
        when False the click only decodes: cheap enough for a user interface's main thread."""
        targets = self._crops.containing(self.to_lps(point, space))
        if not targets:
            return bool(positive)
        return self.config.extend or not all(self.embeddings.cached(crop.grid) for crop in targets)

    # ----------------------------------------------------------------------------- results
    @property
    def mask(self) -> np.ndarray:
        """The object's mask, (z, y, x) uint8 on the input grid (a new array)."""
        return self._mask_in(tuple(slice(0, n) for n in self._mask_shape))

    @property
    def _mask_shape(self) -> Tuple[int, int, int]:
        return tuple(reversed(self.image.GetSize()))

    @property
    def points(self) -> List[Tuple[Tuple[float, float, float], int]]:
        """The object's points as (LPS mm, label)."""
        return [(tuple(float(v) for v in p.lps), p.label) for p in self._points]

    @property
    def reach(self) -> Optional[np.ndarray]:
        """Where a next point can act: None (anywhere) while the config allows another crop, else the
        voxels (z, y, x bool) inside the object's crops; a positive point elsewhere is refused."""
        return None if len(self._crops) < self.config.max_crops else self._crops.inside(self._mask_shape)

    @property
    def num_crops(self) -> int:
        return len(self._crops)

    @property
    def crops(self) -> list:
        return self._crops.grids()

    def to_lps(self, point: Sequence[float], space: str = "ijk") -> np.ndarray:
        """A point as LPS mm (:func:`~SegAnyPETLib.inference.coordinates.to_lps`), refused outside the volume."""
        return to_lps(self.image, point, space)

    def _voxel(self, lps: np.ndarray) -> Tuple[int, int, int]:
        return nearest_voxel(self.image, lps)

    # ----------------------------------------------------------------------------- internals
    def _object_crops(self, crops: Sequence = ()) -> ObjectCrops:
        object_crops = ObjectCrops(self.model, self.embeddings, self.image, self.config.crop, self.config.paste,
                                   self.threshold)
        object_crops.crops = list(crops)
        for crop in object_crops.crops:  # the paste mode may have changed
            crop._to_image = crop._probability = crop._weight = None
        return object_crops

    def _clear_object(self, keep_history: bool = False) -> None:
        self._points: List[Point] = []
        self._excluded: Optional[steps.BoxMask] = None  # parts of the first mask that are another object
        if not keep_history:
            self._history: collections.deque = collections.deque(maxlen=self.history_limit)
        if self._image is not None:
            self._crops = self._object_crops()
            self._region: Optional[Box] = None
            self._region_mask: Optional[np.ndarray] = None
            self.last_update = None

    def _state(self) -> tuple:
        return list(self._points), self._crops.state(), set(self._crops.rejected), self._excluded

    def _restore(self, state: tuple) -> None:
        points, crops, rejected, self._excluded = state
        self._points = list(points)
        self._crops.restore(crops)
        self._crops.rejected = set(rejected)

    def _change(self, work: Callable[[], None]) -> np.ndarray:
        """Run ``work`` on the object as one undoable step; on any error (a cancel) nothing changed."""
        state, previous = self._state(), self._region
        started = time.perf_counter()
        self.embeddings.reset_counters()
        try:
            work()
        except BaseException:
            self._restore(state)
            raise
        self._history.append(state)
        network_ms = 1000 * (time.perf_counter() - started)
        self._render(previous)
        total_ms = 1000 * (time.perf_counter() - started)
        self.timing = {"encoder_ms": self.embeddings.encoder_ms, "encoder_runs": self.embeddings.runs,
                       "refine_ms": total_ms - network_ms, "total_ms": total_ms,
                       "click_ms": total_ms - self.embeddings.encoder_ms}
        return self.mask

    def _add(self, point: Point) -> None:
        """Add ``point`` to the object and run the network where it says (the config's steps too)."""
        config, crops = self.config, self._crops
        first = not crops.crops
        self._points.append(point)
        voxel = self._voxel(point.lps)
        if point.label == 1 and self._excluded is not None and self._excluded[voxel]:
            self._excluded = steps.take_back(self._excluded, voxel, self.image.GetSpacing()[::-1])
        targets = crops.containing(point.lps)
        if not targets:
            if point.label == 0:
                return  # a negative point away from every crop changes nothing yet
            if len(crops) >= config.max_crops:
                raise SegAnyPETError(f"the point lies outside this object's {len(crops)} crop(s) and the config allows "
                                     f"{config.max_crops} (max_crops): start a new object there, or allow more crops")
            # Centred on the click even where another object's crop holds it: the networks segment
            # what lies at a crop's centre (docs/experiments/crop_centre.py measures how much).
            targets = [crops.add(crops.place(point.lps))]
        for crop in targets:
            crops.predict(crop, self._points)
        excluded = steps.run_steps(crops, config, targets, self._points, first, voxel, self.image.GetSpacing()[::-1])
        if first:
            self._excluded = excluded

    def _render(self, previous: Optional[Box] = None) -> None:
        """Blend the crops and run the refiners over the object's region; set :attr:`last_update` (the
        region now and ``previous``, the region before the change)."""
        previous = previous or self._region
        crops_box = self._crops.box()
        self._region = self._region_mask = None
        self.warnings = []
        if crops_box is not None:
            names = self.config.lesion_refiners if self._lesion else self.config.refiners
            spacing = self.image.GetSpacing()[::-1]
            positive = [self._voxel(p.lps) for p in self._points if p.label == 1]
            negative = [self._voxel(p.lps) for p in self._points if p.label == 0]
            band_mm = 1.01 * max(max(spacing), max(self.model.preprocessing.spacing))
            region, mask = refine_object(sitk.GetArrayViewFromImage(self.image), spacing, crops_box,
                                         self._crops.network_mask(crops_box), positive, negative, self._excluded,
                                         names, band_mm, self.config.edge_fraction)
            self._region, self._region_mask = region, mask.astype(np.uint8)
            missed = [v for v in positive if not self._region_mask[tuple(i - s.start for i, s in zip(v, region))]]
            self.warnings = [f"the mask does not hold the positive point at voxel (i, j, k) = {v[::-1]}: the network "
                             "finds no object there; move the point inside the target or add points" for v in missed]
        box = union_box([previous, self._region])
        self.last_update = None if box is None else MaskUpdate(box, self._mask_in(box))

    def _mask_in(self, box: Box) -> np.ndarray:
        """The object's mask over ``box`` (a new uint8 array)."""
        mask = np.zeros([s.stop - s.start for s in box], dtype=np.uint8)
        if self._region is not None:
            mask[relative(self._region, box)] = self._region_mask
        return mask
