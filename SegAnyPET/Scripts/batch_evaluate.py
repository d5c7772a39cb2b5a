"""Evaluate a model with simulated clicks through Slicer's MRML nodes (batch mode of the SegAnyPET module).

Every case is loaded into a volume node, every target gets a new segment, every simulated click is
a point added to a markups list, and the mask is read back from the segment, exactly as in the
module. The outputs are those of ``seganypet evaluate``: results.csv, summary.md and summary.png.

In 3D Slicer (PyTorch and the packages installed, e.g. by opening the SegAnyPET module once)::

    Slicer --no-main-window --python-script SegAnyPET/Scripts/batch_evaluate.py -- \\
        --data Dataset501_PETPhantom --model demo --clicks 1,3,5 --out results/slicer

With plain Python and the ``slicer-core`` wheel (``pip install slicer-core``), the same script::

    python SegAnyPET/Scripts/batch_evaluate.py --data Dataset501_PETPhantom --model demo --out results/slicer

The extension installs this script as ``<extension>/lib/Slicer-X.Y/qt-scripted-modules/SegAnyPETScripts/batch_evaluate.py``.
Exits with 0 on success, 2 with a one-line message on bad input, 1 on any other failure (after its
traceback).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# The library: beside this script's folder in the installed extension (qt-scripted-modules/SegAnyPETScripts),
# at the top of the repository in a source checkout (SegAnyPET/Scripts).
for _folder in Path(__file__).resolve().parents[1:3]:
    if (_folder / "SegAnyPETLib").is_dir():
        if str(_folder) not in sys.path:
            sys.path.insert(0, str(_folder))
        break


def build_parser() -> argparse.ArgumentParser:
    from SegAnyPETLib.commands.evaluate import parse_clicks, parse_lesion_targets
    from SegAnyPETLib.commands.inference_args import add_inference_arguments

    parser = argparse.ArgumentParser(
        prog="batch_evaluate.py",
        description="Simulated clicks through SegAnyPET's Slicer logic and MRML nodes: results.csv, summary.md "
        "and summary.png in OUT (the outputs of `seganypet evaluate`).",
    )
    parser.add_argument("--data", required=True, help="dataset folder (nnU-Net, AutoPET or SAM-Med3D layout)")
    parser.add_argument("--model", default="demo", help="registry name, checkpoint file or hf://... (default: demo)")
    parser.add_argument("--clicks", type=parse_clicks, default=[1, 3, 5], help="click counts to report (default 1,3,5)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--targets", help="comma-separated target names (default: every label)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated clicks")
    parser.add_argument("--shard", help="i/n: evaluate every n-th case starting at i (0-based)")
    add_inference_arguments(parser)  # --preset and --set, as in seganypet evaluate
    parser.add_argument("--lesion-targets", type=parse_lesion_targets, default=[], metavar="NAMES",
                        help="comma-separated targets segmented as lesions, as seganypet evaluate --lesion-targets")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def evaluate(args: argparse.Namespace) -> None:
    from SegAnyPETLib.checkpoints import load_model
    from SegAnyPETLib.commands.inference_args import inference_options
    from SegAnyPETLib.evaluate import evaluate_dataset
    from SegAnyPETLib.slicer_batch import MRMLSegmenter
    from SegAnyPETLib.slicer_headless import headless_slicer

    headless_slicer()  # inside Slicer: the application's scene
    targets = [t.strip() for t in args.targets.split(",")] if args.targets else None
    preset, overrides = inference_options(args)
    evaluate_dataset(
        lambda: [MRMLSegmenter(load_model(args.model, args.device), args.device, preset=preset,
                               lesionTargets=args.lesion_targets, **overrides)],
        args.data,
        args.out,
        args.clicks,
        targets,
        args.seed,
        args.shard,
        args.overwrite,
        title=f"Evaluation of {args.model} on {args.data} (3D Slicer logic)",
        progress=not args.quiet,
        lesion_targets=args.lesion_targets,
    )


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # Slicer --python-script <script> -- <arguments>
        argv = argv[1:]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        from SegAnyPETLib.errors import SegAnyPETError
    except ImportError as error:
        print(f"batch_evaluate: error: SegAnyPETLib cannot be imported ({error}); install its packages", file=sys.stderr)
        return 1
    args = build_parser().parse_args(argv)
    try:
        evaluate(args)
    except SegAnyPETError as error:
        print(f"batch_evaluate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("batch_evaluate: cancelled", file=sys.stderr)
        return 130
    except Exception as error:  # an unexpected failure: its traceback (printed: logged at ERROR), then one line
        logging.getLogger("batch_evaluate").error("batch evaluation failed", exc_info=True)
        print(f"batch_evaluate: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print((Path(args.out) / "summary.md").read_text() if not args.shard else f"shard {args.shard} written to {args.out}")
    return 0


def _exit(status: int) -> None:
    try:
        import slicer
    except ImportError:
        slicer = None
    if slicer is not None and hasattr(slicer, "app"):
        slicer.util.exit(status)  # quits the application with this status
    else:
        sys.exit(status)


if __name__ == "__main__":
    try:
        status = main()
    except SystemExit as stop:  # argparse errors and --help
        status = stop.code if isinstance(stop.code, int) else 2
    _exit(status)
