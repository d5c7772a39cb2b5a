"""The session behind :class:`~SegAnyPETLib.slicer_logic.SegAnyPETLogic`: its model and options,
and the steps that bring a segment in line with the points.

:class:`SessionSteps` holds the network, the inference options (a preset and single options,
:mod:`SegAnyPETLib.inference.config`) and the :class:`~SegAnyPETLib.session.InteractiveSession`.
One step is one change of the session: the next new point as a click (prompt encoder and mask
decoder over the cached embeddings), or a replay of all points (a point moved or removed), or
clearing. A step that needs the image encoder (:meth:`SessionSteps._needsEncoder`) goes to
``runner`` (a thread, in the module); a decoder-only step runs at once on the calling thread. The
result is written into the target segment only where it changed (the session's ``last_update``)
and kept as an undo step with everything the write changed.

The MRML side (volume, target segment, point lists) is :class:`~SegAnyPETLib.slicer_logic.SegAnyPETLogic`,
which derives from this class. Imports only ``slicer`` MRML classes, numpy and SegAnyPETLib.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer

from .errors import SegAnyPETError
from .slicer_nodes import PROMPTS_TAG, PROMPTS_VERSION, Box, Prompt, changedBox, volumeIjkToRas, worldToLps
from .slicer_segment_writer import SegmentEdit, SegmentWriter

logger = logging.getLogger(__name__)

Runner = Callable[[Callable[[], Any], Callable[[Any, Optional[BaseException]], None]], None]


@dataclass
class _Step:
    """One change of the session: ``kind`` add (one new point), replay (all points) or clear."""

    kind: str
    prompts: List[Prompt]  # the points after the step (world RAS)
    points: List[Tuple[np.ndarray, int]]  # the same, LPS of the volume
    started: float = 0.0
    threaded: bool = False
    sessionUndo: bool = True  # the session takes the step too (one entry of its history)


@dataclass
class _Done:
    """A step applied to the segment: the edit to take back and what the logic showed before."""

    edit: SegmentEdit
    box: Optional[Box]
    shownBefore: Optional[np.ndarray]  # the target's mask in ``box`` before (volume grid); None: unknown
    sessionUndo: bool  # the session took the step too (undo it there)


def samePoints(a: Sequence[Tuple[Any, int]], b: Sequence[Tuple[Any, int]]) -> bool:
    """Whether two lists of (position, label) hold the same points in the same order (to 1e-4 mm)."""
    return len(a) == len(b) and all(la == lb and np.allclose(np.asarray(pa, dtype=float), np.asarray(pb, dtype=float), atol=1e-4)
                                    for (pa, la), (pb, lb) in zip(a, b))


class SessionSteps:
    """The model, the inference options, the session and the steps; see the module docstring.

    Subclasses provide ``_volumeNode``, ``_segmentationNode``, ``_segmentId``, ``_committed`` (the
    prompts the segment shows), ``_points`` (:class:`~SegAnyPETLib.slicer_prompts.PromptLists`),
    ``_requireTarget()`` and ``update()``.
    """

    def __init__(self, model: Any, device: str, preset: Optional[str], lesion: bool, overwriteMode: str,
                 overrides: Dict[str, Any]) -> None:
        self.modelSource = model
        self.device = device
        self.preset: Optional[str] = None
        self.overrides: Dict[str, Any] = {}
        self.lesion = False
        self.writer = SegmentWriter()
        self.writer.setOverwriteMode(overwriteMode)
        self.runner: Optional[Runner] = None
        self.progressCallback: Optional[Callable[[float, str], None]] = None
        self.updateCallback: Optional[Callable[[Dict[str, float]], None]] = None
        self.errorCallback: Optional[Callable[[BaseException], None]] = None
        self.lastError: Optional[BaseException] = None
        self.timing: Dict[str, float] = {}
        self.warnings: List[str] = []
        self.predictions = 0  # steps written to the segment so far
        self._model = None
        self._session = None
        self._imageStale = True
        self._shown: Optional[np.ndarray] = None  # the mask the logic wrote last (volume grid), if known
        self._shownIsSession = False  # _shown is the session's last rendered mask (its last_update follows it)
        self._history: List[_Done] = []
        self._busy = False
        self._configuredKey: Optional[tuple] = None  # the options the session was last given
        if preset or overrides:  # (checked as setOptions checks; without them no import of the config yet)
            self.setOptions(preset, **overrides)
        if lesion:
            self.setLesion(lesion)

    # ------------------------------------------------------------------------------ model and options
    @property
    def model(self):
        """The network (loaded on first use)."""
        if self._model is None:
            from .checkpoints import load_model
            from .model import Sam3D

            source = self.modelSource
            self._model = source if isinstance(source, Sam3D) else load_model(source, self.device)
        return self._model

    @property
    def modelName(self) -> str:
        source = self.modelSource
        return str(getattr(source, "source", None) or source) if not isinstance(source, str) else source

    def setModel(self, model: Any, device: Optional[str] = None) -> None:
        """Use another network (or device); cached embeddings are dropped, the prompts stay."""
        self._requireIdle()
        same = model is self.modelSource or (isinstance(model, str) and model == self.modelSource)
        if same and (device is None or device == self.device):
            return
        self.modelSource = model
        if device is not None:
            self.device = device
        self._model = None
        self._dropSession()

    def setOptions(self, preset: Optional[str] = None, **overrides: Any) -> None:
        """The session's inference preset (None or ``""``: the model's own) and single options on top,
        from the next click. An unknown preset or option, or a bad value, raises one
        :class:`SegAnyPETError` and changes nothing (the config's own checks). Lesion mode goes off
        when the new options have no lesion refiners."""
        from .inference.config import SessionConfig, preset as presetConfig

        self._requireIdle()
        checked = (presetConfig(preset) if preset else SessionConfig()).replace(**overrides)
        self.preset = preset or None
        self.overrides = {name: getattr(checked, name) for name in overrides}  # typed: "true" -> True, list -> tuple
        if self.lesion and self._configKnown() and not self.config.lesion_refiners:
            logger.warning("lesion mode off: %s", self._noLesionRefiners())
            self.lesion = False

    def baseConfig(self, preset: Optional[str] = None):
        """The :class:`~SegAnyPETLib.inference.config.SessionConfig` of ``preset`` before overrides
        (None or ``""``: the model's own: a registry model's preset without loading it, else the
        checkpoint's, which loads the model)."""
        from .checkpoints import REGISTRY
        from .inference.config import preset as presetConfig, resolve_config

        if not preset and not self.modelLoaded and self.registryModel:
            return presetConfig(REGISTRY[self.modelSource].preset)
        return resolve_config(None if preset else self.model, preset or None)

    @property
    def config(self):
        """The :class:`~SegAnyPETLib.inference.config.SessionConfig` the next click runs with (loads the
        model when the options start from the model's own)."""
        from .inference.config import resolve_config

        return resolve_config(None if self.preset else self.model, self.preset, **self.overrides)

    @property
    def session(self) -> Any:
        """The interactive session of the current volume (None before the first prediction)."""
        return self._session

    @property
    def registryModel(self) -> bool:
        """Whether the model is a registry name (its own options are then known without loading it)."""
        from .checkpoints import REGISTRY

        return isinstance(self.modelSource, str) and self.modelSource in REGISTRY

    @property
    def modelLoaded(self) -> bool:
        """Whether the network is loaded (then the model's own options are known without loading it)."""
        return self._model is not None or not isinstance(self.modelSource, (str, os.PathLike))

    def _configKnown(self) -> bool:
        return self.preset is not None or self.modelLoaded

    def _optionsKey(self) -> tuple:
        return (self.preset, tuple(sorted(self.overrides.items())), self.lesion)

    def _noLesionRefiners(self) -> str:
        options = f"the {self.preset} preset" if self.preset else "the model's own"
        if self.overrides:
            options += ", changed: " + ", ".join(sorted(self.overrides))
        return (f"the inference options ({options}) have no lesion refiners, so lesion mode would change nothing; "
                "choose a preset with them (bundled) or set the option lesion_refiners to clicked_islands,focal_uptake")

    def setLesion(self, lesion: bool) -> None:
        """Segment a lesion (the options' ``lesion_refiners``: the focal uptake at each positive point)
        or any object, from the next point; refused where the options have no lesion refiners."""
        self._requireIdle()
        if lesion and self._configKnown() and not self.config.lesion_refiners:
            raise SegAnyPETError(self._noLesionRefiners())
        self.lesion = bool(lesion)

    # ------------------------------------------------------------------------------ steps
    def _plan(self, desired: List[Prompt]) -> _Step:
        """The next step towards ``desired``: the first new point as a click when the session holds
        what the segment shows, else a replay of all points (or clearing for none)."""
        points = [(worldToLps(self._volumeNode, ras), label) for ras, label in desired]
        if not points:
            return _Step("clear", [], [])
        committed = [(worldToLps(self._volumeNode, ras), label) for ras, label in self._committed]
        inSync = self._sessionInSync(committed)
        if inSync and len(points) > len(committed) and samePoints(points[: len(committed)], committed):
            count = len(committed) + 1
            return _Step("add", list(desired[:count]), points[:count])
        return _Step("replay", list(desired), points)

    def _sessionInSync(self, points: List[Tuple[np.ndarray, int]]) -> bool:
        """The session exists on the current image and holds ``points``."""
        if self._session is None or self._imageStale:
            return False
        return samePoints(self._session.points, points)

    def _needsEncoder(self, step: _Step) -> bool:
        """Whether ``step`` runs the image encoder (then it goes to ``runner``); decoder-only steps run at once.

        A click needs it when the session says so (:meth:`~SegAnyPETLib.session.InteractiveSession.needs_encoder`:
        a new object's first click, a positive click outside every crop, options that add crops); a
        replay, unless it starts from the session's first point and the session says so of no point.
        """
        session = self._session
        if step.kind == "clear":
            return False
        if session is None or self._imageStale or self._optionsKey() != self._configuredKey:
            return True  # a new session, a new image, or new options (mirroring encodes again)

        def encodes(lps: np.ndarray, label: int) -> bool:
            return session.needs_encoder(lps, positive=bool(label), space="lps")

        if step.kind == "add":
            return encodes(*step.points[-1])
        first = session.points[:1]
        if not first or not samePoints(first, step.points[:1]):
            return True
        return any(encodes(lps, label) for lps, label in step.points)

    def _start(self, step: _Step) -> bool:
        """Run ``step`` (in ``runner`` when it needs the encoder); False when it failed at once."""
        step.started = time.perf_counter()
        if step.kind == "clear":  # no network: the session forgets its points, or there is none yet
            step.sessionUndo = self._session is not None and not self._imageStale
            self._busy = True
            if step.sessionUndo:
                return self._finish(step, self._session.reset(), None)
            shape = slicer.util.arrayFromVolume(self._volumeNode).shape
            return self._finish(step, np.zeros(shape, dtype=np.uint8), None)
        try:
            step.threaded = self.runner is not None and self._needsEncoder(step)
            prepare = self._prepareSession()
        except Exception as error:  # e.g. a point outside the volume
            self._busy = True
            return self._finish(step, None, error)

        def work() -> np.ndarray:
            prepare()
            if step.kind == "add":
                lps, label = step.points[-1]
                return self._session.add_click(lps, positive=bool(label), space="lps")
            return self._session.set_points([p for p, _ in step.points], [l for _, l in step.points], space="lps")

        self._busy = True
        if step.threaded:
            self.runner(work, lambda result, error: self._resume(step, result, error))
            return True
        try:
            result = work()
        except Exception as error:  # reported through _finish, like a background failure
            return self._finish(step, None, error)
        return self._finish(step, result, None)

    def _resume(self, step: _Step, result: Optional[np.ndarray], error: Optional[BaseException]) -> None:
        """A threaded step ended (main thread): write it, then take the points placed meanwhile."""
        if self._finish(step, result, error):
            self.update()

    def _prepareSession(self) -> Callable[[], None]:
        """Read what the session needs from MRML now (main thread); the returned step creates the
        session, gives it changed options (they apply from this step) and a changed image."""
        from .stats import geometry_from_ijk_to_ras

        image = None
        if self._session is None or self._imageStale:
            array = slicer.util.arrayFromVolume(self._volumeNode).astype(np.float32, copy=True)
            image = (array,) + geometry_from_ijk_to_ras(volumeIjkToRas(self._volumeNode))
        key = self._optionsKey()
        reconfigure = self._session is not None and key != self._configuredKey
        if reconfigure:
            self._shownIsSession = False  # configure renders the session's mask again

        def prepare() -> None:
            if self._session is None:
                from .session import InteractiveSession

                session = InteractiveSession(self.model, self.config, device=self.device, progress=self._progress)
                session.lesion = self.lesion  # a clear error for options without lesion refiners
                self._session, self._configuredKey = session, key
            elif reconfigure:
                self._session.configure(self.config)
                self._session.lesion = self.lesion
                self._configuredKey = key
            if image is not None:
                self._session.set_image(image[0], spacing=image[1], origin=image[2], direction=image[3])
                self._imageStale = False
                for done in self._history:  # the session's history went with the image
                    done.sessionUndo = False

        return prepare

    def _progress(self, fraction: float, text: str) -> None:
        if self.progressCallback is not None:
            self.progressCallback(fraction, text)

    def _finish(self, step: Optional[_Step], mask: Optional[np.ndarray], error: Optional[BaseException]) -> bool:
        """Main thread: write the step's result, or undo the points that caused the error. True if written."""
        self._busy = False
        if error is None and step is not None:
            try:
                self._commit(step, mask)
            except Exception as writeError:  # e.g. the segment was deleted meanwhile
                error = writeError
                if self._session is not None and step.sessionUndo:
                    self._session.undo()  # the session took the step; the segment did not
        if error is None:
            return True
        self.lastError = error
        self._points.show(self._committed)
        if self.errorCallback is not None:
            self.errorCallback(error)
        elif isinstance(error, SegAnyPETError) or type(error).__name__ == "Cancelled":
            logger.error("SegAnyPET: %s", error)
        else:
            logger.error("SegAnyPET prediction failed", exc_info=(type(error), error, error.__traceback__))
        return False

    def _commit(self, step: _Step, mask: np.ndarray) -> None:
        """Write the step's mask (only the voxels that differ from the last write) and its prompts."""
        self._requireTarget()
        written = time.perf_counter()
        data = {
            "version": PROMPTS_VERSION,
            "model": self.modelName,
            "points": [{"ras": [float(v) for v in ras], "label": int(label)} for ras, label in step.prompts],
            "lesion": self.lesion,
        }
        tags = {PROMPTS_TAG: json.dumps(data)}
        box = self._changedBox(step, mask)
        shownBefore = None if self._shown is None or box is None else self._shown[box].copy()
        edit = self._writeSegment(mask, box, tags)
        self._shown, self._shownIsSession = mask, step.sessionUndo
        self._history.append(_Done(edit, box, shownBefore, step.sessionUndo))
        self._committed = list(step.prompts)
        self.predictions += 1
        now = time.perf_counter()
        self.timing = dict(self._session.timing) if step.kind != "clear" else {}
        self.warnings = list(self._session.warnings) if step.kind != "clear" else []
        self.timing["write_ms"] = 1000 * (now - written)
        self.timing["latency_ms"] = 1000 * (now - step.started)
        if self.updateCallback is not None:
            self.updateCallback(self.timing)

    def _changedBox(self, step: _Step, mask: np.ndarray) -> Optional[Box]:
        """The box of the volume grid where ``mask`` differs from what the segment shows (None: nowhere).

        The session's ``last_update`` says where its last click may have changed the mask; it is used
        for a click when the segment shows the session's previous mask, else the whole masks are
        compared (a replay or reset starts from an empty object, whose ``last_update`` leaves out
        the previous region).
        """
        if step.kind != "add" or not step.sessionUndo or self._shown is None or not self._shownIsSession:
            return changedBox(self._shown, mask)
        update = self._session.last_update
        if update is None:
            return None
        inner = changedBox(self._shown[update.box], update.mask)
        return None if inner is None else tuple(slice(o.start + i.start, o.start + i.stop) for o, i in zip(update.box, inner))

    def _writeSegment(self, mask: np.ndarray, box: Optional[Box], tags: Dict[str, str]) -> SegmentEdit:
        """Set the target segment to ``mask`` (volume grid) inside ``box`` (None: nothing changed, tags only)."""
        if box is None:
            return self.writer.setTags(self._segmentationNode, self._segmentId, tags)
        full = all(s.start == 0 and s.stop == n for s, n in zip(box, mask.shape))
        return self.writer.write(self._segmentationNode, self._segmentId, self._volumeNode,
                                 mask if full else mask[box], None if full else box, tags)

    def _requireIdle(self) -> None:
        if self._busy:
            raise SegAnyPETError("a prediction is running; wait for it or cancel it")

    def _dropSession(self) -> None:
        """The session no longer matches the model or image: it is rebuilt at the next step."""
        self._session = None
        self._imageStale = True
        for done in self._history:
            done.sessionUndo = False
