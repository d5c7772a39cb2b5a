"""Click-to-segment time in Slicer, through a real slice view: from the mouse event to the segment modified.

For each model, on ``seganypet bench``'s whole-body phantom (:func:`SegAnyPETLib.bench.bench_case`):
an offscreen :class:`~SegAnyPETLib.slice_view.SliceView` (coronal, through the liver) and the
module's logic with its background runner, polled as the module polls it. The *first click* is a
left click in place mode on the liver of a fresh session: the volume is read, the image encoder runs
in the runner's thread, the segment is written. *Later clicks* are clicks inside the segment's crop:
decoder only, on the main thread. Each time runs from the synthetic button events to the
segmentation's ``SegmentModified`` event; ``*_session_ms`` is the session's own part of it (the rest is
reading the volume, the markups widget, the runner and writing the segment). ``slicerClickBenchmark()``
returns a dict; :func:`formatSlicerTable` makes it a Markdown table (``seganypet bench --slicer``).
"""
from __future__ import annotations

import logging
import platform
import statistics
import time
from typing import Any, Dict, Mapping, Optional, Sequence

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
                         size=(400, 600), preset: Optional[str] = None,
                         overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Mouse event to segment modified, first click (encoder in the runner's thread) and later clicks
    (decoder only), for each model with ``preset`` (None: the model's own) and ``overrides``; see the
    module docstring. Times in milliseconds; ``models[name]["preset"]`` names the options used."""
    import torch

    from . import session  # noqa: F401  (imported before timing: a cost of the process, not of a first click)
    from .bench import bench_case, liver_click

    if laterClicks < 1:
        raise ValueError(f"laterClicks must be at least 1, got {laterClicks}")
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
        results["models"][name] = _benchModel(model, case, click, device, laterClicks, size, preset, dict(overrides or {}))
        logger.debug("%s: %s", name, results["models"][name])
    return results


SLICER_TABLE_COLUMNS = ("model", "options", "first click ms", "first: session ms", "first: encoder ms",
                        "first: write ms", "later click ms", "later: session ms", "later: write ms", "later in thread")


def formatSlicerTable(results: Mapping[str, Any]) -> str:
    """The result of :func:`slicerClickBenchmark` as a Markdown table, one row per model
    (:data:`SLICER_TABLE_COLUMNS`; later clicks: medians)."""
    lines = ["| " + " | ".join(SLICER_TABLE_COLUMNS) + " |", "|" + "---|" * len(SLICER_TABLE_COLUMNS)]
    for name, r in results["models"].items():
        cells = [name, r["preset"], r["first_click_ms"], r["first_click_session_ms"], r["first_click_encoder_ms"],
                 r["first_click_write_ms"], r["later_click_ms"], r["later_click_session_ms"], r["later_click_write_ms"],
                 f"{r['later_clicks_threaded']}/{len(r['later_click_ms_all'])}"]
        lines.append("| " + " | ".join(f"{c:.0f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines)


def _benchModel(model, case, click, device: str, laterClicks: int, size, preset: Optional[str],
                overrides: Dict[str, Any]) -> Dict[str, Any]:
    import slicer

    from .inference.config import preset_name
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
    logic = SegAnyPETLogic(model, device, preset, **overrides)
    optionsName = preset_name(logic.config) or f"{preset or 'own'}, changed: {', '.join(sorted(overrides)) or '-'}"
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
        if not len(inside):  # an untrained network may segment nothing: click next to the first click
            k, j, i = click[2], click[1], click[0]
            inside = np.array([(k + dz, j + dy, i + dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
            inside = np.clip(inside, 0, np.array(mask.shape) - 1)
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
        "preset": optionsName,
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
    results = slicerClickBenchmark()
    print(json.dumps(results, indent=2))
    print(formatSlicerTable(results))
