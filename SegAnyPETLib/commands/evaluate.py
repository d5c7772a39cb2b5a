"""``seganypet evaluate``: Dice and NSD at 1/3/5 simulated clicks, with classical baselines."""
from __future__ import annotations

import argparse


def comma_list(convert, valid, option: str, expected: str):
    """An argparse type: sorted unique ``convert``-ed values of "a,b,c", each ``valid``, else one error."""

    def parse(text: str):
        try:
            values = sorted({convert(v) for v in text.split(",") if v.strip()})
        except ValueError:
            values = []
        if not values or not all(valid(v) for v in values):
            raise argparse.ArgumentTypeError(f"{option} {text!r} must be {expected}")
        return values

    return parse


parse_clicks = comma_list(int, lambda count: count >= 1, "--clicks", "positive integers like 1,3,5")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model (and baselines) with simulated clicks",
        description="Simulated clicks on every target of every case (imagesTs/labelsTs when present): "
        "results.csv, summary.md and summary.png in OUT.",
    )
    parser.add_argument("--model", default="auto", help="registry name, checkpoint file or hf://... (default: auto)")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--clicks", type=parse_clicks, default=[1, 3, 5], help="click counts to report (default 1,3,5)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--targets", help="comma-separated target names (default: every label)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated clicks")
    parser.add_argument("--baseline", action="append", choices=("threshold", "growcut"), default=[],
                        help="also run a baseline through the same clicks (repeatable)")
    parser.add_argument("--no-model", action="store_true", help="evaluate only the baselines")
    parser.add_argument("--mask-threshold", type=float,
                        help="probability threshold of the model's masks (default: the checkpoint's, else 0.5)")
    parser.add_argument("--mirror", action="store_true",
                        help="average over the 8 mirrorings of each crop (test-time mirroring: slower, smoother masks)")
    parser.add_argument("--all-islands", action="store_true",
                        help="keep every part of the model's masks, also those no positive click touches")
    parser.add_argument("--no-interior-crop", action="store_true",
                        help="one crop per object at its first click, without the crop centred inside the first mask")
    parser.add_argument("--no-part-check", action="store_true",
                        help="keep every part of the first mask, without clicking its parts to find another object's")
    parser.add_argument("--no-contrast-edge", action="store_true",
                        help="keep the network's edge, without moving it to 40 %% of the local PET contrast")
    parser.add_argument("--shard", help="i/n: evaluate every n-th case starting at i (0-based)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results in OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..baselines import make_baseline
    from ..checkpoints import load_model
    from ..errors import SegAnyPETError
    from ..evaluate import ModelSegmenter, evaluate_dataset

    if args.no_model and not args.baseline:
        raise SegAnyPETError("--no-model needs at least one --baseline")

    def segmenters():
        methods = [] if args.no_model else [ModelSegmenter(load_model(args.model, args.device), device=args.device,
                                                         mask_threshold=args.mask_threshold, mirror=args.mirror,
                                                         clicked_islands_only=not args.all_islands,
                                                         interior_crop=not args.no_interior_crop,
                                                         part_check=not args.no_part_check,
                                                         contrast_edge=not args.no_contrast_edge)]
        return methods + [make_baseline(name) for name in args.baseline]

    targets = [t.strip() for t in args.targets.split(",")] if args.targets else None
    evaluate_dataset(segmenters, args.data, args.out, args.clicks, targets, args.seed, args.shard, args.overwrite,
                     title=f"Evaluation of {args.model if not args.no_model else 'baselines'} on {args.data}")
    print((open(f"{args.out}/summary.md").read()) if not args.shard else f"shard {args.shard} written to {args.out}")
    return 0
