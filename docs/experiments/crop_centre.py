"""How a model's one-click Dice depends on where the clicked object lies in its crop.

The session centres a new object's crop on its first click (with the ``official`` preset the click
lies at crop voxel ``size // 2``), as the networks were trained (crops centred on a voxel of their
target). This script moves the centre of each object's first crop away from the first click by each
offset (mm, in a random direction fixed per click, one in which the crop still holds the click) and
runs the one-click protocol of ``seganypet evaluate`` on every target of every case, with that crop
alone (``interior_crop`` off; other options from the model's preset, ``--preset`` and ``--set``):

    python docs/experiments/crop_centre.py --model demo --data phantoms_val --offsets 0,8,16,32,48

The numbers in docs/experiments/LOG.md (2026-11-25, crop centred on the first click) were measured
at commit 36af631 / e60f88e, with the session of then.
"""
from __future__ import annotations

import argparse
import zlib

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.commands.inference_args import add_inference_arguments, inference_options
from SegAnyPETLib.data import load_case, open_dataset
from SegAnyPETLib.evaluate import ModelSegmenter, evaluate_case
from SegAnyPETLib.inference.crops import ObjectCrops
from SegAnyPETLib.labels import SEEN_ORGANS
from SegAnyPETLib.preprocessing import CropGrid
from SegAnyPETLib.session import InteractiveSession


class OffsetSession(InteractiveSession):
    """A session whose first crop of each object is centred ``offset`` mm away from the first click."""

    def __init__(self, model, offset: float, preset=None, **overrides) -> None:
        self.offset = offset
        super().__init__(model, preset, device="cpu", **{"interior_crop": False, **overrides})

    def _object_crops(self, crops=()) -> ObjectCrops:
        object_crops = super()._object_crops(crops)
        place = object_crops.place

        def shifted_place(click: np.ndarray) -> CropGrid:
            grid = place(click)
            if object_crops.crops or not self.offset:  # not the object's first crop: as the session places it
                return grid
            rng = np.random.default_rng(zlib.crc32(np.round(click, 3).tobytes()))
            # a direction in which the crop still holds the click (near the image's border the crop
            # is already moved off the click to stay inside the image)
            for _ in range(100):
                direction = rng.normal(size=3)
                moved = CropGrid.around(grid.center + self.offset * direction / np.linalg.norm(direction),
                                        self.model.preprocessing, self.image)
                if moved.contains(click, margin=1):
                    return moved
            return grid

        object_crops.place = shifted_place
        return object_crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--data", required=True)
    parser.add_argument("--offsets", default="0,8,16,32,48", help="distances of the crop centre from the click, mm")
    add_inference_arguments(parser)
    args = parser.parse_args()
    preset, overrides = inference_options(args)

    model = load_model(args.model, device="cpu")
    segmenters = []
    for value in args.offsets.split(","):
        segmenter = ModelSegmenter(model, device="cpu", name=f"{float(value):g} mm")
        segmenter.session = OffsetSession(model, float(value), preset, **overrides)
        segmenters.append(segmenter)
    results = []
    for case in tqdm(open_dataset(args.data).cases, desc="cases", unit="case"):
        image, label = load_case(case)
        array = sitk.GetArrayFromImage(label)
        results += evaluate_case(segmenters, case.case_id, image, array, case.labels, clicks=(1,))

    groups = [("five seen organs", lambda t: t in SEEN_ORGANS), ("other targets", lambda t: t not in SEEN_ORGANS),
              ("all targets", lambda t: True)] + [(name, lambda t, n=name: t == n) for name in SEEN_ORGANS]
    print(f"{args.model}, preset {args.preset or 'of the model'}, interior_crop off"
          + "".join(f", {key}={value}" for key, value in overrides.items()) + "\n")
    print("| one-click Dice | " + " | ".join(s.name for s in segmenters) + " |")
    print("|---" * (len(segmenters) + 1) + "|")
    for group, keep in groups:
        values = [[r.dice for r in results if r.method == s.name and keep(r.target)] for s in segmenters]
        print(f"| {group} | " + " | ".join(f"{np.mean(v):.3f}" if v else "-" for v in values) + " |")


if __name__ == "__main__":
    main()
