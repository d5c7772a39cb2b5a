"""The two markups point lists a user clicks in (positive, negative), in the order of the clicks.

:class:`PromptLists` observes both lists and calls ``onChange()`` when a point was placed, moved
(when a drag ends: one call per drag) or removed. It records the click order at once, on every
event, so points placed while the logic is busy keep their order (P, N, P stays P, N, P).
Imports only ``slicer`` MRML classes and ``vtk``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import slicer
import vtk

from .slicer_nodes import Prompt

Key = Tuple[int, str]  # (label 1 positive / 0 negative, control point ID)


class PromptLists:
    """A positive and a negative point list, observed; see the module docstring."""

    def __init__(self, onChange: Callable[[], None]) -> None:
        self.onChange = onChange
        self.nodes: Tuple[Any, Any] = (None, None)
        self.muted = False  # True while the lists are written by :meth:`show`
        self._order: List[Key] = []
        self._interacting: set = set()
        self._observations: List[Tuple[Any, int]] = []

    def setNodes(self, positiveNode, negativeNode) -> None:
        """Observe these lists (None, None: none)."""
        self.cleanup()
        self.nodes = (positiveNode, negativeNode)
        events = (
            slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
            slicer.vtkMRMLMarkupsNode.PointModifiedEvent,
            slicer.vtkMRMLMarkupsNode.PointRemovedEvent,
            slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent,
            slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
        )
        for node in self.nodes:
            for event in events if node is not None else ():
                # VTK passes custom MRML events to Python as "NoEvent": bind the event to each callback
                callback = lambda caller, name, event=event: self._onEvent(caller, event)
                self._observations.append((node, node.AddObserver(event, callback)))

    def cleanup(self) -> None:
        for node, tag in self._observations:
            node.RemoveObserver(tag)
        self._observations = []
        self._interacting = set()

    def placed(self) -> List[Prompt]:
        """The placed points of both lists (world RAS, label), in the order they were clicked."""
        present = self._present()
        self._order = [key for key in self._order if key in present] + [key for key in present if key not in self._order]
        return [present[key] for key in self._order]

    def show(self, prompts: Sequence[Prompt]) -> None:
        """Set the lists to ``prompts`` without calling ``onChange``."""
        positive, negative = self.nodes
        if positive is None or negative is None:
            return
        self.muted = True
        try:
            self._order = []
            for node in (positive, negative):
                node.RemoveAllControlPoints()
            for ras, label in prompts:
                node = positive if label else negative
                index = node.AddControlPointWorld(vtk.vtkVector3d(*ras))
                self._order.append((label, node.GetNthControlPointID(index)))
        finally:
            self.muted = False

    def _present(self) -> Dict[Key, Prompt]:
        present: Dict[Key, Prompt] = {}
        for label, node in zip((1, 0), self.nodes):
            if node is None:
                continue
            for i in range(node.GetNumberOfControlPoints()):
                if node.GetNthControlPointPositionStatus(i) == slicer.vtkMRMLMarkupsNode.PositionDefined:
                    present[(label, node.GetNthControlPointID(i))] = (tuple(node.GetNthControlPointPositionWorld(i)), label)
        return present

    def _onEvent(self, caller, event: int) -> None:
        if self.muted:
            return
        self.placed()  # the click order is recorded now, whatever the logic does with it
        key = caller.GetID()
        if event == slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent:
            self._interacting.add(key)
            return
        if event == slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent:
            self._interacting.discard(key)
        elif event == slicer.vtkMRMLMarkupsNode.PointModifiedEvent and key in self._interacting:
            return  # the point is being dragged: one change when it is dropped
        self.onChange()
