"""Writing a mask into a segment as the Segment Editor's effects do, and taking a write back exactly.

:class:`SegmentWriter` sets the target segment to a mask through Slicer's segment editor logic
(``vtkSlicerSegmentEditorLogic``, Slicer 5.10 or later) on a private parameter node, so its
masking (editable area, editable intensity range) applies as it does for the editor's effects.
What happens to *other* segments is an explicit choice, :attr:`SegmentWriter.overwriteMode`:

- ``"none"`` (default): other segments are never modified; the target may overlap them;
- ``"visible"``: the new voxels are removed from the visible other segments;
- ``"all"``: the new voxels are removed from every other segment.

Every write returns a :class:`SegmentEdit`: every segment's voxels in the written box before and
after, for each segment the write changed (other segments included), and the target's prompt tag
before and after; :meth:`SegmentWriter.undo` puts all of it back. Only the box is read, written
and kept, so a click that changes a few slices costs a few slices, however large the volume.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .errors import SegAnyPETError
from .slicer_nodes import Box, labelmapFromMask, volumeIjkToRas

logger = logging.getLogger(__name__)

OVERWRITE_MODES = ("none", "visible", "all")
OVERWRITE_DESCRIPTIONS = {
    "none": "Other segments are not modified (the segment may overlap them).",
    "visible": "The segment's voxels are removed from the visible other segments.",
    "all": "The segment's voxels are removed from every other segment.",
}
Extent = Tuple[int, int, int, int, int, int]  # i0, i1, j0, j1, k0, k1 on the segmentation's reference grid


@dataclass
class SegmentEdit:
    """What one write changed: the segments' voxels in ``extent`` (reference grid) before and after,
    and tags (``{segmentId: {tag: (before, after)}}``)."""

    segmentationNode: object
    extent: Optional[Extent]
    before: Dict[str, np.ndarray] = field(default_factory=dict)  # (k, j, i) bool, changed segments only
    after: Dict[str, np.ndarray] = field(default_factory=dict)
    tags: Dict[str, Dict[str, Tuple[str, str]]] = field(default_factory=dict)

    @property
    def changedSegments(self) -> List[str]:
        return sorted(set(self.before) | set(self.tags))


class SegmentWriter:
    """Sets segments to masks with the editor's masking and an explicit overwrite mode; see the module docstring."""

    def __init__(self) -> None:
        self.overwriteMode = "none"
        self.settingsNode = None  # masking settings; None: the Segment Editor module's parameter node
        self._editorNode = None
        self._editorLogic = None

    # ------------------------------------------------------------------ settings
    def setOverwriteMode(self, mode: str) -> None:
        """``"none"`` (other segments are never modified), ``"visible"`` or ``"all"``."""
        if mode not in OVERWRITE_MODES:
            raise SegAnyPETError(f"unknown overwrite mode {mode!r}; choose {', '.join(OVERWRITE_MODES)}")
        self.overwriteMode = mode

    def maskingDescription(self) -> str:
        """The masking that applies to the next write, in words (shown by the module)."""
        source = self._settingsSource()
        if source is None:
            return "Editable area: everywhere."
        names = {
            slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere: "everywhere",
            slicer.vtkMRMLSegmentationNode.EditAllowedInsideAllSegments: "inside all segments",
            slicer.vtkMRMLSegmentationNode.EditAllowedInsideVisibleSegments: "inside visible segments",
            slicer.vtkMRMLSegmentationNode.EditAllowedOutsideAllSegments: "outside all segments",
            slicer.vtkMRMLSegmentationNode.EditAllowedOutsideVisibleSegments: "outside visible segments",
            slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment: "inside one segment",
        }
        text = f"Editable area: {names.get(source.GetMaskMode(), 'restricted')}"
        if source.GetSourceVolumeIntensityMask():
            low, high = source.GetSourceVolumeIntensityMaskRange()
            text += f"; intensity range {low:g} to {high:g}"
        return text + " (Segment Editor settings)."

    def cleanup(self) -> None:
        if self._editorNode is not None and self._editorNode.GetScene() is not None:
            self._editorNode.GetScene().RemoveNode(self._editorNode)
        self._editorNode = self._editorLogic = None

    # ------------------------------------------------------------------ writing
    def write(self, segmentationNode, segmentId: str, volumeNode, mask: np.ndarray, box: Optional[Box] = None,
              tags: Optional[Dict[str, str]] = None) -> SegmentEdit:
        """Set the segment to ``mask`` ((z, y, x) on the volume's grid; with ``box``, the box's voxels
        only, the rest of the segment stays) and set ``tags`` on it; returns what changed."""
        segmentation = segmentationNode.GetSegmentation()
        segment = segmentation.GetSegment(segmentId)
        if segment is None:
            raise SegAnyPETError(f"segment {segmentId!r} is no longer in segmentation {segmentationNode.GetName()}")
        converter = slicer.vtkSegmentationConverter
        if not segmentation.GetConversionParameter(converter.GetReferenceImageGeometryParameterName()):
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        editor = self._segmentEditor(segmentationNode, segmentId, volumeNode)
        if segmentation.GetSourceRepresentationName() != converter.GetBinaryLabelmapRepresentationName():
            editor.SetSourceRepresentationToBinaryLabelMap()
        reference = self._reference(editor)
        modifier = labelmapFromMask(mask, volumeIjkToRas(volumeNode), box)
        if not slicer.vtkOrientedImageDataResample.DoGeometriesMatch(modifier, reference):
            resampled = slicer.vtkOrientedImageData()
            slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(modifier, reference, resampled)
            modifier = resampled
        extent = _intersect(modifier.GetExtent(), reference.GetExtent())
        edit = SegmentEdit(segmentationNode, extent)
        before = self._segmentsIn(segmentationNode, reference, extent) if extent else {}
        before.setdefault(segmentId, None)
        tagsBefore = {name: _tag(segment, name) for name in (tags or {})}
        if extent is not None:
            if box is None:
                editor.ModifySegmentByLabelmap(segmentationNode, segmentId, modifier, editor.ModificationModeSet, True, False)
            else:
                editor.ModifySegmentByLabelmap(segmentationNode, segmentId, modifier, editor.ModificationModeSet, extent, True, False)
        for name, value in (tags or {}).items():
            segment.SetTag(name, value)
        after = self._segmentsIn(segmentationNode, reference, extent) if extent else {}
        empty = None
        for sid in set(before) | set(after):
            old, new = before.get(sid), after.get(sid)
            if old is None and new is None:
                continue
            if old is None or new is None:
                empty = empty if empty is not None else np.zeros(_shape(extent), dtype=bool)
                old, new = (empty if old is None else old), (empty if new is None else new)
            if not np.array_equal(old, new):
                edit.before[sid], edit.after[sid] = old, new
        changedTags = {name: (tagsBefore[name], value) for name, value in (tags or {}).items() if tagsBefore[name] != value}
        if changedTags:
            edit.tags[segmentId] = changedTags
        return edit

    def setTags(self, segmentationNode, segmentId: str, tags: Dict[str, str]) -> SegmentEdit:
        """Set tags on the segment only (its voxels stay); returns the edit."""
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
        if segment is None:
            raise SegAnyPETError(f"segment {segmentId!r} is no longer in segmentation {segmentationNode.GetName()}")
        edit = SegmentEdit(segmentationNode, None)
        changed = {name: (_tag(segment, name), value) for name, value in tags.items() if _tag(segment, name) != value}
        for name, value in tags.items():
            segment.SetTag(name, value)
        if changed:
            edit.tags[segmentId] = changed
        return edit

    def undo(self, edit: SegmentEdit) -> None:
        """Put back what ``edit`` changed: every changed segment's voxels in its box, and the tags.

        The segment that lost voxels in the write (the target, in ``"none"`` mode) is restored first,
        so the segments that get voxels back never overlap it on the way.
        """
        self._apply(edit, edit.before, {sid: {name: values[0] for name, values in tags.items()} for sid, tags in edit.tags.items()})

    def redo(self, edit: SegmentEdit) -> None:
        """Apply ``edit`` again after :meth:`undo`."""
        self._apply(edit, edit.after, {sid: {name: values[1] for name, values in tags.items()} for sid, tags in edit.tags.items()})

    # ------------------------------------------------------------------ internals
    def _apply(self, edit: SegmentEdit, voxels: Dict[str, np.ndarray], tags: Dict[str, Dict[str, str]]) -> None:
        node = edit.segmentationNode
        segmentation = node.GetSegmentation()
        missing = [sid for sid in set(voxels) | set(tags) if segmentation.GetSegment(sid) is None]
        if missing:
            raise SegAnyPETError(f"cannot undo: segment(s) {', '.join(sorted(missing))} were removed from {node.GetName()}")
        if voxels:
            reference = slicer.vtkOrientedImageData()
            slicer.vtkSegmentationConverter.DeserializeImageGeometry(
                segmentation.GetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()),
                reference, False)
            # first those that lose voxels now, then those that gain
            order = sorted(voxels, key=lambda sid: int(voxels[sid].sum()) - int(_other(edit, sid, voxels).sum()))
            wasModifying = node.StartModify()
            try:
                for sid in order:
                    image = _image(voxels[sid], reference, edit.extent)
                    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
                        image, node, sid, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE, image.GetExtent())
            finally:
                node.EndModify(wasModifying)
        for sid, values in tags.items():
            for name, value in values.items():
                segmentation.GetSegment(sid).SetTag(name, value)

    def _settingsSource(self):
        if self.settingsNode is not None:
            return self.settingsNode
        return slicer.mrmlScene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode")

    def _segmentEditor(self, segmentationNode, segmentId: str, volumeNode):
        """Slicer's segment editor logic on a private parameter node: the user's masking, our overwrite mode."""
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
        node.SetOverwriteMode({"none": node.OverwriteNone, "visible": node.OverwriteVisibleSegments,
                               "all": node.OverwriteAllSegments}[self.overwriteMode])
        source = self._settingsSource()
        if source is not None:
            node.SetMaskMode(source.GetMaskMode())
            node.SetMaskSegmentID(source.GetMaskSegmentID())
            node.SetSourceVolumeIntensityMask(source.GetSourceVolumeIntensityMask())
            node.SetSourceVolumeIntensityMaskRange(*source.GetSourceVolumeIntensityMaskRange())
        else:
            node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)
            node.SetSourceVolumeIntensityMask(False)
        node.SetAndObserveSegmentationNode(segmentationNode)
        node.SetAndObserveSourceVolumeNode(volumeNode)
        node.SetSelectedSegmentID(segmentId)
        return self._editorLogic

    @staticmethod
    def _reference(editor):
        reference = slicer.vtkOrientedImageData()
        slicer.vtkSegmentationConverter.DeserializeImageGeometry(editor.GetReferenceImageGeometryString(), reference, False)
        return reference

    @staticmethod
    def _segmentsIn(segmentationNode, reference, extent: Extent) -> Dict[str, np.ndarray]:
        """Every segment with a voxel in ``extent``: its (k, j, i) bool voxels there, read layer by layer."""
        segmentation = segmentationNode.GetSegmentation()
        found: Dict[str, np.ndarray] = {}
        for layer in range(segmentation.GetNumberOfLayers()):
            image = segmentation.GetLayerDataObject(layer)
            if image is None or image.GetPointData().GetScalars() is None:
                continue
            values = _crop(image, reference, extent)
            if not values.any():
                continue
            for sid in segmentation.GetSegmentIDsForLayer(layer):
                voxels = values == segmentation.GetSegment(sid).GetLabelValue()
                if voxels.any():
                    found[sid] = voxels
        return found


# ----------------------------------------------------------------------------------------- helpers
def _tag(segment, name: str) -> str:
    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else ""


def _shape(extent: Extent) -> Tuple[int, int, int]:
    return extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1


def _intersect(a, b) -> Optional[Extent]:
    extent = []
    for axis in range(3):
        low, high = max(a[2 * axis], b[2 * axis]), min(a[2 * axis + 1], b[2 * axis + 1])
        if low > high:
            return None
        extent += [low, high]
    return tuple(extent)


def _crop(image, reference, extent: Extent) -> np.ndarray:
    """The image's scalars over ``extent`` of the reference grid, (k, j, i); zero where it has none."""
    if not slicer.vtkOrientedImageDataResample.DoGeometriesMatch(image, reference):
        target = slicer.vtkOrientedImageData()
        target.SetExtent(*extent)
        matrix = vtk.vtkMatrix4x4()
        reference.GetImageToWorldMatrix(matrix)
        target.SetImageToWorldMatrix(matrix)
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(image, target, resampled)
        image = resampled
    out = np.zeros(_shape(extent), dtype=np.int32)
    own = image.GetExtent()
    common = _intersect(own, extent)
    if common is None:
        return out
    dims = (own[5] - own[4] + 1, own[3] - own[2] + 1, own[1] - own[0] + 1)
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims)
    source = tuple(slice(common[2 * a] - own[2 * a], common[2 * a + 1] - own[2 * a] + 1) for a in (2, 1, 0))
    target = tuple(slice(common[2 * a] - extent[2 * a], common[2 * a + 1] - extent[2 * a] + 1) for a in (2, 1, 0))
    out[target] = array[source]
    return out


def _image(voxels: np.ndarray, reference, extent: Extent):
    """A binary labelmap holding (k, j, i) ``voxels`` over ``extent`` of the reference grid."""
    image = slicer.vtkOrientedImageData()
    image.SetExtent(*extent)
    matrix = vtk.vtkMatrix4x4()
    reference.GetImageToWorldMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.asarray(voxels, dtype=np.uint8).ravel()
    return image


def _other(edit: SegmentEdit, segmentId: str, voxels: Dict[str, np.ndarray]) -> np.ndarray:
    """The segment's voxels in the state that ``voxels`` is not (after, when restoring before)."""
    other = edit.after if voxels is edit.before else edit.before
    return other[segmentId]
