"""Click-to-segment time in Slicer, through a real slice view: from the mouse event to the segment modified.

For each model, on ``seganypet bench``'s whole-body phantom (:func:`SegAnyPETLib.bench.bench_case`):
an offscreen :class:`~SegAnyPETLib.slice_view.SliceView` (coronal, through the liver) and the
module's logic with its background runner, polled as the module polls it. The *first click* is a
left click in place mode on the liver of a fresh session: the volume is read, the image encoder runs
in the runner's thread, the segment is written. *Later clicks* are clicks inside the segment's crop:
decoder only, on the main thread. Each time runs from the synthetic button events to the
segmentation's ``SegmentModified`` event; ``*_session_ms`` is the session's own part of it (the rest is
reading the volume, the markups widget, the runner and writing the segment). ``slicerClickBenchmark()``
returns a dict; ``seganypet bench`` prints it.
"""
from __future__ import annotations

import logging
import platform
import statistics
import time
from typing import Any, Dict, Sequence

import numpy as np

logger = logging.getLogger(__name__)

MODELS = ("demo", "random:vit_b_ori")


def loadBenchModel(name: str, device: str = "cpu"):
    """A registry model or checkpoint (``"demo"``), or ``"random:<arch>"``: an untrained network of that
    architecture (the published networks' speed without their weights)."""
    if name.startswith("random:"):
        import torch

        from .model import build_model

        torch.manual_seed(0)
        model = build_model(name.split(":", 1)[1]).eval()
        model.source = name
        return model
    from .checkpoints import load_model

    return load_model(name, device)


def slicerClickBenchmark(models: Sequence[str] = MODELS, device: str = "cpu", laterClicks: int = 5,
                         size=(400, 600)) -> Dict[str, Any]:
    """Mouse event to segment modified, first click (encoder in the runner's thread) and later clicks
    (decoder only), for each model; see the module docstring. Times in milliseconds."""
    import torch

    from .bench import bench_case, liver_click

    case = bench_case()
    click = liver_click(case)  # i, j, k
    results: Dict[str, Any] = {
        "what": "Slicer slice view: synthetic mouse click to SegmentModified (offscreen, slicer-core)",
        "case_size": list(case.image.GetSize()),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "models": {},
    }
    for name in models:
        model = loadBenchModel(name, device)
        results["models"][name] = _benchModel(model, case, click, device, laterClicks, size)
        logger.info("%s: %s", name, results["models"][name])
    return results


def _benchModel(model, case, click, device: str, laterClicks: int, size) -> Dict[str, Any]:
    import slicer
    import vtk

    from .slice_view import SliceView
    from .slicer_headless import headless_slicer
    from .slicer_logic import SegAnyPETLogic, addPromptNodes, addSegment, addVolumeFromImage, volumeIjkToRas
    from .slicer_runner import ThreadRunner

    headless_slicer()
    volume = addVolumeFromImage(case.image, "PET")
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    target = addSegment(segmentation, "liver")
    positive, negative = addPromptNodes()
    logic = SegAnyPETLogic(model, device)
    runner = ThreadRunner()
    logic.runner = runner
    logic.setInputVolume(volume)
    logic.setTargetSegment(segmentation, target)
    logic.setPromptNodes(positive, negative)
    view = SliceView(size=size, orientation="Coronal")
    view.setBackground(volume, window=8.0, level=4.0)
    ijkToRas = volumeIjkToRas(volume)
    ras = lambda ijk: list((ijkToRas @ [ijk[0], ijk[1], ijk[2], 1.0])[:3])  # noqa: E731
    modified = []
    tag = segmentation.GetSegmentation().AddObserver(slicer.vtkSegmentation.SegmentModified,
                                                     lambda caller, event: modified.append(time.perf_counter()))

    def timedClick(ijk) -> Dict[str, float]:
        point = ras(ijk)
        view.showSliceThrough(point)
        modified.clear()
        count = logic.predictions
        started = time.perf_counter()
        view.click(point)
        threaded = runner.running
        while logic.predictions == count and logic.lastError is None:
            runner.poll()  # the module's timer does this every 10 ms
            if not runner.running and logic.predictions == count:
                break
        if logic.lastError is not None or not modified:
            raise RuntimeError(f"the benchmark click at voxel {list(ijk)} failed: {logic.lastError}")
        return {"ms": 1000 * (modified[0] - started), "threaded": threaded,
                "encoder_ms": logic.timing.get("encoder_ms", 0.0), "write_ms": logic.timing.get("write_ms", 0.0),
                "session_ms": logic.timing.get("total_ms", 0.0)}

    try:
        view.setPlaceMode(positive)
        first = timedClick(click)
        rng = np.random.default_rng(0)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, target, volume)
        inside = np.argwhere(mask[:, :, :] > 0)  # z, y, x
        crops = logic._session.crops
        later = []
        for _ in range(laterClicks):
            for _attempt in range(50):  # a voxel of the mask inside a crop: a decoder-only click
                z, y, x = inside[rng.integers(len(inside))]
                lps = np.asarray(ras((x, y, z))) * [-1, -1, 1]
                if any(grid.contains(lps) for grid in crops):
                    break
            later.append(timedClick((int(x), int(y), int(z))))
    finally:
        segmentation.GetSegmentation().RemoveObserver(tag)
        view.cleanup()
        logic.cleanup()
    times = [c["ms"] for c in later]
    return {
        "first_click_ms": round(first["ms"], 1),
        "first_click_encoder_ms": round(first["encoder_ms"], 1),
        "first_click_session_ms": round(first["session_ms"], 1),
        "first_click_write_ms": round(first["write_ms"], 1),
        "first_click_threaded": first["threaded"],
        "later_click_ms": round(statistics.median(times), 1),
        "later_click_ms_all": [round(t, 1) for t in times],
        "later_clicks_threaded": sum(c["threaded"] for c in later),
        "later_click_session_ms": round(statistics.median(c["session_ms"] for c in later), 1),
        "later_click_write_ms": round(statistics.median(c["write_ms"] for c in later), 1),
    }


if __name__ == "__main__":  # python -m SegAnyPETLib.slicer_bench
    import json

    logging.basicConfig(level=logging.INFO)
    print(json.dumps(slicerClickBenchmark(), indent=2))
