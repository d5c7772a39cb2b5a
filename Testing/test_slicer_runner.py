"""The logic with the module's background runner (a thread, polled with join): clicks placed while
the image encoder runs keep their order and give the synchronous result; decoder-only clicks run at
once, without the thread; a failed or cancelled encoder takes back only what waited for it."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import slicer
import vtk

from slicer_testing import model_source, organ_center_zyx, phantom
from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.errors import Cancelled
from SegAnyPETLib.labels import LABELS
from SegAnyPETLib.slicer_headless import headless_slicer
from SegAnyPETLib.slicer_logic import PROMPTS_TAG, SegAnyPETLogic, addPromptNodes, addSegment, addVolumeFromImage, volumeIjkToRas
from SegAnyPETLib.slicer_runner import ThreadRunner


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    return load_model(model_source(tmp_path_factory.mktemp("model")), "cpu")


class World:
    def __init__(self, network, threaded: bool):
        self.case = phantom(3)
        headless_slicer()
        self.volume = addVolumeFromImage(self.case.image, "PET")
        self.segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentation.CreateDefaultDisplayNodes()
        self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
        self.target = addSegment(self.segmentation, "liver")
        self.positive, self.negative = addPromptNodes()
        self.logic = SegAnyPETLogic(network, "cpu")
        self.runner = ThreadRunner() if threaded else None
        self.logic.runner = self.runner
        self.logic.setInputVolume(self.volume)
        self.logic.setTargetSegment(self.segmentation, self.target)
        self.logic.setPromptNodes(self.positive, self.negative)

    def ras(self, zyx):
        return list((volumeIjkToRas(self.volume) @ [zyx[2], zyx[1], zyx[0], 1.0])[:3])

    def click(self, zyx, positive=True):
        (self.positive if positive else self.negative).AddControlPointWorld(*self.ras(zyx))

    def segment(self):
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, self.target, self.volume)

    def stored(self):
        value = vtk.reference("")
        self.segmentation.GetSegmentation().GetSegment(self.target).GetTag(PROMPTS_TAG, value)
        return [(tuple(p["ras"]), p["label"]) for p in json.loads(str(value))["points"]]


def clicks(case):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    return [(liver, True), ((liver[0] + 2, liver[1], liver[2] + 1), True),
            ((liver[0] - 2, liver[1], liver[2] - 2), False), ((liver[0], liver[1] + 1, liver[2] + 3), True)]


def test_clicks_placed_while_the_encoder_runs_keep_their_order(network):
    world = World(network, threaded=True)
    gate, entered = threading.Event(), threading.Event()

    def hold(fraction, text):  # the encoder waits here (in the worker) until the clicks are placed
        entered.set()
        assert gate.wait(30)

    world.logic.progressCallback = hold
    first, *later = clicks(world.case)
    world.click(*first)
    assert world.runner.running and world.logic.busy and entered.wait(30)  # the encoder runs in the thread
    for zyx, positive in later:  # P, N, P while it runs
        world.click(zyx, positive)
    assert world.logic.predictions == 0 and world.runner.running
    world.logic.progressCallback = None
    gate.set()
    assert world.runner.wait(60)
    assert world.logic.lastError is None and not world.logic.busy

    labels = [label for _, label in world.stored()]
    assert labels == [1, 1, 0, 1], "the clicks were applied out of order"
    placed = [tuple(node.GetNthControlPointPositionWorld(0)) for node in (world.positive, world.negative)]
    assert np.allclose(world.stored()[2][0], placed[1])
    assert world.logic.predictions == 4  # one step per click, each undoable

    synchronous = World(network, threaded=False)
    for zyx, positive in clicks(world.case):
        synchronous.click(zyx, positive)
    assert np.array_equal(world.segment(), synchronous.segment())
    assert world.stored() == synchronous.stored()

    world.logic.undo()  # the last click (P) goes: P, P, N stay, in order
    assert [label for _, label in world.stored()] == [1, 1, 0]
    synchronous.logic.undo()
    assert np.array_equal(world.segment(), synchronous.segment())
    for w in (world, synchronous):
        w.logic.cleanup()


def test_decoder_only_clicks_run_at_once_without_the_thread(network):
    world = World(network, threaded=True)
    first, second, third, _ = clicks(world.case)
    world.click(*first)
    assert world.runner.running  # a new object's first click runs the encoder: in the thread
    assert world.runner.wait(60) and world.logic.predictions == 1
    world.click(*second)  # inside the crop: decoder only
    assert not world.runner.running and world.logic.predictions == 2  # done before AddControlPoint returned
    world.click(*third)
    assert not world.runner.running and world.logic.predictions == 3
    world.logic.cleanup()


def test_a_cancelled_encoder_removes_its_point_and_the_session_is_unchanged(network):
    world = World(network, threaded=True)
    first = clicks(world.case)[0]

    def cancel(fraction, text):
        world.logic.cancel()

    world.logic.progressCallback = cancel
    world.click(*first)
    assert world.runner.wait(60)
    assert isinstance(world.logic.lastError, Cancelled)
    assert world.positive.GetNumberOfControlPoints() == 0 and not world.segment().any() and not world.logic.canUndo
    world.logic.progressCallback = None
    world.click(*first)  # works again afterwards
    assert world.runner.wait(60) and world.logic.lastError is None and world.segment().any()
    world.logic.cleanup()


def test_poll_delivers_progress_and_results_on_the_calling_thread():
    seen = []
    runner = ThreadRunner(onProgress=lambda f, t: seen.append(("progress", f, t)),
                          onStateChanged=lambda: seen.append(("state", runner.running)), waitSeconds=0.01)
    caller = threading.get_ident()

    def work():
        runner.report(0.5, "half")
        return threading.get_ident()

    runner(work, lambda result, error: seen.append(("done", result != caller, error, threading.get_ident() == caller)))
    assert runner.wait(10)
    assert ("done", True, None, True) in seen  # worked elsewhere, delivered here
    assert seen[0] == ("state", True) and seen[-1] == ("state", False)
    with pytest.raises(RuntimeError, match="busy"):
        runner(lambda: threading.Event().wait(0.2), lambda r, e: None)
        runner(work, lambda r, e: None)
    runner.wait(10)


def test_the_worker_advances_while_the_main_thread_holds_the_gil_between_polls():
    """Slicer's main thread holds the GIL while Qt runs and lets Python threads in only where it
    releases it. Simulated here: a thread switch only every 2 s and a main thread that computes in
    Python between 50 ms timer ticks. The runner's poll waits for the worker with ``join``, which
    releases the GIL, so the work (about 20 ms of Python) ends at the first ticks; a poll that only
    looks (a wait of 0) leaves it where it started."""
    import sys
    import time

    def work(progress, go):
        go.wait()  # starts once the main thread is back in its event loop
        for step in range(2000):
            sum(range(100))
            progress.append(step)

    def ticks(wait, count):
        progress, go = [], threading.Event()
        runner = ThreadRunner(waitSeconds=wait)
        runner(lambda: work(progress, go), lambda result, error: None)
        go.set()
        for _ in range(count):
            end = time.perf_counter() + 0.05
            while time.perf_counter() < end:  # Qt's event processing, holding the GIL
                pass
            if runner.poll():
                return len(progress), True
        return len(progress), False

    interval = sys.getswitchinterval()
    sys.setswitchinterval(2.0)
    try:
        starved = ticks(0.0, 10)
        served = ticks(ThreadRunner().waitSeconds, 10)
    finally:
        sys.setswitchinterval(interval)
    assert starved[1] is False and starved[0] < 2000  # the simulation starves a worker that is not waited for
    assert served == (2000, True)


def test_a_click_outside_the_volume_is_refused_with_the_runner_too(network):
    world = World(network, threaded=True)
    world.click(*clicks(world.case)[0])
    assert world.runner.wait(60)
    world.negative.AddControlPointWorld(5000.0, 0.0, 0.0)
    assert "outside the volume" in str(world.logic.lastError) and not world.runner.running
    assert world.negative.GetNumberOfControlPoints() == 0 and world.logic.predictions == 1
    world.logic.cleanup()
