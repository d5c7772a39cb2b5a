"""Render docs/slicer.md's click walkthrough, the extension screenshot and the icons from real slice views.

A synthetic FDG-PET phantom is loaded into a volume node; the module's logic listens to the point
lists; an offscreen Slicer slice view (:class:`SegAnyPETLib.slice_view.SliceView`: slicer-core's
slice logic, displayable managers and markups widgets) receives synthetic left clicks in place
mode, exactly as a user's clicks: the first in the liver, each next one at the centre of the largest
remaining error (a positive point in a missed part, a negative one in a leak). After each click the
view through it is saved: the PET, the segment as Slicer draws it, the phantom's true liver as a
blue outline (a second segmentation) and the points::

    python SegAnyPET/Scripts/render_docs_images.py --model demo --out docs/images
    python SegAnyPET/Scripts/render_docs_images.py --icons   # SegAnyPET.png and the module icon

Needs the ``slicer-core`` wheel (or runs inside Slicer); renders offscreen (no display needed).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

SUV_WINDOW = (8.0, 4.0)  # window, level: SUV 0 to 8
TRUTH_COLOR = (0.25, 0.55, 1.0)
SCREENSHOT = REPOSITORY / "docs" / "images" / "slicer_screenshot.png"
ICONS = (REPOSITORY / "SegAnyPET.png", REPOSITORY / "SegAnyPET" / "Resources" / "Icons" / "SegAnyPET.png")


def next_click(mask: np.ndarray, truth: np.ndarray, spacing_zyx) -> tuple:
    """The voxel deepest inside the largest error region (false negatives or positives) and its polarity."""
    from scipy import ndimage

    best = None
    for region, positive in ((truth & ~mask, True), (mask & ~truth, False)):
        components, count = ndimage.label(region)
        if not count:
            continue
        sizes = ndimage.sum(region, components, index=range(1, count + 1))
        largest = components == (1 + int(np.argmax(sizes)))
        if best is None or largest.sum() > best[0].sum():
            best = (largest, positive)
    region, positive = best
    depth = ndimage.distance_transform_edt(region, sampling=spacing_zyx)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), region.shape)), positive


class Walkthrough:
    """The phantom, its true liver, the target segment, the logic and slice views, in one scene."""

    def __init__(self, model: str, seed: int, organ: str, device: str) -> None:
        import SimpleITK as sitk
        import slicer

        from SegAnyPETLib.labels import LABELS
        from SegAnyPETLib.phantom.generate import generate_case
        from SegAnyPETLib.slicer_headless import headless_slicer
        from SegAnyPETLib.slicer_logic import SegAnyPETLogic, addPromptNodes, addSegment, addVolumeFromImage, volumeIjkToRas

        headless_slicer()
        self.case = generate_case(seed)
        self.organ = organ
        self.truth = sitk.GetArrayFromImage(self.case.label) == LABELS[organ]
        self.volume = addVolumeFromImage(self.case.image, "PET")
        truth = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Phantom truth")
        truth.CreateDefaultDisplayNodes()
        truth.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
        truthId = truth.GetSegmentation().AddEmptySegment("truth", "true " + organ, TRUTH_COLOR)
        slicer.util.updateSegmentBinaryLabelmapFromArray(self.truth.astype(np.uint8), truth, truthId, self.volume)
        truth.GetDisplayNode().SetOpacity2DFill(0.0)  # outline only
        truth.GetDisplayNode().SetSliceIntersectionThickness(2)
        self.segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
        self.segmentation.CreateDefaultDisplayNodes()
        self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
        self.segmentation.GetDisplayNode().SetSliceIntersectionThickness(2)
        self.segmentId = addSegment(self.segmentation, organ)
        self.positive, self.negative = addPromptNodes()
        for node in (self.positive, self.negative):
            node.GetDisplayNode().SetGlyphScale(2.5)
        self.logic = SegAnyPETLogic(model, device)
        self.logic.setInputVolume(self.volume)
        self.logic.setTargetSegment(self.segmentation, self.segmentId)
        self.logic.setPromptNodes(self.positive, self.negative)
        self.ijkToRas = volumeIjkToRas(self.volume)
        self.placed = []

    def ras(self, zyx):
        return list((self.ijkToRas @ [zyx[2], zyx[1], zyx[0], 1.0])[:3])

    def view(self, orientation: str, size, zoom: float, center_zyx, name: str = "Red"):
        from SegAnyPETLib.slice_view import SliceView

        view = SliceView(name=name, size=size, orientation=orientation)
        view.setBackground(self.volume, *SUV_WINDOW)
        view.zoom(zoom, self.ras(center_zyx))
        return view

    def mask(self) -> np.ndarray:
        import slicer

        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, self.segmentId, self.volume) > 0

    def click(self, view, zyx, positive: bool) -> None:
        """A left click in place mode on the slice through ``zyx``, as a user makes it."""
        point = self.ras(zyx)
        view.showSliceThrough(point)
        view.setPlaceMode(self.positive if positive else self.negative)
        view.click(point)
        view.setViewMode()
        if self.logic.lastError is not None:
            raise SystemExit(f"click at voxel {zyx} failed: {self.logic.lastError}")
        self.placed.append((zyx, positive))


def walkthrough(model: str, out: Path, seed: int, organ: str, clicks: int, device: str) -> None:
    from SegAnyPETLib.labels import display_name
    from SegAnyPETLib.metrics import dice

    scene = Walkthrough(model, seed, organ, device)
    center = tuple(int(v) for v in np.mean(np.argwhere(scene.truth), axis=0))
    view = scene.view("Coronal", (420, 420), 2.6, center)
    out.mkdir(parents=True, exist_ok=True)
    spacing_zyx = scene.case.image.GetSpacing()[::-1]
    for number in range(1, clicks + 1):
        zyx, positive = next_click(scene.mask(), scene.truth, spacing_zyx)
        scene.click(view, zyx, positive)
        score = dice(scene.mask(), scene.truth)
        view.setCaption(f"Click {number}: {'positive' if positive else 'negative'} point, {display_name(organ)} "
                        f"Dice {score:.2f}, {scene.logic.timing['latency_ms']:.0f} ms", size=13)
        path = view.save(out / f"slicer_click_{number}.png")
        print(f"{path}: click {number} at voxel {zyx}, Dice {score:.3f}")
    # The extension screenshot: the coronal and the axial view through the last click, side by side.
    axial = scene.view("Axial", (420, 420), 1.9, scene.placed[-1][0], name="Yellow")
    axial.showSliceThrough(scene.ras(scene.placed[-1][0]))
    view.setCaption(f"SegAnyPET: {display_name(organ)} after {clicks} clicks (coronal)", size=13)
    axial.setCaption("axial", size=13)
    gap = np.full((420, 4, 3), 40, dtype=np.uint8)
    screenshot = np.concatenate([view.capture(), gap, axial.capture()], axis=1)
    print(view.save(SCREENSHOT if out == SCREENSHOT.parent else out / SCREENSHOT.name, screenshot))
    for v in (view, axial):
        v.cleanup()
    scene.logic.cleanup()


def icons(model: str, seed: int, device: str) -> None:
    """The extension and module icons, 128 x 128: a real slice view of the liver after one click."""
    scene = Walkthrough(model, seed, "liver", device)
    zyx, _ = next_click(scene.mask(), scene.truth, scene.case.image.GetSpacing()[::-1])
    view = scene.view("Coronal", (128, 128), 2.4, zyx)
    scene.click(view, zyx, True)
    image = view.capture()
    for path in ICONS:
        print(view.save(path, image))
    view.cleanup()
    scene.logic.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="model for the walkthrough (default: demo)")
    parser.add_argument("--out", default=str(REPOSITORY / "docs" / "images"), help="folder of the walkthrough PNGs")
    parser.add_argument("--seed", type=int, default=3, help="phantom seed")
    parser.add_argument("--organ", default="liver", help="target of the walkthrough")
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--icons", action="store_true", help="render the extension and module icons instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.icons:
        icons(args.model, args.seed, args.device)
    else:
        walkthrough(args.model, Path(args.out), args.seed, args.organ, args.clicks, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
