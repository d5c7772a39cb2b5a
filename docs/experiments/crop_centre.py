"""How a model's one-click Dice depends on where the clicked object lies in its crop.

The session centres a new object's crop on its first click, as the networks were trained (crops
centred on a voxel of their target) and as the official protocol does. This script moves the crop's
centre away from the first click by each offset (mm, in a random direction fixed per click, one in
which the crop still holds the click) and runs the one-click protocol of ``seganypet evaluate`` on
every target of every case, with that crop alone (the session's interior crop off):

    python docs/experiments/crop_centre.py --model demo --data phantoms_val --offsets 0,8,16,32,48
"""
from __future__ import annotations

import argparse
import zlib
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from SegAnyPETLib.checkpoints import load_model
from SegAnyPETLib.data import load_case, open_dataset
from SegAnyPETLib.evaluate import ModelSegmenter, evaluate_case
from SegAnyPETLib.labels import SEEN_ORGANS
from SegAnyPETLib.preprocessing import CropGrid
from SegAnyPETLib.session import InteractiveSession


class OffsetSession(InteractiveSession):
    """A session whose first crop of each object is centred ``offset`` mm away from the first click."""

    def __init__(self, model, offset: float) -> None:
        super().__init__(model, device="cpu", interior_crop=False)  # the crop at the click alone
        self.offset = offset

    def _new_crop(self, grid: CropGrid, seeds: Sequence = ()):
        if not seeds and self.offset:  # an object's first crop (added crops of large organs carry seeds)
            click = self._points[-1].lps
            rng = np.random.default_rng(zlib.crc32(np.round(click, 3).tobytes()))
            # a direction in which the crop still holds the click (near the image's border the crop
            # is already moved off the click to stay inside the image)
            for _ in range(100):
                direction = rng.normal(size=3)
                shifted = CropGrid.around(grid.center + self.offset * direction / np.linalg.norm(direction),
                                          self.preprocessing, self.image)
                if shifted.contains(click, margin=1):
                    grid = shifted
                    break
        return super()._new_crop(grid, seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--data", required=True)
    parser.add_argument("--offsets", default="0,8,16,32,48", help="distances of the crop centre from the click, mm")
    args = parser.parse_args()

    model = load_model(args.model, device="cpu")
    segmenters = []
    for value in args.offsets.split(","):
        segmenter = ModelSegmenter(model, device="cpu", name=f"{float(value):g} mm")
        segmenter.session = OffsetSession(model, float(value))
        segmenters.append(segmenter)
    results = []
    for case in tqdm(open_dataset(args.data).cases, desc="cases", unit="case"):
        image, label = load_case(case)
        array = sitk.GetArrayFromImage(label)
        results += evaluate_case(segmenters, case.case_id, image, array, case.labels, clicks=(1,))

    groups = [("five seen organs", lambda t: t in SEEN_ORGANS), ("other targets", lambda t: t not in SEEN_ORGANS),
              ("all targets", lambda t: True)] + [(name, lambda t, n=name: t == n) for name in SEEN_ORGANS]
    print("| one-click Dice | " + " | ".join(s.name for s in segmenters) + " |")
    print("|---" * (len(segmenters) + 1) + "|")
    for group, keep in groups:
        means = [np.mean([r.dice for r in results if r.method == s.name and keep(r.target)]) for s in segmenters]
        print(f"| {group} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
