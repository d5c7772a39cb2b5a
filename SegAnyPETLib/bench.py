"""Speed and memory benchmarks (``seganypet bench``): the numbers quoted in the README.

For each model: the image-embedding time of our encoder and of the official computation (every
zero-padded window token attended), the click latency of our session (prompt encoder, decoder,
upsampling and paste-back onto the whole-body grid; also with test-time mirroring) and of the
official click path (the same network calls, ``sigmoid(trilinear) > 0.5`` and SAM-Med3D's
paste-back: put the crop into the resampled volume, nearest-neighbour interpolation to the
original size), and the peak memory of a fresh process doing all of it.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import platform
import resource
import statistics
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)


def _timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall time in ms of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def bench_image():
    """A whole-body-sized PET volume: a phantom (200 x 200 x 300-ish at 4.07 x 4.07 x 3 mm)."""
    from .phantom import generate_case

    return generate_case(seed=12345).image


def _bench_one(source: str, device_name: str, repeats: int, reference: bool) -> Dict[str, Any]:
    import torch.nn.functional as F

    from .checkpoints import load_model
    from .device import resolve_device
    from .model import build_model
    from .model.common import upsample_logits
    from .preprocessing import CropGrid, extract_crop
    from .session import InteractiveSession

    device = resolve_device(device_name)
    torch.manual_seed(0)
    if source.startswith("random:"):
        model = build_model(source.split(":", 1)[1])
    else:
        model = load_model(source, device="cpu")
    model = model.to(device).eval()
    image = bench_image()
    center = np.array(image.TransformContinuousIndexToPhysicalPoint([s / 2 for s in image.GetSize()]))
    grid = CropGrid.around(center, model.preprocessing, image)
    crop = torch.from_numpy(extract_crop(image, grid))[None, None].to(device)
    result: Dict[str, Any] = {"model": source, "architecture": model.config.name, "device": str(device),
                              "crop": f"{model.config.img_size}^3 at {model.preprocessing.spacing[0]:g} mm",
                              "image_size": list(image.GetSize())}
    encoder = model.image_encoder
    with torch.inference_mode():
        result["embed_ms"] = _timed(lambda: encoder(crop), repeats, device)
        if reference and any(b.window_size for b in getattr(encoder, "blocks", ())):
            for block in encoder.blocks:
                block.padded_fast_path = False
            result["embed_official_ms"] = _timed(lambda: encoder(crop), max(1, repeats // 3), device)
            for block in encoder.blocks:
                block.padded_fast_path = True
            result["encoder_speedup"] = result["embed_official_ms"] / result["embed_ms"]

    # Our click: a session on the whole-body image, clicks inside the same crop; then the same in
    # lesion mode and with test-time mirroring (8 embeddings cached, one decoder batch of 8 per click).
    index = [s // 2 for s in image.GetSize()]
    offsets = [(2, 0, 0), (0, 2, 0), (0, 0, 2), (-2, 0, 0)]

    def clicks_in(session: InteractiveSession):
        session.set_image(image)
        session.add_click(index)
        state = {"n": 0}

        def click():
            dx, dy, dz = offsets[state["n"] % len(offsets)]
            state["n"] += 1
            session.add_click([index[0] + dx, index[1] + dy, index[2] + dz], positive=state["n"] % 2 == 0)

        return click

    session = InteractiveSession(model, device=str(device), extend=False)
    result["click_ms"] = _timed(clicks_in(session), repeats, device)
    lesion = InteractiveSession(model, device=str(device), extend=False, lesion=True)
    result["lesion_click_ms"] = _timed(clicks_in(lesion), repeats, device)
    mirrored = InteractiveSession(model, device=str(device), extend=False, mirror=True)
    result["mirrored_click_ms"] = _timed(clicks_in(mirrored), repeats, device)

    # The official click path on the same embedding, points and previous logits.
    embedding = session._embeddings[session.crops[0]]
    low = model.config.low_res_size
    coords = torch.tensor([[[model.config.img_size / 2] * 3]], device=device)
    labels = torch.ones(1, 1, dtype=torch.long, device=device)
    previous = torch.zeros(1, 1, low, low, low, device=device)
    original_shape = tuple(reversed(image.GetSize()))
    size = model.config.img_size

    def official_click():
        with torch.no_grad():
            sparse, dense = model.prompt_encoder(points=[coords, labels], boxes=None, masks=previous)
            logits, _ = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                           sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                           multimask_output=False)
            upsampled = upsample_logits(logits, (size,) * 3)
            mask = (torch.sigmoid(upsampled) > 0.5).cpu().numpy().squeeze().astype(np.uint8)
        # SAM-Med3D data_postprocess: crop into the resampled volume, nearest to the original size.
        resampled_shape = [int(round(n * s / t)) for n, s, t in zip(original_shape, image.GetSpacing()[::-1], model.preprocessing.spacing)]
        full = np.zeros(resampled_shape, dtype=np.float32)
        a = [max(0, (r - size) // 2) for r in resampled_shape]
        region = tuple(slice(o, min(o + size, r)) for o, r in zip(a, resampled_shape))
        full[region] = mask[tuple(slice(0, s.stop - s.start) for s in region)]
        F.interpolate(torch.from_numpy(full)[None, None], size=original_shape, mode="nearest")

    result["official_click_ms"] = _timed(official_click, repeats, device)
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _worker(queue, *args) -> None:
    try:
        queue.put(_bench_one(*args))
    except Exception as error:  # reported by the parent
        queue.put({"error": f"{type(error).__name__}: {error}"})


def bench_statistics() -> Dict[str, Any]:
    """Seconds for SUV statistics of a 200 x 200 x 300 volume with 15 segments (issue target < 5 s)."""
    from .stats import benchmark_statistics

    return benchmark_statistics()


def run_benchmarks(models: List[str], device: str = "auto", repeats: int = 5, reference: bool = True) -> List[Dict[str, Any]]:
    """Each model in a fresh process (clean peak-memory reading)."""
    context = multiprocessing.get_context("spawn")
    results = []
    for source in models:
        queue = context.Queue()
        process = context.Process(target=_worker, args=(queue, source, device, repeats, reference))
        process.start()
        result = queue.get()
        process.join()
        results.append(result)
    return results


def environment() -> Dict[str, Any]:
    import os

    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def format_table(results: List[Dict[str, Any]]) -> str:
    lines = ["| model | device | crop | embedding ms | official embedding ms | speed-up | click ms | lesion click ms | mirrored click ms | official click ms | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r.get('model', '?')} | error: {r['error']} |||||||||")
            continue
        def f(key, fmt="{:.0f}"):
            return fmt.format(r[key]) if key in r else "-"
        lines.append(f"| {r['model']} | {r['device']} | {r['crop']} | {f('embed_ms')} | {f('embed_official_ms')} | "
                     f"{f('encoder_speedup', '{:.1f}x')} | {f('click_ms')} | {f('lesion_click_ms')} | {f('mirrored_click_ms')} | {f('official_click_ms')} | "
                     f"{f('peak_rss_mb')} |")
    return "\n".join(lines)
