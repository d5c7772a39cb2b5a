"""The click flow in a real slice view (slicer-core's slice logic, displayable managers, markups
widgets and slice-view interactor style, rendered offscreen), driven by synthetic mouse events:
place mode as the markups place widget sets it, a left click places a point through the markups
widget, the logic predicts, the segment is drawn at the click; then a negative point, a drag (one
prediction), a deletion with the Delete key, and Undo."""
from __future__ import annotations

import json

import numpy as np
import pytest
import slicer
import vtk

from slicer_testing import model_source, organ_center_zyx, phantom
from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.labels import LABELS
from SegAnyPETLib.session import InteractiveSession
from SegAnyPETLib.slice_view import SliceView, offscreenRenderWindow
from SegAnyPETLib.slicer_headless import headless_slicer
from SegAnyPETLib.slicer_logic import PROMPTS_TAG, SegAnyPETLogic, addPromptNodes, addSegment, addVolumeFromImage, volumeIjkToRas


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    return load_model(model_source(tmp_path_factory.mktemp("model")), "cpu")


class World:
    """A phantom PET volume, a liver segment, the point lists, the logic and a coronal slice view."""

    def __init__(self, network):
        self.case = phantom(3)
        self.scene = headless_slicer()
        self.volume = addVolumeFromImage(self.case.image, "PET")
        self.segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
        self.segmentation.CreateDefaultDisplayNodes()
        self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
        self.target = addSegment(self.segmentation, "liver")
        self.positive, self.negative = addPromptNodes()
        self.logic = SegAnyPETLogic(network, "cpu")
        self.logic.setInputVolume(self.volume)
        self.logic.setTargetSegment(self.segmentation, self.target)
        self.logic.setPromptNodes(self.positive, self.negative)
        self.view = SliceView(size=(320, 420), orientation="Coronal")
        self.view.setBackground(self.volume, window=8.0, level=4.0)
        self.reference = InteractiveSession(network, device="cpu")
        self.reference.set_image(self.case.image)

    def ras(self, zyx):
        return list((volumeIjkToRas(self.volume) @ [zyx[2], zyx[1], zyx[0], 1.0])[:3])

    def segment(self):
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, self.target, self.volume)

    def points(self):
        """The placed points in click order (RAS, label), as the segment stores them."""
        value = vtk.reference("")
        self.segmentation.GetSegmentation().GetSegment(self.target).GetTag(PROMPTS_TAG, value)
        return [(p["ras"], p["label"]) for p in json.loads(str(value))["points"]]

    def expected(self):
        """The library's mask for the stored points (a replay from an empty object)."""
        self.reference.new_object()
        points = self.points()
        return self.reference.set_points([np.multiply(ras, [-1, -1, 1]) for ras, _ in points],
                                         [label for _, label in points], space="lps")

    def filled(self, before, after):
        """Pixels where ``after`` shows the segment's 2D fill over ``before``: the colour blended with
        the fill opacity (the segmentation displayable manager's drawing)."""
        display = self.segmentation.GetDisplayNode()
        alpha = display.GetOpacity2DFill() * display.GetOpacity() * display.GetSegmentOpacity2DFill(self.target)
        color = np.array(self.segmentation.GetSegmentation().GetSegment(self.target).GetColor()) * 255
        blended = (1 - alpha) * before.astype(float) + alpha * color
        return np.all(np.abs(after.astype(float) - blended) <= 3, axis=-1) & np.any(after != before, axis=-1)


@pytest.fixture
def world(network):
    world = World(network)
    yield world
    world.view.cleanup()
    world.logic.cleanup()


def test_offscreen_rendering_is_chosen_without_a_display():
    import os

    window = offscreenRenderWindow()
    assert window.GetOffScreenRendering()
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        assert window.GetClassName() in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow")


def test_clicks_in_a_slice_view_segment_and_undo(world):
    view, logic = world.view, world.logic
    liver = organ_center_zyx(world.case.label, LABELS["liver"])
    view.showSliceThrough(world.ras(liver))
    before = view.capture()
    x, y = view.displayPosition(world.ras(liver))
    row = before.shape[0] - 1 - y  # image row of the click (display y points up)

    # place mode as qSlicerMarkupsPlaceWidget sets it, then a left click: a point through the markups widget
    view.setPlaceMode(world.positive)
    view.click(world.ras(liver))
    assert world.positive.GetNumberOfControlPoints() == 1 and logic.predictions == 1 and logic.lastError is None
    assert world.positive.GetNthControlPointPositionStatus(0) == slicer.vtkMRMLMarkupsNode.PositionDefined
    assert np.allclose(world.positive.GetNthControlPointPositionWorld(0), view.rasAt(x, y), atol=1e-3)
    assert np.array_equal(world.segment(), world.expected())
    assert world.segment()[liver], "the test model's mask leaves out its click: choose another test model"
    world.positive.GetDisplayNode().SetVisibility(False)  # the point's glyph covers the click
    drawn = view.capture()
    world.positive.GetDisplayNode().SetVisibility(True)
    filled = world.filled(before, drawn)
    assert filled[row, x], f"the segment is not drawn at the click: {view.pixel(x, y, before)} -> {view.pixel(x, y, drawn)}"
    assert not filled[:5, :5].any() and np.array_equal(drawn[:5, :5], before[:5, :5])  # outside the body: unchanged

    # a negative point inside the segment, away from the positive one
    mask = world.segment()
    coronal = liver[1]
    inside = np.argwhere(mask[:, coronal, :])
    near = inside[np.abs(inside - [liver[0], liver[2]]).max(axis=1) <= 12]
    far = near[np.argmax(np.abs(near - [liver[0], liver[2]]).sum(axis=1))]
    negative = (int(far[0]), coronal, int(far[1]))
    view.setPlaceMode(world.negative)
    view.click(world.ras(negative))
    assert world.negative.GetNumberOfControlPoints() == 1 and logic.predictions == 2
    assert [label for _, label in world.points()] == [1, 0]
    assert np.array_equal(world.segment(), world.expected())
    after_negative = world.segment()

    # a drag of the negative point (out of place mode): one prediction when it is dropped
    view.setViewMode()
    moved = (negative[0] + 4, coronal, negative[2] + 3)
    view.drag(world.ras(negative), world.ras(moved), steps=6)
    assert logic.predictions == 3, "a drag must predict exactly once"
    dropped = world.negative.GetNthControlPointPositionWorld(0)
    assert np.allclose(dropped, view.rasAt(*view.displayPosition(world.ras(moved))), atol=1e-3)
    assert np.allclose(world.points()[1][0], dropped, atol=1e-3)
    assert np.array_equal(world.segment(), world.expected())
    after_drag = world.segment()

    # the Delete key over the point deletes it (the markups widget), one more prediction
    view.pressKey("Delete", dropped, keyCode=127)
    assert world.negative.GetNumberOfControlPoints() == 0 and logic.predictions == 4
    assert [label for _, label in world.points()] == [1]
    assert np.array_equal(world.segment(), world.expected())

    # Undo: the deleted point and its segment come back, then the drag is taken back
    logic.undo()
    assert world.negative.GetNumberOfControlPoints() == 1
    assert np.allclose(world.negative.GetNthControlPointPositionWorld(0), dropped, atol=1e-3)
    assert np.array_equal(world.segment(), after_drag)
    logic.undo()
    assert np.array_equal(world.segment(), after_negative)
    assert np.allclose(world.points()[1][0], world.negative.GetNthControlPointPositionWorld(0), atol=1e-3)
    world.negative.GetDisplayNode().SetVisibility(False)
    world.positive.GetDisplayNode().SetVisibility(False)
    assert world.filled(before, view.capture())[row, x]  # drawn again after the undos


def test_the_view_saves_what_it_shows(world, tmp_path):
    world.view.showSliceThrough(world.ras(organ_center_zyx(world.case.label, LABELS["liver"])))
    image = world.view.capture()
    path = world.view.save(tmp_path / "view.png", image)
    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    assert reader.GetOutput().GetDimensions()[:2] == (320, 420)
    assert image.shape == (420, 320, 3) and image.std() > 0  # the PET is drawn, not a blank window


def test_the_click_benchmark_times_clicks_through_the_view(tmp_path):
    from SegAnyPETLib.slicer_bench import slicerClickBenchmark

    model = model_source(tmp_path)
    result = slicerClickBenchmark(models=(model,), laterClicks=2, size=(200, 300))["models"][model]
    assert result["first_click_threaded"] and result["first_click_ms"] >= result["first_click_encoder_ms"] > 0
    assert result["later_clicks_threaded"] == 0  # decoder-only clicks run at once, on the calling thread
    assert len(result["later_click_ms_all"]) == 2 and result["later_click_ms"] > 0
