"""How the session's crop extension and its agreement gate change a model's Dice.

Runs the evaluation protocol (1, 3 and 5 clicks) on the last N training cases of a dataset (the
validation cases a training run held out) with crop extension off (``extend=false``), and on with
several agreement thresholds (``extension_agreement``; 0 keeps every added crop). The other options
come from the model's preset, ``--preset`` and ``--set``; a config allowing one crop per object gets
``max_crops=6`` (the bundled preset's) so that extension can add crops:

    python docs/experiments/crop_extension.py --model demo --data phantoms_train --cases 4 \
        --agreement 0,0.7,0.8,0.9,0.95 [--preset P] [--set KEY=VALUE ...]

The numbers in docs/experiments/LOG.md (2026-11-24, crop extension agreement gate) were measured at
commit 2408634, with the session of then (no clicked islands, contrast edge, interior crop or part
check; nearest-neighbour paste-back).
"""
from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.commands.inference_args import add_inference_arguments, inference_options
from SegAnyPETLib.data import load_case, open_dataset
from SegAnyPETLib.evaluate import ModelSegmenter, evaluate_case
from SegAnyPETLib.inference.config import resolve_config
from SegAnyPETLib.labels import SEEN_ORGANS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--data", required=True)
    parser.add_argument("--cases", type=int, default=4, help="the last N training cases")
    parser.add_argument("--agreement", default="0,0.7,0.8,0.9,0.95")
    add_inference_arguments(parser)
    args = parser.parse_args()
    preset, overrides = inference_options(args)

    model = load_model(args.model, device="cpu")
    if resolve_config(model, preset, **overrides).max_crops < 2:
        overrides["max_crops"] = 6
    cases = list(open_dataset(args.data, split="train").cases)[-args.cases :]
    loaded = [(case, *load_case(case)) for case in cases]
    settings = [("off", {"extend": False})] + [
        (f"agreement {value}", {"extend": True, "extension_agreement": float(value)}) for value in args.agreement.split(",")]
    print("| extension | all targets | five seen organs | liver | brain |")
    print("|---|---|---|---|---|")
    for name, extension in settings:
        segmenter = ModelSegmenter(model, device="cpu", preset=preset, **{**overrides, **extension})
        results = []
        for case, image, label in loaded:
            results += evaluate_case([segmenter], case.case_id, image, sitk.GetArrayFromImage(label), case.labels)

        def mean(keep) -> str:
            values = [r.dice for r in results if keep(r.target)]
            return f"{np.mean(values):.4f}" if values else "-"

        print(f"| {name} | {mean(lambda t: True)} | {mean(lambda t: t in SEEN_ORGANS)} | "
              f"{mean(lambda t: t == 'liver')} | {mean(lambda t: t == 'brain')} |", flush=True)


if __name__ == "__main__":
    main()
