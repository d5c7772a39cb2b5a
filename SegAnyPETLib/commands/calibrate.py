"""``seganypet calibrate``: choose a checkpoint's mask threshold on held-out validation cases."""
from __future__ import annotations

import argparse

from .evaluate import comma_list, parse_clicks
from .inference_args import add_inference_arguments, inference_options

parse_thresholds = comma_list(float, lambda p: 0 < p < 1, "--thresholds", "probabilities in (0, 1) like 0.2,0.3,0.5")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="choose a checkpoint's mask threshold on validation cases",
        description="Run simulated clicks on the last N training-split cases of a dataset (the cases a "
        "training run held out with --val-cases; never the test set) at several mask thresholds and "
        "write a copy of the checkpoint that uses the threshold with the best mean Dice.",
    )
    parser.add_argument("--model", required=True, help="registry name, checkpoint file or hf://...")
    parser.add_argument("--data", required=True, help="dataset folder (its training split is read)")
    parser.add_argument("--out", required=True, help="the calibrated checkpoint (.pt)")
    parser.add_argument("--cases", type=int, help="use the last N cases (default: every training case)")
    parser.add_argument("--thresholds", type=parse_thresholds, default=[0.2, 0.3, 0.4, 0.5],
                        help="candidate probabilities (default 0.2,0.3,0.4,0.5)")
    parser.add_argument("--clicks", type=parse_clicks, default=[1, 3, 5], help="click counts to average (default 1,3,5)")
    parser.add_argument("--targets", help="comma-separated target names (default: every label)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated clicks")
    add_inference_arguments(parser)  # the session the threshold is for (e.g. --set mirror=true: smoother probabilities)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..calibration import calibrate_checkpoint

    targets = [t.strip() for t in args.targets.split(",")] if args.targets else None
    preset, overrides = inference_options(args)
    best, table = calibrate_checkpoint(args.model, args.data, args.out, args.cases, args.thresholds, args.clicks,
                                       targets, args.seed, args.device, args.overwrite, preset=preset, **overrides)
    print("threshold  mean Dice")
    for threshold, score in table.items():
        print(f"{threshold:9.2f}  {score:.4f}{'  <- chosen' if threshold == best else ''}")
    print(f"{args.out}: mask threshold {best:g}")
    return 0
