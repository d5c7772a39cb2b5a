"""``seganypet phantom``: write synthetic whole-body FDG-PET phantoms as an nnU-Net v2 dataset."""
from __future__ import annotations

import argparse
import os


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="write synthetic whole-body FDG-PET phantoms (nnU-Net v2 dataset)",
        description="Write realistic synthetic whole-body FDG-PET phantoms (SUV images at 4.07 x 4.07 x 3 mm, "
                    "expert labels in labelsTr, noisy labels in labelsLQ) as an nnU-Net v2 raw dataset. "
                    "The same --seed gives the same files whatever the number of workers.",
    )
    parser.add_argument("output", metavar="OUT", help="dataset folder to create (e.g. Dataset501_PETPhantom)")
    parser.add_argument("--cases", type=int, default=10, metavar="N", help="training cases (default 10)")
    parser.add_argument("--test-cases", type=int, default=0, metavar="M",
                        help="extra test cases written to imagesTs/labelsTs (default 0)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="K",
                        help="parallel processes (default: CPU cores, at most 4)")
    parser.add_argument("--severity", type=float, default=None, metavar="X",
                        help="noisy-label severity in [0, 1] (default 0.5: label Dice mostly 0.75-0.95)")
    parser.add_argument("--preview", action="store_true",
                        help="also write previews/<case>.png (coronal MIP with label outlines) and previews/overview.png")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder, replacing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import SegAnyPETError
    from ..io import cause_of, ensure_writable_folder
    from ..phantom.dataset import write_dataset
    from ..phantom.noisy_labels import DEFAULT_SEVERITY

    ensure_writable_folder(args.output)
    try:
        summary = write_dataset(
            args.output,
            cases=args.cases,
            seed=args.seed,
            test_cases=args.test_cases,
            workers=args.workers,
            severity=DEFAULT_SEVERITY if args.severity is None else args.severity,
            preview=args.preview,
            overwrite=args.overwrite,
            progress=not getattr(args, "quiet", False),
        )
    except OSError as error:
        raise SegAnyPETError(f"cannot write the dataset {args.output}: {cause_of(error)}") from error
    print(f"wrote {summary['training']} training and {summary['test']} test phantoms to {summary['out']} "
          f"in {summary['seconds']:.1f} s")
    scores = [d for case in summary["cases"] for name, d in case.get("noisy_label_dice", {}).items() if name != "lesion"]
    if scores:
        low, median, high = np.percentile(scores, [10, 50, 90])
        print(f"noisy labels (labelsLQ) vs expert labels, organ Dice: mean {np.mean(scores):.3f}, "
              f"median {median:.3f}, 10th-90th percentile {low:.3f}-{high:.3f}")
    return 0
