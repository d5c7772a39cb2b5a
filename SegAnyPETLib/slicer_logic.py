"""SegAnyPET on Slicer's MRML nodes: clicks in two markups lists segment one segment.

:class:`SegAnyPETLogic` is a thin layer over :class:`~SegAnyPETLib.session.InteractiveSession`.
It observes a positive and a negative markups point list and records the order in which points are
placed, at once, even while a prediction runs. Whenever a point is placed, moved (when the drag
ends) or removed, it brings the segment in line with the points, one step at a time in click
order: a new point is one click (the prompt encoder and the mask decoder over the cached image
embeddings), any other change replays all points. A step that needs the image encoder goes to
``runner`` (a thread, in the module); a decoder-only step runs at once on the calling thread.

The result goes into the target segment through :class:`~SegAnyPETLib.slicer_segment_writer.SegmentWriter`:
other segments change only as :meth:`SegAnyPETLogic.setOverwriteMode` says (default: never),
the Segment Editor's masking applies. Each step is undoable: Undo puts back every segment the step
changed and the points stored with the segment in the tag :data:`PROMPTS_TAG` (JSON: RAS points,
labels, the model, lesion mode), so a saved scene can be resumed.

Imports only ``slicer`` MRML classes, ``vtk``, numpy and SegAnyPETLib (never qt or ctk): tests and
batch scripts run it on the ``slicer-core`` wheel (:mod:`SegAnyPETLib.slicer_headless`). It needs
Slicer 5.10 or later (``vtkSlicerSegmentEditorLogic``).
"""
from __future__ import annotations

import json
import logging
from typing import Any, List, Optional, Tuple

import slicer
import vtk

from .errors import SegAnyPETError
from .slicer_nodes import (  # noqa: F401  (the public names of this module since 0.1)
    LPS_FROM_RAS,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    PROMPTS_TAG,
    PROMPTS_VERSION,
    Prompt,
    addPromptNodes,
    addSegment,
    addVolumeFromImage,
    segmentLabelValue,
    volumeIjkToRas,
    volumeProblem,
    volumeSuvFactor,
)
from .slicer_prompts import PromptLists
from .slicer_segment_writer import OVERWRITE_DESCRIPTIONS, OVERWRITE_MODES  # noqa: F401
from .slicer_steps import Runner, SessionSteps, samePoints  # noqa: F401
from . import slicer_statistics

logger = logging.getLogger(__name__)


def __getattr__(name: str):
    if name == "MRMLSegmenter":  # lazy: the batch segmenter imports the evaluation protocol
        from .slicer_batch import MRMLSegmenter

        return MRMLSegmenter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SegAnyPETLogic(SessionSteps):
    """Click-to-segment on MRML nodes; see the module docstring.

    Args:
        model: registry name (``"demo"``, ``"seganypet-v2"`` ...), checkpoint path, ``hf://...``, or
            a loaded :class:`~SegAnyPETLib.model.Sam3D`. Loaded on first use.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        preset: the session's inference preset (:data:`SegAnyPETLib.inference.config.PRESETS`);
            default: the model's own.
        lesion: the segment is a lesion (its preset's ``lesion_refiners`` make the mask).
        overwriteMode: what a click does to other segments (:data:`OVERWRITE_MODES`; default
            ``"none"``: nothing).
        **overrides: single inference options on top of the preset (``mirror=True`` ...); both are
            checked now and changed later with :meth:`setOptions`, the one way to set options.

    Attributes set by a user interface (all optional):
        runner: ``runner(work, done)`` runs ``work()`` (model only, no MRML access) elsewhere, e.g. in
            a thread, and later calls ``done(result, error)`` on the main thread. Used only for steps
            that run the image encoder; without it all work runs at once (tests, batch mode).
        progressCallback: ``callback(fraction, text)`` while the image encoder runs (any thread).
        updateCallback: ``callback(timing)`` after the segment was written; ``warnings`` then holds
            the session's warnings about that step (a positive point the mask leaves out).
        errorCallback: ``callback(error)`` when a prediction failed or was cancelled; the points
            placed since the last result are removed again. Without it the error is logged; see
            ``lastError``.
    """

    def __init__(self, model: Any = "demo", device: str = "cpu", preset: Optional[str] = None, lesion: bool = False,
                 overwriteMode: str = "none", **overrides: Any) -> None:
        SessionSteps.__init__(self, model, device, preset, lesion, overwriteMode, overrides)
        self._volumeNode = None
        self._segmentationNode = None
        self._segmentId: Optional[str] = None
        self._points = PromptLists(self.update)
        self._committed: List[Prompt] = []  # the prompts the segment shows now
        self._volumeObservation: Optional[Tuple[Any, int]] = None

    @property
    def overwriteMode(self) -> str:
        """What a click does to other segments: ``"none"`` (default), ``"visible"`` or ``"all"``."""
        return self.writer.overwriteMode

    def setOverwriteMode(self, mode: str) -> None:
        """Let clicks remove the segment's voxels from no other segment, the visible ones, or all (next click on)."""
        self._requireIdle()
        self.writer.setOverwriteMode(mode)

    def describeWriting(self) -> str:
        """What the next click does to other segments and where it may write, in words."""
        return f"{OVERWRITE_DESCRIPTIONS[self.overwriteMode]} {self.writer.maskingDescription()}"

    def setSegmentEditorNode(self, segmentEditorNode) -> None:
        """Take the masking settings from this node instead of the Segment Editor's (None: the editor's)."""
        self.writer.settingsNode = segmentEditorNode

    def setInputVolume(self, volumeNode) -> None:
        """The PET volume the clicks segment (any scalar volume; SUV or activity, the model normalises).

        A volume without image data yet is accepted (clicks say what is missing until it has some),
        so a volume selector and the logic never disagree.
        """
        self._requireIdle()
        if volumeNode is self._volumeNode:
            return
        if self._volumeObservation is not None:
            self._volumeObservation[0].RemoveObserver(self._volumeObservation[1])
            self._volumeObservation = None
        self._volumeNode = volumeNode
        self._dropSession()
        self._shown, self._shownIsSession = None, False
        if volumeNode is not None:
            tag = volumeNode.AddObserver(slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent, self._onImageModified)
            self._volumeObservation = (volumeNode, tag)

    def setTargetSegment(self, segmentationNode, segmentId: Optional[str]) -> None:
        """The segment that receives the result; its stored prompts (if any) are shown again, and
        lesion mode is set as it was when they were made."""
        self._requireIdle()
        if segmentationNode is not None and segmentId and segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
            raise SegAnyPETError(f"segmentation {segmentationNode.GetName()} has no segment {segmentId!r}")
        if segmentationNode is self._segmentationNode and (segmentId or None) == self._segmentId:
            return
        self._segmentationNode = segmentationNode if segmentId else None
        self._segmentId = segmentId or None
        stored = self._storedTag()
        if "lesion" in stored:  # a segment made in lesion mode goes on in it, and one made without without
            try:
                self.setLesion(bool(stored["lesion"]))
            except SegAnyPETError as error:
                logger.warning("segment %s: %s", self._segmentId, error)
        self._startObject(self.storedPrompts())

    def setPromptNodes(self, positiveNode, negativeNode) -> None:
        """Observe two markups point lists: from now on every point placed, moved or removed re-predicts."""
        self._requireIdle()
        self._points.setNodes(positiveNode, negativeNode)
        self._startObject(self.storedPrompts())

    def cleanup(self) -> None:
        """Stop observing the nodes (call before discarding the logic)."""
        self._points.cleanup()
        if self._volumeObservation is not None:
            self._volumeObservation[0].RemoveObserver(self._volumeObservation[1])
            self._volumeObservation = None
        self.writer.cleanup()

    # ------------------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        """A prediction runs (through ``runner``); other calls must wait."""
        return self._busy

    @property
    def inputVolume(self):
        return self._volumeNode

    @property
    def targetSegmentation(self):
        return self._segmentationNode

    @property
    def targetSegmentId(self) -> Optional[str]:
        return self._segmentId

    @property
    def canUndo(self) -> bool:
        return bool(self._history) and not self._busy

    @property
    def prompts(self) -> List[Prompt]:
        """The points the target segment shows now (world RAS, label)."""
        return list(self._committed)

    def clickProblem(self) -> Optional[str]:
        """Why a click cannot be segmented now (no volume, volume without data, no target...), or None."""
        try:
            self._requireTarget()
        except SegAnyPETError as error:
            return str(error)
        return None

    def storedPrompts(self) -> List[Prompt]:
        """The prompts saved with the target segment (empty if none)."""
        data = self._storedTag()
        try:
            prompts = [(tuple(float(v) for v in p["ras"]), int(p["label"])) for p in data["points"]]
        except (ValueError, KeyError, TypeError) as error:
            if data:
                logger.warning("ignoring unreadable %s tag of segment %s: %s", PROMPTS_TAG, self._segmentId, error)
            return []
        if data.get("model") and data["model"] != self.modelName:
            logger.warning("segment %s was made with model %s; continuing with %s", self._segmentId, data["model"], self.modelName)
        return prompts

    def _storedTag(self) -> dict:
        """The target segment's :data:`PROMPTS_TAG` as a dict (empty if none or unreadable)."""
        segment = self._segment()
        value = vtk.reference("")
        if segment is None or not segment.GetTag(PROMPTS_TAG, value) or not str(value):
            return {}
        try:
            data = json.loads(str(value))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            logger.warning("ignoring unreadable %s tag of segment %s", PROMPTS_TAG, self._segmentId)
            return {}
        return data

    # ------------------------------------------------------------------------------ actions
    def update(self) -> None:
        """Bring the segment in line with the points in the lists, one step at a time in click order
        (called by the point observers). While a step runs in ``runner`` the points wait."""
        if self._points.muted or self._segmentId is None:
            return
        while not self._busy:
            desired = self._points.placed()
            if samePoints(desired, self._committed):
                return  # e.g. a point was selected, or a preview point follows the mouse
            self.lastError = None
            try:
                self._requireTarget()
                step = self._plan(desired)
            except Exception as error:  # reported like a failed prediction: the new points go away
                self._finish(None, None, error)
                return
            if not self._start(step):
                return

    def undo(self) -> None:
        """Take back the last step: every segment it changed, and the points (lists and stored tag)."""
        self._requireIdle()
        if not self._history:
            return
        done = self._history[-1]
        self.writer.undo(done.edit)  # a clear error (and the step kept) if a segment it changed was deleted
        self._history.pop()
        if done.sessionUndo and self._session is not None:
            self._session.undo()
        if done.box is None:
            self._shownIsSession = self._shownIsSession and done.sessionUndo
        elif self._shown is not None and done.shownBefore is not None:
            self._shown[done.box] = done.shownBefore
            self._shownIsSession = self._shownIsSession and done.sessionUndo
        else:
            self._shown, self._shownIsSession = None, False
        self._committed = self.storedPrompts()
        self._points.show(self._committed)

    def reset(self) -> None:
        """Remove every point of the target segment and empty it (undoable)."""
        self._requireIdle()
        self._requireTarget()
        self._points.show([])
        self.update()

    def finish(self) -> None:
        """Accept the segment: the points leave the views (they stay stored with the segment)."""
        self._requireIdle()
        self._segmentationNode, self._segmentId = None, None
        self._startObject([])

    def cancel(self) -> None:
        """Stop a running image encoder (from the main thread while ``runner`` runs the work)."""
        if self._session is not None:
            self._session.cancel()

    # ------------------------------------------------------------------------------ statistics
    def exportStatistics(self, segmentationNode, volumeNode, csvPath: Optional[str] = None,
                         suvFactor: Optional[float] = None, overwrite: bool = False, tableNode=None):
        """See :func:`SegAnyPETLib.slicer_statistics.exportStatistics`."""
        return slicer_statistics.exportStatistics(segmentationNode, volumeNode, csvPath, suvFactor, overwrite, tableNode)

    @staticmethod
    def suvFactorFor(volumeNode, suvFactor: Optional[float] = None) -> Tuple[float, str]:
        """See :func:`SegAnyPETLib.slicer_statistics.suvFactorFor`."""
        return slicer_statistics.suvFactorFor(volumeNode, suvFactor)

    # ------------------------------------------------------------------------------ internals
    def _requireTarget(self) -> None:
        problem = volumeProblem(self._volumeNode)
        if problem:
            raise SegAnyPETError(problem)
        if self._segmentationNode is None or self._segmentId is None:
            raise SegAnyPETError("choose the target segment first")
        if self._segmentationNode.GetScene() is None or self._segment() is None:
            raise SegAnyPETError("the target segment was deleted; add a segment or choose another one")
        if self._segmentationNode.GetParentTransformNode() is not self._volumeNode.GetParentTransformNode():
            raise SegAnyPETError("the segmentation and the PET volume must be under the same transform")

    def _segment(self):
        if self._segmentationNode is None or self._segmentId is None:
            return None
        return self._segmentationNode.GetSegmentation().GetSegment(self._segmentId)

    def _onImageModified(self, caller, event) -> None:
        self._imageStale = True
        self._shown, self._shownIsSession = None, False
        for done in self._history:
            done.sessionUndo = False

    def _startObject(self, prompts: List[Prompt]) -> None:
        """A new target: forget the session's object, show ``prompts`` (the segment's stored points)."""
        if self._session is not None:
            self._session.new_object()
        self._history = []
        self._shown, self._shownIsSession = None, False
        self._committed = list(prompts)
        self._points.show(self._committed)
