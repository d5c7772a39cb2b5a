"""``seganypet bench``: embedding time, click latency per inference preset, and peak memory."""
from __future__ import annotations

import argparse

from .inference_args import add_inference_arguments, inference_options


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark embedding time, click latency and memory",
        description="On a whole-body phantom: the image encoder (ours and the official padded computation); per "
        "inference preset a first click on the liver (and its encoder runs) and a later click, next to the official "
        "click path; peak memory; for vit_b_ori (official weights when cached, else random) and the bundled model, "
        "plus the SUV statistics of a whole-body volume.",
    )
    parser.add_argument("--model", action="append", default=[],
                        help="model to time (repeatable): registry name, file, or random:ARCH (default: vit_b_ori and demo)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
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
