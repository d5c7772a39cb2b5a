"""How the session's crop extension and its agreement gate change a model's Dice.

Runs the evaluation protocol (1, 3 and 5 clicks) on the last N training cases of a dataset (the
validation cases a training run held out) with crop extension off, and on with several
agreement thresholds (0 keeps every added crop):

    python docs/experiments/crop_extension.py --model demo --data phantoms_train --cases 4 \
        --agreement 0,0.7,0.8,0.9,0.95 [--all-islands]
"""
from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.data import load_case, open_dataset
from SegAnyPETLib.evaluate import ModelSegmenter, evaluate_case
from SegAnyPETLib.labels import SEEN_ORGANS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--data", required=True)
    parser.add_argument("--cases", type=int, default=4, help="the last N training cases")
    parser.add_argument("--agreement", default="0,0.7,0.8,0.9,0.95")
    parser.add_argument("--all-islands", action="store_true", help="keep the islands no positive click touches")
    args = parser.parse_args()

    model = load_model(args.model, device="cpu")
    cases = list(open_dataset(args.data, split="train").cases)[-args.cases :]
    loaded = [(case, *load_case(case)) for case in cases]
    settings = [("off", None)] + [(f"agreement {value}", float(value)) for value in args.agreement.split(",")]
    print("| extension | all targets | five seen organs | liver | brain |")
    print("|---|---|---|---|---|")
    for name, agreement in settings:
        segmenter = ModelSegmenter(model, device="cpu", clicked_islands_only=not args.all_islands)
        segmenter.session.extend = agreement is not None
        segmenter.session.extension_agreement = agreement or 0.0
        results = []
        for case, image, label in loaded:
            results += evaluate_case([segmenter], case.case_id, image, sitk.GetArrayFromImage(label), case.labels)

        def mean(keep) -> str:
            return f"{np.mean([r.dice for r in results if keep(r.target)]):.4f}"

        print(f"| {name} | {mean(lambda t: True)} | {mean(lambda t: t in SEEN_ORGANS)} | "
              f"{mean(lambda t: t == 'liver')} | {mean(lambda t: t == 'brain')} |", flush=True)


if __name__ == "__main__":
    main()
