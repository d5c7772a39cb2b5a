"""The evaluation protocol through Slicer's MRML nodes: :class:`MRMLSegmenter` (used by
``SegAnyPET/Scripts/batch_evaluate.py``). Imports only ``slicer`` MRML classes, ``vtk``, numpy and
SegAnyPETLib."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
import slicer
import vtk

from .errors import SegAnyPETError
from .slicer_logic import SegAnyPETLogic
from .slicer_nodes import addPromptNodes, addSegment, addVolumeFromImage, volumeIjkToRas


class MRMLSegmenter:
    """The evaluation protocol's segmenter (:class:`SegAnyPETLib.evaluate.Segmenter`) through MRML nodes.

    Each case becomes a volume node, each target a new segment, each click a markups point; the
    mask is read back from the segment. ``preset`` and ``overrides`` are the session's inference
    options (as :class:`~SegAnyPETLib.evaluate.ModelSegmenter`'s); targets named in ``lesionTargets``
    are segmented as lesions.
    """

    def __init__(self, model: Any = "demo", device: str = "cpu", name: Optional[str] = None, preset: Optional[str] = None,
                 lesionTargets: Sequence[str] = (), **overrides: Any) -> None:
        self.logic = SegAnyPETLogic(model, device, preset, **overrides)
        self.lesionTargets = set(lesionTargets)
        # The protocol measures each target alone: other segments are never modified (the logic's
        # default) and no masking applies, whatever the Segment Editor's settings in the scene are.
        settings = slicer.vtkMRMLSegmentEditorNode()
        settings.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)
        self.logic.setSegmentEditorNode(settings)
        if name is None:  # as ModelSegmenter names the same model and options (the reports compare them)
            from .evaluate import method_name

            network = self.logic.model
            name = method_name(str(getattr(network, "source", None) or self.logic.modelName), lesionTargets,
                               self.logic.config, getattr(network, "inference", None))
        self.name = name
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

    @property
    def reach(self) -> Optional[np.ndarray]:
        """Where the next click can act (the session's ``reach``), as :class:`~SegAnyPETLib.evaluate.ModelSegmenter`'s."""
        session = self.logic.session
        return None if session is None else session.reach

    def click(self, index_zyx, positive: bool) -> np.ndarray:
        ras = volumeIjkToRas(self.volumeNode) @ np.array([index_zyx[2], index_zyx[1], index_zyx[0], 1.0])
        node = self.positiveNode if positive else self.negativeNode
        node.AddControlPointWorld(vtk.vtkVector3d(*ras[:3]))
        if self.logic.lastError is not None:
            raise SegAnyPETError(f"click at voxel {tuple(int(v) for v in index_zyx)} failed: {self.logic.lastError}")
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentationNode, self.logic.targetSegmentId, self.volumeNode)
