"""``seganypet evaluate``: Dice and NSD at 1/3/5 simulated clicks, with classical baselines."""
from __future__ import annotations

import argparse

from .inference_args import add_inference_arguments, inference_options


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
parse_lesion_targets = comma_list(str.strip, bool, "--lesion-targets", "target names like lesion,tumor")


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
    add_inference_arguments(parser)
    parser.add_argument("--lesion-targets", type=parse_lesion_targets, default=[], metavar="NAMES",
                        help="comma-separated targets the model segments as lesions: the focal uptake at each click "
                        "(seganypet segment --lesion)")
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
    preset, overrides = inference_options(args)

    def segmenters():
        methods = [] if args.no_model else [ModelSegmenter(load_model(args.model, args.device), args.device, preset=preset,
                                                         lesion_targets=args.lesion_targets, **overrides)]
        return methods + [make_baseline(name) for name in args.baseline]

    targets = [t.strip() for t in args.targets.split(",")] if args.targets else None
    evaluate_dataset(segmenters, args.data, args.out, args.clicks, targets, args.seed, args.shard, args.overwrite,
                     title=f"Evaluation of {args.model if not args.no_model else 'baselines'} on {args.data}",
                     lesion_targets=args.lesion_targets)
    print((open(f"{args.out}/summary.md").read()) if not args.shard else f"shard {args.shard} written to {args.out}")
    return 0
