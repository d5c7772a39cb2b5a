"""``seganypet train``: the headless trainer (same options as ``python -m SegAnyPETLib.train``)."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    from ..train import add_arguments, run_from_args

    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a model (SAM-Med3D recipe, CPCL)",
        description="Train with simulated clicks; CPCL learns from a few expert and many noisy labels. "
        "For many GPUs: torchrun --nproc_per_node G -m SegAnyPETLib.train ...",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_from_args)
