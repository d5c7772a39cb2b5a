"""Which labelled neighbours a model's one-click masks take in, and what each costs in Dice.

Runs the one-click protocol of ``seganypet evaluate`` (the same first click; the model's own preset
unless ``--preset`` / ``--set`` say otherwise) on each target of every case and splits each mask's
false positives by the label they carry. For every target it prints the mean Dice and, for each
other label that takes up at least 1 % of the masks on average (unlabelled tissue as well), its
share of the mask and the Dice the target would have without those voxels:

    python docs/experiments/confusions.py --model demo --data phantoms_test --targets heart,spleen
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.commands.inference_args import add_inference_arguments, inference_options
from SegAnyPETLib.data import load_case, open_dataset
from SegAnyPETLib.evaluate import ModelSegmenter, click_seed, run_protocol
from SegAnyPETLib.metrics import dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--data", required=True)
    parser.add_argument("--targets", help="comma-separated names (default: every label)")
    parser.add_argument("--seed", type=int, default=0, help="the click seed of seganypet evaluate")
    add_inference_arguments(parser)
    args = parser.parse_args()
    preset, overrides = inference_options(args)

    dataset = open_dataset(args.data, split="auto")
    wanted = dataset.select_targets(args.targets.split(",") if args.targets else None)
    names = {0: "(unlabelled)", **{value: name for name, value in dataset.labels.items() if value}}
    segmenter = ModelSegmenter(load_model(args.model, device="cpu"), device="cpu", preset=preset, **overrides)
    dices = defaultdict(list)  # target -> Dice per case
    shares = defaultdict(lambda: defaultdict(list))  # target -> neighbour -> share of the mask per case
    without = defaultdict(lambda: defaultdict(list))  # target -> neighbour -> Dice without its voxels
    for case in tqdm(dataset.cases, desc="cases", unit="case"):
        image, label = load_case(case)
        array = sitk.GetArrayFromImage(label)
        segmenter.set_image(image)
        for target, value in wanted.items():
            truth = array == value
            if target not in case.labels or not truth.any():
                continue
            rng = np.random.default_rng(click_seed(args.seed, case.case_id, target))
            mask = run_protocol(segmenter, truth, (1,), rng, target)[1].astype(bool)
            dices[target].append(dice(mask, truth))
            for other, neighbour in names.items():
                if other != value:
                    taken = mask & (array == other)
                    shares[target][neighbour].append(taken.sum() / max(mask.sum(), 1))
                    without[target][neighbour].append(dice(mask & ~taken, truth))

    print(f"One-click masks of {segmenter.name} on {args.data}: the labelled neighbours they take in\n")
    print("| target | Dice | neighbour | share of the mask | Dice without it |\n|---|---|---|---|---|")
    for target, values in dices.items():
        print(f"| {target} | {np.mean(values):.3f} | | | |")
        for neighbour, share in sorted(shares[target].items(), key=lambda item: -np.mean(item[1])):
            if np.mean(share) >= 0.01:
                print(f"| | | {neighbour} | {100 * np.mean(share):.1f} % | {np.mean(without[target][neighbour]):.3f} |")


if __name__ == "__main__":
    main()
