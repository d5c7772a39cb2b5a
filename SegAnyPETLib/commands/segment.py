"""``seganypet segment``: segment one target in a PET image from points."""
from __future__ import annotations

import argparse
import logging

from .inference_args import add_inference_arguments, inference_options

logger = logging.getLogger(__name__)


def parse_point(text: str):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not a point X,Y,Z")
    return values


class _Click(argparse.Action):
    """``--point`` / ``--negative``: (point, positive) appended to ``clicks`` in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.clicks = list(getattr(namespace, "clicks", None) or []) + [(values, self.const)]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment a target from positive/negative points",
        description="Segment one target in a PET image from points and write the mask on the input grid.",
    )
    parser.add_argument("image", help="PET image (NIfTI, NRRD, MHA...)")
    parser.add_argument("-o", "--output", required=True, help="output mask file (uint8, same grid as IMAGE)")
    parser.add_argument("--model", default="auto", help="registry name, checkpoint file or hf://owner/repo/file (default: auto)")
    parser.add_argument("--point", type=parse_point, action=_Click, dest="clicks", const=True, default=[], metavar="X,Y,Z",
                        help="positive point (repeatable; points are clicked in the order given); write --point=X,Y,Z "
                        "when X is negative")
    parser.add_argument("--negative", type=parse_point, action=_Click, dest="clicks", const=False, metavar="X,Y,Z",
                        help="negative point (repeatable)")
    parser.add_argument("--space", choices=("ijk", "ras", "lps"), default="ijk", help="coordinates of the points (default: ijk voxel index)")
    add_inference_arguments(parser)
    parser.add_argument("--lesion", action="store_true",
                        help="segment a lesion with the config's lesion refiners (bundled: the focal uptake at each "
                        "positive point, against the tissue the network finds there)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import SimpleITK as sitk

    from ..checkpoints import load_model
    from ..errors import SegAnyPETError
    from ..io import ensure_writable, read_image, write_image
    from ..session import InteractiveSession

    if not any(positive for _, positive in args.clicks):
        raise SegAnyPETError("give at least one positive --point X,Y,Z")
    preset, overrides = inference_options(args)
    ensure_writable(args.output, args.overwrite, inputs=[args.image], image=True)
    image = read_image(args.image, "PET image")
    session = InteractiveSession(load_model(args.model, args.device), preset, device=args.device, **overrides)
    session.lesion = args.lesion
    session.set_image(image, name=f"PET image {args.image}")
    for point, positive in args.clicks:  # one click at a time, in the order given
        mask = session.add_click(point, positive=positive, space=args.space)
    for warning in session.warnings:
        logger.warning("warning: %s", warning)
    output = sitk.GetImageFromArray(mask)
    output.CopyInformation(image)
    write_image(output, args.output, overwrite=args.overwrite, inputs=[args.image])
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    print(f"{args.output}: {int(mask.sum())} voxels, {mask.sum() * voxel_ml:.1f} mL, {session.num_crops} crop(s)")
    return 0
