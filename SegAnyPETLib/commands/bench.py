"""``seganypet bench``: embedding time, click latency per inference preset, and peak memory; with
``--slicer``, a click through a real offscreen Slicer slice view (:mod:`SegAnyPETLib.slicer_bench`)."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional

from .inference_args import add_inference_arguments, inference_options


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark embedding time, click latency and memory",
        description="On a whole-body phantom: the image encoder (ours and the official padded computation); per "
        "inference preset a first click on the liver (and its encoder runs) and a later click, next to the official "
        "click path; peak memory; for vit_b_ori (official weights when cached, else random) and the bundled model, "
        "plus the SUV statistics of a whole-body volume. With --slicer: from a mouse event in an offscreen Slicer "
        "slice view (slicer-core) to the segment modified, a first click and later clicks, per model.",
    )
    parser.add_argument("--model", action="append", default=[],
                        help="model to time (repeatable): registry name, file, or random:ARCH (default: vit_b_ori and "
                        "demo; with --slicer: demo and random:vit_b_ori)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (with --slicer: later clicks) per median")
    parser.add_argument("--slicer", action="store_true",
                        help="time clicks in a real offscreen Slicer slice view through the module's logic and "
                        "background runner: mouse event to segment modified (needs slicer-core)")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow official-encoder timing")
    add_inference_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..bench import bench_statistics, environment, format_tables, run_benchmarks
    from ..checkpoints import cached_path
    from ..errors import SegAnyPETError

    if args.repeats < 1:
        raise SegAnyPETError(f"--repeats must be at least 1, got {args.repeats}")
    preset, overrides = inference_options(args)
    if args.slicer:
        return run_slicer(args, preset, overrides)
    models = args.model
    if not models:
        official = next((n for n in ("seganypet-v2", "seganypet-v1", "seganypet-lesion", "sam-med3d-turbo") if cached_path(n)), None)
        models = [official or "random:vit_b_ori", "demo"]
    presets = [preset] if preset else [None, "official"]  # None: the model's own
    results = run_benchmarks(models, args.device, args.repeats, reference=not args.no_reference, presets=presets,
                             overrides=overrides)
    stats = bench_statistics()
    if args.json:
        print(json.dumps({"environment": environment(), "models": results, "statistics": stats}, indent=2))
    else:
        env = environment()
        print(f"torch {env['torch']}, {env['cpus']} CPUs ({env['threads']} threads), CUDA: {env['cuda'] or 'none'}\n")
        print(format_tables(results))
        print(f"\nSUV statistics of {stats['voxels'] / 1e6:.0f} M voxels with {stats['segments']:.0f} segments: "
              f"{stats['label_image_s']:.2f} s from a label image, {stats['masks_s']:.2f} s from masks")
    return 1 if any("error" in r for r in results) else 0


def run_slicer(args: argparse.Namespace, preset: Optional[str], overrides: Dict[str, Any]) -> int:
    """``--slicer``: :func:`SegAnyPETLib.slicer_bench.slicerClickBenchmark`, printed as a table (or JSON)."""
    import json

    from ..errors import SegAnyPETError

    try:
        import slicer  # noqa: F401  (the slicer-core wheel, or Slicer's Python)
        import vtk  # noqa: F401
    except ImportError as error:
        raise SegAnyPETError(f"--slicer needs the slicer-core wheel (pip install slicer-core) or Slicer's Python: {error}") from None
    from ..device import resolve_device
    from ..slicer_bench import MODELS, formatSlicerTable, slicerClickBenchmark

    results = slicerClickBenchmark(args.model or MODELS, str(resolve_device(args.device)), laterClicks=args.repeats,
                                   preset=preset, overrides=overrides)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{results['what']}; {results['case_size'][0]} x {results['case_size'][1]} x {results['case_size'][2]} "
              f"voxels, device {results['device']}, {results['torch_threads']} torch threads, {results['machine']}\n")
        print(formatSlicerTable(results))
    return 0
