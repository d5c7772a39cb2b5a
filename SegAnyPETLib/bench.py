"""Speed and memory benchmarks (``seganypet bench``): the numbers quoted in the README.

On a whole-body phantom, for each model: the image-embedding time of our encoder and of the official
computation (every zero-padded window token attended); for each inference preset, a first click on
the liver (with how many encoder runs it made) and a later click, both through the session up to the
mask on the whole-body grid; and the official click path on the same embedding: the same network
calls, ``sigmoid(trilinear) > 0.5`` and SAM-Med3D's paste-back (the crop put into the resampled
volume, nearest-neighbour interpolation to the original size). Each model runs in a fresh process,
for a clean peak-memory reading.
"""
from __future__ import annotations

import logging
import multiprocessing
import platform
import resource
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)


def _timed(fn, repeats: int, device: torch.device, warm_up: bool = True) -> float:
    """Median wall time in ms of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    if warm_up:
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


def bench_case():
    """A whole-body phantom (about 200 x 200 x 300 voxels of 4.07 x 4.07 x 3 mm) and its labels."""
    from .phantom import generate_case

    return generate_case(seed=12345)


def liver_click(case) -> List[int]:
    """The voxel (i, j, k) deepest inside the liver: where a user clicks first."""
    import SimpleITK as sitk
    from scipy import ndimage

    from .labels import LABELS

    liver = sitk.GetArrayViewFromImage(case.label) == LABELS["liver"]
    zyx = np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(liver))), liver.shape)
    return [int(v) for v in zyx[::-1]]


def _bench_one(source: str, device_name: str, repeats: int, reference: bool, presets: Sequence[Optional[str]],
               overrides: Dict[str, Any]) -> Dict[str, Any]:
    import torch.nn.functional as F

    from .checkpoints import load_model
    from .device import resolve_device
    from .model import build_model
    from .model.common import upsample_logits
    from .preprocessing import CropGrid, extract_crop
    from .session import InteractiveSession

    device = resolve_device(device_name)
    torch.manual_seed(0)
    model = build_model(source.split(":", 1)[1]) if source.startswith("random:") else load_model(source, device="cpu")
    model = model.to(device).eval()
    case = bench_case()
    image = case.image
    click = liver_click(case)
    grid = CropGrid.at_click(np.array(image.TransformIndexToPhysicalPoint(click)), model.preprocessing, image)
    crop = torch.from_numpy(extract_crop(image, grid))[None, None].to(device)
    result: Dict[str, Any] = {"model": source, "architecture": model.config.name, "device": str(device),
                              "crop": f"{model.config.img_size}^3 at {model.preprocessing.spacing[0]:g} mm",
                              "image_size": list(image.GetSize())}
    encoder = model.image_encoder
    with torch.inference_mode():
        embedding = encoder(crop)
        result["embed_ms"] = _timed(lambda: encoder(crop), repeats, device)
        if reference and any(b.window_size for b in getattr(encoder, "blocks", ())):
            for block in encoder.blocks:
                block.padded_fast_path = False
            result["embed_official_ms"] = _timed(lambda: encoder(crop), max(1, repeats // 3), device)
            for block in encoder.blocks:
                block.padded_fast_path = True
            result["encoder_speedup"] = result["embed_official_ms"] / result["embed_ms"]
    result["official_click_ms"] = _timed(_official_click(model, embedding, image, device, F, upsample_logits), repeats, device)

    # Later clicks: inside the liver around the first click, positive and negative in turn.
    offsets = [(2, 0, 0), (0, 2, 0), (0, 0, 2), (-2, 0, 0)]
    result["presets"] = []
    for preset in presets:
        session = InteractiveSession(model, preset, device=str(device), **overrides)
        if any(row["preset"] == session.preset_name for row in result["presets"]):
            continue  # the model's own config is that preset
        first_runs: List[int] = []

        def first_click() -> None:
            session.set_image(image)  # an empty cache: the first click encodes
            session.add_click(click)
            first_runs.append(int(session.timing["encoder_runs"]))

        row = {"preset": session.preset_name, "first_click_ms": _timed(first_click, max(1, repeats // 3), device, False)}
        row["first_click_encoder_runs"] = first_runs[-1]
        state = {"n": 0}

        def later_click() -> None:
            dx, dy, dz = offsets[state["n"] % len(offsets)]
            state["n"] += 1
            session.add_click([click[0] + dx, click[1] + dy, click[2] + dz], positive=state["n"] % 2 == 0)

        row["later_click_ms"] = _timed(later_click, repeats, device)
        row["later_vs_official"] = row["later_click_ms"] / result["official_click_ms"]
        result["presets"].append(row)
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _official_click(model, embedding, image, device, F, upsample_logits):
    """SAM-Med3D's click path on a cached embedding: decode, upsample, threshold, paste back."""
    low, size = model.config.low_res_size, model.config.img_size
    coords = torch.tensor([[[size / 2] * 3]], device=device)
    labels = torch.ones(1, 1, dtype=torch.long, device=device)
    previous = torch.zeros(1, 1, low, low, low, device=device)
    original_shape = tuple(reversed(image.GetSize()))
    resampled_shape = [int(round(n * s / t)) for n, s, t in
                       zip(original_shape, image.GetSpacing()[::-1], model.preprocessing.spacing)]

    def click():
        with torch.no_grad():
            sparse, dense = model.prompt_encoder(points=[coords, labels], boxes=None, masks=previous)
            logits, _ = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                           sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                           multimask_output=False)
            mask = (torch.sigmoid(upsample_logits(logits, (size,) * 3)) > 0.5).cpu().numpy().squeeze().astype(np.uint8)
        # SAM-Med3D data_postprocess: crop into the resampled volume, nearest to the original size.
        full = np.zeros(resampled_shape, dtype=np.float32)
        start = [max(0, (r - size) // 2) for r in resampled_shape]
        region = tuple(slice(o, min(o + size, r)) for o, r in zip(start, resampled_shape))
        full[region] = mask[tuple(slice(0, s.stop - s.start) for s in region)]
        F.interpolate(torch.from_numpy(full)[None, None], size=original_shape, mode="nearest")

    return click


def _worker(queue, *args) -> None:
    try:
        queue.put(_bench_one(*args))
    except Exception as error:  # reported by the parent
        queue.put({"error": f"{type(error).__name__}: {error}"})


def bench_statistics() -> Dict[str, Any]:
    """Seconds for SUV statistics of a 200 x 200 x 300 volume with 15 segments (issue target < 5 s)."""
    from .stats import benchmark_statistics

    return benchmark_statistics()


def run_benchmarks(models: List[str], device: str = "auto", repeats: int = 5, reference: bool = True,
                   presets: Sequence[Optional[str]] = (None, "official"),
                   overrides: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Each model in a fresh process; ``presets``: None is the model's own."""
    context = multiprocessing.get_context("spawn")
    results = []
    for source in models:
        queue = context.Queue()
        process = context.Process(target=_worker, args=(queue, source, device, repeats, reference, list(presets),
                                                        dict(overrides or {})))
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


def format_tables(results: List[Dict[str, Any]]) -> str:
    """Two Markdown tables: the encoders, and the clicks per model and preset."""
    def f(row, key, fmt="{:.0f}"):
        return fmt.format(row[key]) if key in row else "-"

    encoders = ["| model | device | crop | embedding ms | official embedding ms | speed-up | peak RSS MB |",
                "|---|---|---|---|---|---|---|"]
    clicks = ["| model | preset | first click ms | encoder runs | later click ms | official click ms | later / official |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            encoders.append(f"| {r.get('model', '?')} | error: {r['error']} ||||||")
            continue
        encoders.append(f"| {r['model']} | {r['device']} | {r['crop']} | {f(r, 'embed_ms')} | {f(r, 'embed_official_ms')} | "
                        f"{f(r, 'encoder_speedup', '{:.1f}x')} | {f(r, 'peak_rss_mb')} |")
        for p in r["presets"]:
            clicks.append(f"| {r['model']} | {p['preset']} | {f(p, 'first_click_ms')} | {p['first_click_encoder_runs']} | "
                          f"{f(p, 'later_click_ms')} | {f(r, 'official_click_ms')} | {f(p, 'later_vs_official', '{:.2f}x')} |")
    return "\n".join(encoders) + "\n\n" + "\n".join(clicks)
