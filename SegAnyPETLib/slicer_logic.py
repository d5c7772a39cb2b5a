"""SegAnyPET on Slicer's MRML nodes: clicks in two markups lists segment one segment.

:class:`SegAnyPETLogic` is a thin layer over :class:`~SegAnyPETLib.session.InteractiveSession`.
It observes a positive and a negative markups point list; whenever a point is placed, moved
(when the drag ends), or removed, it compares the points with the session's and predicts again:
new points at the end are added as clicks (only the prompt encoder and the mask decoder run),
any other change replays all points over the cached image embeddings.

The result goes into the target segment only, through Slicer's own segment editor logic, so the
segment editor's "modify other segments" (overwrite) and masking settings apply exactly as they
do for the editor's effects: they are read from the Segment Editor's parameter node (or one
given to :meth:`SegAnyPETLogic.setSegmentEditorNode`); other segments change only where the
overwrite mode says so. The points are stored with the segment in the tag :data:`PROMPTS_TAG`
(JSON: RAS points, labels, the model and whether lesion mode was on) so a saved scene can be
resumed.

The logic imports only ``slicer`` MRML classes, ``vtk``, numpy and SegAnyPETLib (never qt or
ctk), so tests and batch scripts run it on the ``slicer-core`` wheel (see
:mod:`SegAnyPETLib.slicer_headless`). It needs Slicer 5.10 or later (``vtkSlicerSegmentEditorLogic``).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .errors import SegAnyPETError
from .labels import LABELS, color_of, display_name

logger = logging.getLogger(__name__)

PROMPTS_TAG = "SegAnyPET.prompts"
PROMPTS_VERSION = 1
LPS_FROM_RAS = np.array([-1.0, -1.0, 1.0])
POSITIVE_COLOR = (0.2, 0.85, 0.2)
NEGATIVE_COLOR = (0.95, 0.2, 0.2)
Prompt = Tuple[Tuple[float, float, float], int]  # (world RAS mm, label 1 positive / 0 negative)
Runner = Callable[[Callable[[], Any], Callable[[Any, Optional[BaseException]], None]], None]


# ----------------------------------------------------------------------------------------- helpers
def addPromptNodes(name: str = "SegAnyPET") -> Tuple[Any, Any]:
    """Two point lists for positive (green) and negative (red) clicks, not saved with the scene.

    The prompts are saved with the segment (segment tags), so the lists are recreated on resume.
    """
    nodes = []
    for role, color in (("positive", POSITIVE_COLOR), ("negative", NEGATIVE_COLOR)):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{name} {role}")
        node.SetSaveWithScene(False)
        node.SetMarkupLabelFormat("")
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetSelectedColor(*color)
            display.SetColor(*color)
            display.SetActiveColor(*color)
            display.SetPointLabelsVisibility(False)
        nodes.append(node)
    return nodes[0], nodes[1]


def addSegment(segmentationNode, name: str) -> str:
    """Add an empty segment named after a SegAnyPET target (``"kidney_left"``) or free text; returns its ID.

    Known targets get their display name ("kidney left") and standard colour.
    """
    name = name.strip()
    if not name:
        raise SegAnyPETError("a new segment needs a name")
    key = name.replace(" ", "_")
    title = display_name(key) if key in LABELS else name
    color = [c / 255.0 for c in color_of(key)]
    return segmentationNode.GetSegmentation().AddEmptySegment("", title, color)


def segmentLabelValue(name: str) -> Optional[int]:
    """The SegAnyPET label value of a segment named like a target ("kidney left" or "kidney_left")."""
    return LABELS.get(name.strip().replace(" ", "_"))


def volumeSuvFactor(volumeNode) -> Optional[float]:
    """1.0 when the voxels are already SUVs per Slicer's PET DICOM import, else None (unknown).

    The PET DICOM extension's real-world value mapping plugin multiplies the voxels by the RWVM
    slope and records the quantity and units (UCUM ``{SUVbw}g/ml`` ...) on the volume node.
    """
    for entry in (volumeNode.GetVoxelValueUnits(), volumeNode.GetVoxelValueQuantity()):
        if entry is None:
            continue
        text = f"{entry.GetCodeValue() or ''} {entry.GetCodeMeaning() or ''}".lower()
        if "suv" in text or "standardized uptake" in text:
            return 1.0
    return None


def addVolumeFromImage(image, name: str = "PET"):
    """A scalar volume node holding a SimpleITK image (LPS geometry converted to Slicer's RAS)."""
    import SimpleITK as sitk

    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = np.diag(LPS_FROM_RAS) @ direction @ np.diag(image.GetSpacing())
    ijk_to_ras[:3, 3] = LPS_FROM_RAS * np.asarray(image.GetOrigin(), dtype=float)
    return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), ijkToRAS=ijk_to_ras, name=name)


def volumeIjkToRas(volumeNode) -> np.ndarray:
    """The volume's IJK-to-RAS matrix as a 4 x 4 array (voxel (i, j, k) centre -> RAS mm)."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def _labelmap(mask: np.ndarray, ijkToRas: np.ndarray):
    """A binary vtkOrientedImageData (unsigned char) holding a (z, y, x) mask on a volume's grid."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    image.SetGeometryFromImageToWorldMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = (np.asarray(mask) > 0).ravel()
    return image


def _as_arrays(prompts: Sequence[Prompt]) -> List[Tuple[np.ndarray, int]]:
    return [(np.asarray(ras, dtype=float), label) for ras, label in prompts]


def _same_points(a: Sequence[Tuple[np.ndarray, int]], b: Sequence[Tuple[np.ndarray, int]]) -> bool:
    return len(a) == len(b) and all(la == lb and np.allclose(pa, pb, atol=1e-4) for (pa, la), (pb, lb) in zip(a, b))


# ----------------------------------------------------------------------------------------- logic
class SegAnyPETLogic:
    """Click-to-segment on MRML nodes; see the module docstring.

    Args:
        model: registry name (``"demo"``, ``"seganypet-v2"`` ...), checkpoint path, ``hf://...``, or
            a loaded :class:`~SegAnyPETLib.model.Sam3D`. Loaded on first use.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        maxCrops: most crops per object (large organs grow across crops).
        mirror: test-time mirroring (see :class:`~SegAnyPETLib.session.InteractiveSession`).
        clickedIslandsOnly: keep only the parts of a mask that a positive point touches (see
            :class:`~SegAnyPETLib.session.InteractiveSession`).
        interiorCrop: a segment's first point also adds a crop centred inside its first mask (see
            :class:`~SegAnyPETLib.session.InteractiveSession`).
        partCheck: parts of a segment's first mask that, clicked alone, give another object are left
            out (see :class:`~SegAnyPETLib.session.InteractiveSession`).
        contrastEdge: the mask's edge moves to the PET contrast (see
            :class:`~SegAnyPETLib.session.InteractiveSession`).
        lesion: the segment is a lesion: the focal uptake at each positive point (see
            :class:`~SegAnyPETLib.session.InteractiveSession`).

    Attributes set by a user interface (all optional):
        runner: ``runner(work, done)`` runs ``work()`` (model only, no MRML access) elsewhere, e.g. in
            a thread, and later calls ``done(result, error)`` on the main thread. Without it the
            work runs at once (tests, batch mode).
        progressCallback: ``callback(fraction, text)`` while the image encoder runs (any thread).
        updateCallback: ``callback(timing)`` after the segment was written.
        errorCallback: ``callback(error)`` when a prediction failed or was cancelled; the point
            that caused it is removed again. Without it the error is logged; see ``lastError``.
    """

    def __init__(self, model: Any = "demo", device: str = "cpu", maxCrops: int = 6, mirror: bool = False,
                 clickedIslandsOnly: bool = True, interiorCrop: bool = True, partCheck: bool = True,
                 contrastEdge: bool = True, lesion: bool = False) -> None:
        self.modelSource = model
        self.device = device
        self.maxCrops = maxCrops
        self.mirror = mirror
        self.clickedIslandsOnly = clickedIslandsOnly
        self.interiorCrop = interiorCrop
        self.partCheck = partCheck
        self.contrastEdge = contrastEdge
        self.lesion = lesion
        self.runner: Optional[Runner] = None
        self.progressCallback: Optional[Callable[[float, str], None]] = None
        self.updateCallback: Optional[Callable[[Dict[str, float]], None]] = None
        self.errorCallback: Optional[Callable[[BaseException], None]] = None
        self.lastError: Optional[BaseException] = None
        self.timing: Dict[str, float] = {}
        self._model = None
        self._session = None
        self._volumeNode = None
        self._imageStale = True
        self._segmentationNode = None
        self._segmentId: Optional[str] = None
        self._promptNodes: Tuple[Any, Any] = (None, None)
        self._order: List[Tuple[int, str]] = []  # (role 1/0, control point ID) in click order
        self._committed: List[Prompt] = []  # the prompts the segment shows now
        self._undoDepth = 0
        self._busy = False
        self._pending = False
        self._muted = False
        self._interacting: set = set()
        self._observations: List[Tuple[Any, int]] = []
        self._volumeObservation: Optional[Tuple[Any, int]] = None
        self._userEditorNode = None
        self._editorNode = None
        self._editorLogic = None

    # ------------------------------------------------------------------------------ set-up
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
        self.modelSource = model
        if device is not None:
            self.device = device
        self._model = None
        self._session = None
        self._imageStale = True
        self._undoDepth = 0

    def setMirror(self, mirror: bool) -> None:
        """Turn test-time mirroring on or off; it applies from the next click."""
        self._requireIdle()
        self.mirror = bool(mirror)
        if self._session is not None:
            self._session.mirror = self.mirror

    def setClickedIslandsOnly(self, clickedOnly: bool) -> None:
        """Keep only the mask's parts that a positive point touches, or every part; from the next click."""
        self._requireIdle()
        self.clickedIslandsOnly = bool(clickedOnly)
        if self._session is not None:
            self._session.clicked_islands_only = self.clickedIslandsOnly

    def setInteriorCrop(self, interiorCrop: bool) -> None:
        """Add a crop centred inside a segment's first mask, or not; from the next segment's first point."""
        self._requireIdle()
        self.interiorCrop = bool(interiorCrop)
        if self._session is not None:
            self._session.interior_crop = self.interiorCrop

    def setPartCheck(self, partCheck: bool) -> None:
        """Leave out the parts of a segment's first mask that are another object, or not; from the next segment's first point."""
        self._requireIdle()
        self.partCheck = bool(partCheck)
        if self._session is not None:
            self._session.part_check = self.partCheck

    def setContrastEdge(self, contrastEdge: bool) -> None:
        """Move the mask's edge to the PET contrast, or keep the network's; from the next click."""
        self._requireIdle()
        self.contrastEdge = bool(contrastEdge)
        if self._session is not None:
            self._session.contrast_edge = self.contrastEdge

    def setLesion(self, lesion: bool) -> None:
        """Segment a lesion (the focal uptake at each positive point) or any object; from the next point."""
        self._requireIdle()
        self.lesion = bool(lesion)
        if self._session is not None:
            self._session.lesion = self.lesion

    def setInputVolume(self, volumeNode) -> None:
        """The PET volume the clicks segment (any scalar volume; SUV or activity, the model normalises)."""
        self._requireIdle()
        if volumeNode is not None and (volumeNode.GetImageData() is None or volumeNode.GetImageData().GetNumberOfScalarComponents() != 1):
            raise SegAnyPETError(f"volume {volumeNode.GetName()} has no single-component image data")
        if self._volumeObservation is not None:
            self._volumeObservation[0].RemoveObserver(self._volumeObservation[1])
            self._volumeObservation = None
        self._volumeNode = volumeNode
        self._imageStale = True
        self._undoDepth = 0
        if volumeNode is not None:
            tag = volumeNode.AddObserver(slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent, self._onImageModified)
            self._volumeObservation = (volumeNode, tag)

    def setTargetSegment(self, segmentationNode, segmentId: Optional[str]) -> None:
        """The segment that receives the result; its stored prompts (if any) are shown again, and
        lesion mode is set as it was when they were made."""
        self._requireIdle()
        if segmentationNode is not None and segmentId and segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
            raise SegAnyPETError(f"segmentation {segmentationNode.GetName()} has no segment {segmentId!r}")
        if segmentationNode is self._segmentationNode and segmentId == self._segmentId:
            return
        self._segmentationNode = segmentationNode
        self._segmentId = segmentId or None
        stored = self._storedTag()
        if "lesion" in stored:  # a segment made in lesion mode goes on in it, and one made without without
            self.setLesion(bool(stored["lesion"]))
        self._startObject(self.storedPrompts())

    def setPromptNodes(self, positiveNode, negativeNode) -> None:
        """Observe two markups point lists: from now on every point placed, moved or removed re-predicts."""
        self._requireIdle()
        for node, tag in self._observations:
            node.RemoveObserver(tag)
        self._observations = []
        self._promptNodes = (positiveNode, negativeNode)
        events = (
            slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
            slicer.vtkMRMLMarkupsNode.PointModifiedEvent,
            slicer.vtkMRMLMarkupsNode.PointRemovedEvent,
            slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent,
            slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
        )
        for node in (positiveNode, negativeNode):
            for event in events if node is not None else ():
                # VTK passes custom MRML events to Python as "NoEvent": bind the event to each callback
                callback = lambda caller, name, event=event: self._onPointsEvent(caller, event)
                self._observations.append((node, node.AddObserver(event, callback)))
        self._startObject(self.storedPrompts())

    def setSegmentEditorNode(self, segmentEditorNode) -> None:
        """Take the overwrite and masking settings from this node instead of the Segment Editor's."""
        self._userEditorNode = segmentEditorNode

    def cleanup(self) -> None:
        """Stop observing the nodes (call before discarding the logic)."""
        for node, tag in self._observations:
            node.RemoveObserver(tag)
        self._observations = []
        if self._volumeObservation is not None:
            self._volumeObservation[0].RemoveObserver(self._volumeObservation[1])
            self._volumeObservation = None
        if self._editorNode is not None and self._editorNode.GetScene() is not None:
            self._editorNode.GetScene().RemoveNode(self._editorNode)
        self._editorNode = self._editorLogic = None

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
        return self._undoDepth > 0 and not self._busy

    @property
    def prompts(self) -> List[Prompt]:
        """The points the target segment shows now (world RAS, label)."""
        return list(self._committed)

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
        """Bring the segment in line with the points in the lists (called by the point observers)."""
        if self._muted or self._segmentId is None:
            return
        if self._busy:
            self._pending = True
            return
        desired = self._desiredPrompts()
        if _same_points(_as_arrays(desired), _as_arrays(self._committed)):
            return  # e.g. a point was selected, or a preview point follows the mouse
        self.lastError = None
        try:
            self._requireTarget()
            work = self._plan(desired)
        except Exception as error:  # reported like a failed prediction: the new point goes away
            self._done(None, error, time.perf_counter())
            return
        self._run(work)

    def undo(self) -> None:
        """Take back the last change of the points (the segment and the point lists follow)."""
        self._requireIdle()
        if not self.canUndo:
            return
        mask = self._session.undo()
        self._undoDepth -= 1
        self._commit(mask, self._sessionPrompts(), showPoints=True)

    def reset(self) -> None:
        """Remove every point of the target segment and empty it (undoable)."""
        self._requireIdle()
        self._requireTarget()
        self._run(self._counted(lambda: self._session.reset()))

    def finish(self) -> None:
        """Accept the segment: the points leave the views (they stay stored with the segment)."""
        self._requireIdle()
        self._segmentId = None
        self._startObject([])

    def cancel(self) -> None:
        """Stop a running image encoder (from the main thread while ``runner`` runs the work)."""
        if self._session is not None:
            self._session.cancel()

    # ------------------------------------------------------------------------------ statistics
    def exportStatistics(
        self,
        segmentationNode,
        volumeNode,
        csvPath: Optional[str] = None,
        suvFactor: Optional[float] = None,
        overwrite: bool = False,
        tableNode=None,
    ):
        """SUV statistics of every segment as a ``vtkMRMLTableNode`` (and a CSV file when ``csvPath``).

        Columns are those of ``seganypet stats`` (:data:`SegAnyPETLib.stats.COLUMNS`: ``segment``,
        ``volume [mL]``, ``SUVmax [g/mL]``, ``SUVmean [g/mL]``, ``SUVpeak [g/mL]`` ...). The voxels
        are multiplied by ``suvFactor``; without it, 1.0 (the voxels are SUVs, as after Slicer's
        PET DICOM import with real-world value mapping, :func:`volumeSuvFactor`).
        """
        from .stats import COLUMNS, geometry_from_ijk_to_ras, segment_statistics, write_statistics_csv

        factor, source = self.suvFactorFor(volumeNode, suvFactor)
        segmentation = segmentationNode.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        if not ids:
            raise SegAnyPETError(f"segmentation {segmentationNode.GetName()} has no segments")
        names = [segmentation.GetSegment(i).GetName() for i in ids]
        if len(set(names)) != len(names):
            raise SegAnyPETError(f"segmentation {segmentationNode.GetName()} has several segments with the same name; rename them")
        masks = {name: slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, i, volumeNode) for i, name in zip(ids, names)}
        labels = {name: value for name in names if (value := segmentLabelValue(name)) is not None}
        spacing, origin, direction = geometry_from_ijk_to_ras(volumeIjkToRas(volumeNode))
        rows = segment_statistics(slicer.util.arrayFromVolume(volumeNode), masks, spacing, origin, direction, factor, labels)
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"{segmentationNode.GetName()} SUV statistics")
        table = tableNode.GetTable()
        table.Initialize()
        values = [row.as_row() for row in rows]
        for column in COLUMNS:
            cells = [v[column] for v in values]
            if column in ("segment", "SUVpeak definition"):
                array = vtk.vtkStringArray()
                for cell in cells:
                    array.InsertNextValue("" if cell is None else str(cell))
            else:
                array = vtk.vtkDoubleArray()
                for cell in cells:
                    array.InsertNextValue(np.nan if cell is None else float(cell))
            array.SetName(column)
            table.AddColumn(array)
        tableNode.SetUseColumnNameAsColumnHeader(True)
        tableNode.SetAttribute("SegAnyPET.suvFactor", repr(factor))
        tableNode.SetAttribute("SegAnyPET.suvFactorSource", source)
        tableNode.Modified()
        if csvPath:
            write_statistics_csv(rows, csvPath, overwrite)
        return tableNode

    @staticmethod
    def suvFactorFor(volumeNode, suvFactor: Optional[float] = None) -> Tuple[float, str]:
        """The factor from voxels to SUV and where it came from (user, DICOM import, or assumed)."""
        if suvFactor is not None:
            if not np.isfinite(suvFactor) or suvFactor <= 0:
                raise SegAnyPETError(f"the SUV factor must be a positive number, got {suvFactor}")
            return float(suvFactor), "user"
        if volumeSuvFactor(volumeNode) is not None:
            return 1.0, "DICOM real-world value mapping"
        logger.info("volume %s has no SUV units: its voxels are taken as SUVs", volumeNode.GetName())
        return 1.0, "assumed (voxels are SUVs)"

    # ------------------------------------------------------------------------------ internals
    def _requireIdle(self) -> None:
        if self._busy:
            raise SegAnyPETError("a prediction is running; wait for it or cancel it")

    def _requireTarget(self) -> None:
        if self._volumeNode is None:
            raise SegAnyPETError("choose the input PET volume first")
        if self._segmentationNode is None or self._segmentId is None:
            raise SegAnyPETError("choose the target segment first")
        if self._segmentationNode.GetParentTransformNode() is not self._volumeNode.GetParentTransformNode():
            raise SegAnyPETError("the segmentation and the PET volume must be under the same transform")

    def _segment(self):
        if self._segmentationNode is None or self._segmentId is None:
            return None
        return self._segmentationNode.GetSegmentation().GetSegment(self._segmentId)

    def _onImageModified(self, caller, event) -> None:
        self._imageStale = True
        self._undoDepth = 0

    def _onPointsEvent(self, caller, event: int) -> None:
        key = caller.GetID()
        if event == slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent:
            self._interacting.add(key)
            return
        if event == slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent:
            self._interacting.discard(key)
        elif event == slicer.vtkMRMLMarkupsNode.PointModifiedEvent and key in self._interacting:
            return  # the point is being dragged: predict when it is dropped
        self.update()

    def _startObject(self, prompts: List[Prompt]) -> None:
        """A new target: forget the session's object, show ``prompts`` (the segment's stored points)."""
        if self._session is not None:
            self._session.new_object()
        self._undoDepth = 0
        self._committed = list(prompts)
        self._setPoints(self._committed)

    def _setPoints(self, prompts: Sequence[Prompt]) -> None:
        """Write the point lists without triggering predictions."""
        positive, negative = self._promptNodes
        if positive is None or negative is None:
            return
        self._muted = True
        try:
            self._order = []
            for node in (positive, negative):
                node.RemoveAllControlPoints()
            for ras, label in prompts:
                node = positive if label else negative
                index = node.AddControlPointWorld(vtk.vtkVector3d(*ras))
                self._order.append((label, node.GetNthControlPointID(index)))
        finally:
            self._muted = False

    def _desiredPrompts(self) -> List[Prompt]:
        """The placed points of both lists, in the order they were clicked."""
        present: Dict[Tuple[int, str], Prompt] = {}
        for label, node in zip((1, 0), self._promptNodes):
            if node is None:
                continue
            for i in range(node.GetNumberOfControlPoints()):
                if node.GetNthControlPointPositionStatus(i) == slicer.vtkMRMLMarkupsNode.PositionDefined:
                    present[(label, node.GetNthControlPointID(i))] = (tuple(node.GetNthControlPointPositionWorld(i)), label)
        self._order = [key for key in self._order if key in present] + [key for key in present if key not in self._order]
        return [present[key] for key in self._order]

    def _worldToVolume(self) -> np.ndarray:
        matrix = vtk.vtkMatrix4x4()
        if not slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(None, self._volumeNode.GetParentTransformNode(), matrix):
            raise SegAnyPETError(f"volume {self._volumeNode.GetName()} is under a non-linear transform; harden it first")
        return slicer.util.arrayFromVTKMatrix(matrix)

    def _toLps(self, worldRas: Sequence[float]) -> np.ndarray:
        local = self._worldToVolume() @ np.append(np.asarray(worldRas, dtype=float), 1.0)
        return local[:3] * LPS_FROM_RAS

    def _toWorld(self, lps: Sequence[float]) -> Tuple[float, float, float]:
        local = np.append(np.asarray(lps, dtype=float) * LPS_FROM_RAS, 1.0)
        return tuple(float(v) for v in (np.linalg.inv(self._worldToVolume()) @ local)[:3])

    def _plan(self, desired: List[Prompt]) -> Callable[[], np.ndarray]:
        """The session work that brings its points to ``desired`` (runs without touching MRML)."""
        points = [(self._toLps(ras), label) for ras, label in desired]
        actual = [] if self._session is None or self._imageStale else [(np.asarray(p), l) for p, l in self._session.points]
        if not points:
            return self._counted(lambda: self._session.reset())
        if len(points) > len(actual) and _same_points(points[: len(actual)], actual):
            new = points[len(actual):]

            def add() -> np.ndarray:
                for lps, label in new:
                    mask = self._session.add_click(lps, positive=bool(label), space="lps")
                    self._undoDepth += 1
                return mask

            return add
        return self._counted(lambda: self._session.set_points([p for p, _ in points], [l for _, l in points], space="lps"))

    def _counted(self, work: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
        """``work`` that leaves one undo step on success."""

        def counted() -> np.ndarray:
            mask = work()
            self._undoDepth += 1
            return mask

        return counted

    def _run(self, work: Callable[[], np.ndarray]) -> None:
        """Run ``work`` on the session (through ``runner`` if set), then write the result."""
        started = time.perf_counter()
        self.lastError = None
        try:
            prepare = self._prepareSession()
        except Exception as error:
            self._done(None, error, started)
            return

        def job() -> np.ndarray:
            prepare()
            return work()

        self._busy = True
        if self.runner is None:
            try:
                result = job()
            except Exception as error:  # reported through _done, like a background failure
                self._done(None, error, started)
            else:
                self._done(result, None, started)
        else:
            self.runner(job, lambda result, error: self._done(result, error, started))

    def _prepareSession(self) -> Callable[[], None]:
        """Read what the session needs from MRML now (main thread); the returned step creates/updates it."""
        from .stats import geometry_from_ijk_to_ras

        image = None
        if self._session is None or self._imageStale:
            array = slicer.util.arrayFromVolume(self._volumeNode).astype(np.float32, copy=True)
            image = (array,) + geometry_from_ijk_to_ras(volumeIjkToRas(self._volumeNode))

        def prepare() -> None:
            if self._session is None:
                from .session import InteractiveSession

                self._session = InteractiveSession(self.model, device=self.device, max_crops=self.maxCrops,
                                                   mirror=self.mirror, clicked_islands_only=self.clickedIslandsOnly,
                                                   interior_crop=self.interiorCrop, part_check=self.partCheck,
                                                   contrast_edge=self.contrastEdge, lesion=self.lesion,
                                                   progress=self._progress)
            if image is not None:
                self._session.set_image(image[0], spacing=image[1], origin=image[2], direction=image[3])
                self._imageStale = False
                self._undoDepth = 0

        return prepare

    def _progress(self, fraction: float, text: str) -> None:
        if self.progressCallback is not None:
            self.progressCallback(fraction, text)

    def _done(self, mask: Optional[np.ndarray], error: Optional[BaseException], started: float) -> None:
        """Main thread: write the result, or undo the points that caused the error."""
        self._busy = False
        if error is None:
            try:
                self._commit(mask, self._sessionPrompts(), started=started)
            except Exception as writeError:  # e.g. the segmentation was removed meanwhile
                error = writeError
        if error is not None:
            self.lastError = error
            self._setPoints(self._committed)
            if self.errorCallback is not None:
                self.errorCallback(error)
            elif isinstance(error, SegAnyPETError) or type(error).__name__ == "Cancelled":
                logger.error("SegAnyPET: %s", error)
            else:
                logger.error("SegAnyPET prediction failed", exc_info=(type(error), error, error.__traceback__))
        if self._pending:
            self._pending = False
            self.update()

    def _sessionPrompts(self) -> List[Prompt]:
        return [(self._toWorld(lps), label) for lps, label in self._session.points]

    def _commit(self, mask: np.ndarray, prompts: List[Prompt], started: Optional[float] = None, showPoints: bool = False) -> None:
        """Write ``mask`` into the target segment and store ``prompts`` with it (``showPoints``: in the lists too)."""
        written = time.perf_counter()
        self._writeSegment(mask)
        self._committed = list(prompts)
        self._storePrompts()
        if showPoints:
            self._setPoints(prompts)
        now = time.perf_counter()
        self.timing = dict(self._session.timing)
        self.timing["write_ms"] = 1000 * (now - written)
        if started is not None:
            self.timing["latency_ms"] = 1000 * (now - started)
        if self.updateCallback is not None:
            self.updateCallback(self.timing)

    def _storePrompts(self) -> None:
        segment = self._segment()
        data = {
            "version": PROMPTS_VERSION,
            "model": self.modelName,
            "points": [{"ras": list(ras), "label": label} for ras, label in self._committed],
            "lesion": self.lesion,
        }
        segment.SetTag(PROMPTS_TAG, json.dumps(data))

    # ------------------------------------------------------------------------------ writing
    def _settingsSource(self):
        if self._userEditorNode is not None:
            return self._userEditorNode
        return slicer.mrmlScene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode")

    def _segmentEditor(self):
        """Slicer's segment editor logic on a private parameter node mirroring the user's settings."""
        scene = slicer.mrmlScene
        if self._editorNode is None or self._editorNode.GetScene() is not scene:
            if not hasattr(slicer, "vtkSlicerSegmentEditorLogic"):
                raise SegAnyPETError("SegAnyPET needs Slicer 5.10 or later (vtkSlicerSegmentEditorLogic is missing)")
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetName("SegAnyPET segment editor")
            node.SetSaveWithScene(False)
            node.SetHideFromEditors(True)
            self._editorNode = scene.AddNode(node)
            self._editorLogic = slicer.vtkSlicerSegmentEditorLogic()
            self._editorLogic.SetMRMLScene(scene)
            appLogic = slicer.modules.segmentations.logic().GetMRMLApplicationLogic()
            if appLogic is not None:
                self._editorLogic.SetMRMLApplicationLogic(appLogic)
            self._editorLogic.SetSegmentEditorNode(self._editorNode)
        node = self._editorNode
        source = self._settingsSource()
        if source is not None:
            node.SetOverwriteMode(source.GetOverwriteMode())
            node.SetMaskMode(source.GetMaskMode())
            node.SetMaskSegmentID(source.GetMaskSegmentID())
            node.SetSourceVolumeIntensityMask(source.GetSourceVolumeIntensityMask())
            node.SetSourceVolumeIntensityMaskRange(*source.GetSourceVolumeIntensityMaskRange())
        node.SetAndObserveSegmentationNode(self._segmentationNode)
        node.SetAndObserveSourceVolumeNode(self._volumeNode)
        node.SetSelectedSegmentID(self._segmentId)
        return self._editorLogic

    def _writeSegment(self, mask: np.ndarray) -> None:
        """Set the target segment to ``mask`` (on the input volume's grid) as a segment editor effect does."""
        segmentationNode = self._segmentationNode
        segmentation = segmentationNode.GetSegmentation()
        converter = slicer.vtkSegmentationConverter
        if not segmentation.GetConversionParameter(converter.GetReferenceImageGeometryParameterName()):
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self._volumeNode)
        editor = self._segmentEditor()
        if segmentation.GetSourceRepresentationName() != converter.GetBinaryLabelmapRepresentationName():
            editor.SetSourceRepresentationToBinaryLabelMap()
        modifier = _labelmap(mask, volumeIjkToRas(self._volumeNode))
        reference = slicer.vtkOrientedImageData()
        converter.DeserializeImageGeometry(editor.GetReferenceImageGeometryString(), reference, False)
        if not slicer.vtkOrientedImageDataResample.DoGeometriesMatch(modifier, reference):
            resampled = slicer.vtkOrientedImageData()
            slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(modifier, reference, resampled)
            modifier = resampled
        editor.ModifySegmentByLabelmap(segmentationNode, self._segmentId, modifier, editor.ModificationModeSet, True, False)


# ----------------------------------------------------------------------------------------- batch
class MRMLSegmenter:
    """The evaluation protocol's segmenter (:class:`SegAnyPETLib.evaluate.Segmenter`) through MRML nodes.

    Each case becomes a volume node, each target a new segment, each click a markups point; the
    mask is read back from the segment. Targets named in ``lesionTargets`` are segmented as lesions;
    ``options`` are :class:`~SegAnyPETLib.session.InteractiveSession` keywords (``part_check=False``...).
    Used by ``SegAnyPET/Scripts/batch_evaluate.py``.
    """

    def __init__(self, model: Any = "demo", device: str = "cpu", name: Optional[str] = None, maxCrops: int = 6,
                 lesionTargets: Sequence[str] = (), **options: bool) -> None:
        camel = {key: key.split("_")[0] + "".join(word.title() for word in key.split("_")[1:]) for key in options}
        self.logic = SegAnyPETLogic(model, device, maxCrops, **{camel[key]: value for key, value in options.items()})
        self.lesionTargets = set(lesionTargets)
        # The protocol measures each target alone: other segments are never modified and no
        # masking applies, whatever the Segment Editor's settings in the scene are.
        settings = slicer.vtkMRMLSegmentEditorNode()
        settings.SetOverwriteMode(settings.OverwriteNone)
        settings.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)
        self.logic.setSegmentEditorNode(settings)
        self.name = name or f"{self.logic.modelName} (Slicer)"
        self._nodes: List[Any] = []
        self.volumeNode = self.segmentationNode = None
        self.positiveNode, self.negativeNode = addPromptNodes("SegAnyPET batch")
        self.logic.setPromptNodes(self.positiveNode, self.negativeNode)
        self._targets = 0

    def set_image(self, image) -> None:
        self.logic.setTargetSegment(None, None)
        for node in self._nodes:
            slicer.mrmlScene.RemoveNode(node)
        self.volumeNode = addVolumeFromImage(image, "case")
        self.segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "case segmentation")
        self.segmentationNode.CreateDefaultDisplayNodes()
        self.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self.volumeNode)
        self._nodes = [self.volumeNode, self.segmentationNode]
        self.logic.setInputVolume(self.volumeNode)

    def new_object(self, target: str = "") -> None:
        self.logic.setLesion(target in self.lesionTargets)
        self._targets += 1
        segmentId = addSegment(self.segmentationNode, f"target {self._targets}")
        self.logic.setTargetSegment(self.segmentationNode, segmentId)

    def click(self, index_zyx, positive: bool) -> np.ndarray:
        ras = volumeIjkToRas(self.volumeNode) @ np.array([index_zyx[2], index_zyx[1], index_zyx[0], 1.0])
        node = self.positiveNode if positive else self.negativeNode
        node.AddControlPointWorld(vtk.vtkVector3d(*ras[:3]))
        if self.logic.lastError is not None:
            raise SegAnyPETError(f"click at voxel {tuple(int(v) for v in index_zyx)} failed: {self.logic.lastError}")
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentationNode, self.logic.targetSegmentId, self.volumeNode)
