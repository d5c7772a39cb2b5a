"""``seganypet demo``: the whole job on the bundled model, offline, in under a minute.

Makes a synthetic whole-body FDG-PET phantom, segments its organs from simulated clicks (the
evaluation protocol), writes the masks, an SUV statistics CSV and an overlay PNG, and prints Dice
and the SUV statistics.
"""
from __future__ import annotations

import argparse

DEFAULT_TARGETS = ("liver", "spleen", "kidney_left", "kidney_right", "heart", "aorta", "brain", "urinary_bladder")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="segment the organs of a synthetic PET phantom with the bundled model",
        description="Generate a phantom, segment organs from simulated clicks, write masks, statistics and an overlay.",
    )
    parser.add_argument("--out", default="seganypet-demo", help="output folder (default: seganypet-demo)")
    parser.add_argument("--model", default="demo", help="model (default: the bundled demo model)")
    parser.add_argument("--seed", type=int, default=2025, help="phantom seed (default 2025, never used in training)")
    parser.add_argument("--clicks", type=int, default=1, help="simulated clicks per organ (default 1)")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated targets (lesion: in lesion mode)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier demo in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import numpy as np
    import SimpleITK as sitk

    from ..checkpoints import load_model
    from ..errors import SegAnyPETError
    from ..evaluate import ModelSegmenter, click_seed, run_protocol
    from ..io import ensure_writable, write_image
    from ..labels import LABELS, display_name
    from ..metrics import dice
    from ..phantom import generate_case
    from ..phantom.preview import save_preview_grid
    from ..stats import label_image_statistics, write_statistics_csv

    started = time.perf_counter()
    out = Path(args.out)
    files = {name: out / name for name in ("pet.nii.gz", "ground_truth.nii.gz", "segmentation.nii.gz", "statistics.csv", "overlay.png")}
    for path in files.values():
        ensure_writable(path, args.overwrite)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in LABELS]
    if unknown:
        raise SegAnyPETError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(LABELS)}")
    if args.clicks < 1:
        raise SegAnyPETError("--clicks must be at least 1")

    print(f"1/4 phantom (seed {args.seed}) ...", flush=True)
    case = generate_case(args.seed, noisy=False)
    truth = sitk.GetArrayFromImage(case.label)
    print("2/4 model ...", flush=True)
    model = load_model(args.model, args.device)
    segmenter = ModelSegmenter(model, device=args.device, name=str(args.model), lesion_targets=["lesion"])
    segmenter.set_image(case.image)
    print(f"3/4 segmenting {len(targets)} targets with {args.clicks} simulated click(s) each ...", flush=True)
    segmentation = np.zeros_like(truth, dtype=np.uint8)
    scores = {}
    for name in targets:
        target = truth == LABELS[name]
        if not target.any():
            print(f"    {display_name(name)}: not in this phantom, skipped")
            continue
        rng = np.random.default_rng(click_seed(args.seed, "demo", name))
        mask = run_protocol(segmenter, target, [args.clicks], rng, name)[args.clicks].astype(bool)
        scores[name] = dice(mask, target)
        segmentation[mask & (segmentation == 0)] = LABELS[name]  # earlier organs keep overlapping voxels

    print("4/4 statistics and overlay ...", flush=True)
    seg_image = sitk.GetImageFromArray(segmentation)
    seg_image.CopyInformation(case.image)
    write_image(case.image, files["pet.nii.gz"], args.overwrite)
    write_image(case.label, files["ground_truth.nii.gz"], args.overwrite)
    write_image(seg_image, files["segmentation.nii.gz"], args.overwrite)
    rows = label_image_statistics(case.image, seg_image)  # the SegAnyPET names of the labels present
    write_statistics_csv(rows, files["statistics.csv"], args.overwrite)
    save_preview_grid(
        [(case.image, case.label, "ground truth"), (case.image, seg_image, f"{model.source}, {args.clicks} click(s)")],
        files["overlay.png"], overwrite=args.overwrite,
    )

    print(f"\n{'organ':<22}{'Dice':>6}{'SUVmax':>9}{'SUVmean':>9}{'SUVpeak':>9}{'volume mL':>11}")
    by_name = {row.segment: row for row in rows}
    for name, score in scores.items():
        row = by_name.get(name)
        values = (row.suv_max, row.suv_mean, row.suv_peak, row.volume_ml) if row else (float("nan"),) * 4
        print(f"{display_name(name):<22}{score:>6.3f}{values[0]:>9.2f}{values[1]:>9.2f}{values[2]:>9.2f}{values[3]:>11.1f}")
    if scores:
        print(f"{'mean Dice':<22}{np.mean(list(scores.values())):>6.3f}")
    print(f"\nwrote {', '.join(str(p) for p in files.values())}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
