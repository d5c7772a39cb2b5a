"""``seganypet bench``: embedding time, click latency and peak memory."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark embedding time, click latency and memory",
        description="Times the image encoder (ours and the official padded computation), a click (ours and the "
        "official decoder path) and peak memory, for vit_b_ori (official weights when cached, else random) and "
        "the bundled model, plus the SUV statistics of a whole-body volume.",
    )
    parser.add_argument("--model", action="append", default=[],
                        help="model to time (repeatable): registry name, file, or random:ARCH (default: vit_b_ori and demo)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow official-encoder timing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..bench import bench_statistics, environment, format_table, run_benchmarks
    from ..checkpoints import cached_path

    models = args.model
    if not models:
        official = next((n for n in ("seganypet-v2", "seganypet-v1", "seganypet-lesion", "sam-med3d-turbo") if cached_path(n)), None)
        models = [official or "random:vit_b_ori", "demo"]
    results = run_benchmarks(models, args.device, args.repeats, reference=not args.no_reference)
    stats = bench_statistics()
    if args.json:
        print(json.dumps({"environment": environment(), "models": results, "statistics": stats}, indent=2))
    else:
        env = environment()
        print(f"torch {env['torch']}, {env['cpus']} CPUs ({env['threads']} threads), CUDA: {env['cuda'] or 'none'}\n")
        print(format_table(results))
        print(f"\nSUV statistics of {stats['voxels'] / 1e6:.0f} M voxels with {stats['segments']:.0f} segments: "
              f"{stats['label_image_s']:.2f} s from a label image, {stats['masks_s']:.2f} s from masks")
    return 1 if any("error" in r for r in results) else 0
