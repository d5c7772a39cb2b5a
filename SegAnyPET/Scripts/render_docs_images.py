"""Render the click walkthrough of docs/slicer.md and the extension icon from the headless Slicer logic.

A synthetic FDG-PET phantom is loaded into a volume node; three clicks are placed in the markups
point lists exactly as a user would place them in Slicer (the first in the liver, each next one at
the centre of the largest remaining error), and after each click the segment is read back from
the segmentation node and drawn on the coronal slice through the click::

    python SegAnyPET/Scripts/render_docs_images.py --model demo --out docs/images
    python SegAnyPET/Scripts/render_docs_images.py --icons   # SegAnyPET.png and the module icon

Needs the ``slicer-core`` wheel (or runs inside Slicer) and matplotlib.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

SUV_WINDOW = (0.0, 8.0)
SEGMENT_COLOR = "#ff7f0e"
TRUTH_COLOR = "#1f77b4"
POINT_COLORS = {True: "#22cc22", False: "#ee2222"}


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


def draw_slice(path: Path, suv: np.ndarray, mask: np.ndarray, truth: np.ndarray, spacing, clicks, title: str) -> None:
    """Coronal slice through the last click: PET (inverted grey), truth (blue, dashed), segment (orange), points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row = clicks[-1][0][1]
    sx, _, sz = spacing
    nz, _, nx = suv.shape
    extent = (0, nx * sx, 0, nz * sz)
    rows = np.flatnonzero(truth.any(axis=(1, 2)) | mask.any(axis=(1, 2)))
    low, high = max(rows.min() - 25, 0), min(rows.max() + 25, nz - 1)
    fig, axes = plt.subplots(figsize=(4.2, 4.2), dpi=120)
    axes.imshow(suv[:, row, :], cmap="gray_r", vmin=SUV_WINDOW[0], vmax=SUV_WINDOW[1], origin="lower", extent=extent)
    x, z = (np.arange(nx) + 0.5) * sx, (np.arange(nz) + 0.5) * sz
    if truth[:, row, :].any():
        axes.contour(x, z, truth[:, row, :].astype(float), levels=[0.5], colors=[TRUTH_COLOR], linewidths=1.0, linestyles="--")
    if mask[:, row, :].any():
        axes.contour(x, z, mask[:, row, :].astype(float), levels=[0.5], colors=[SEGMENT_COLOR], linewidths=1.6)
    for number, ((k, j, i), positive) in enumerate(clicks, start=1):
        near = abs(j - row) <= 2  # points on nearby slices are drawn faint
        axes.plot((i + 0.5) * sx, (k + 0.5) * sz, marker="o", markersize=8, color=POINT_COLORS[positive],
                  markeredgecolor="white", alpha=1.0 if near else 0.35)
        axes.annotate(str(number), ((i + 0.5) * sx, (k + 0.5) * sz), textcoords="offset points", xytext=(6, 4),
                      fontsize=8, color=POINT_COLORS[positive], alpha=1.0 if near else 0.5)
    axes.set_ylim(low * sz, high * sz)
    axes.set_title(title, fontsize=8)
    axes.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def walkthrough(model: str, out: Path, seed: int, organ: str, clicks: int, device: str) -> None:
    import SimpleITK as sitk
    import slicer

    from SegAnyPETLib.labels import LABELS, display_name
    from SegAnyPETLib.metrics import dice
    from SegAnyPETLib.phantom.generate import generate_case
    from SegAnyPETLib.slicer_headless import headless_slicer
    from SegAnyPETLib.slicer_logic import SegAnyPETLogic, addPromptNodes, addSegment, addVolumeFromImage, volumeIjkToRas

    headless_slicer()
    case = generate_case(seed)
    suv = sitk.GetArrayFromImage(case.image)
    truth = sitk.GetArrayFromImage(case.label) == LABELS[organ]
    spacing = case.image.GetSpacing()
    volume = addVolumeFromImage(case.image, "PET")
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segmentId = addSegment(segmentation, organ)
    positive, negative = addPromptNodes()
    logic = SegAnyPETLogic(model, device)
    logic.setInputVolume(volume)
    logic.setTargetSegment(segmentation, segmentId)
    logic.setPromptNodes(positive, negative)
    ijk_to_ras = volumeIjkToRas(volume)

    mask = np.zeros_like(truth)
    placed = []
    out.mkdir(parents=True, exist_ok=True)
    for number in range(1, clicks + 1):
        zyx, is_positive = next_click(mask, truth, spacing[::-1])
        node = positive if is_positive else negative
        node.AddControlPointWorld(*(ijk_to_ras @ [zyx[2], zyx[1], zyx[0], 1.0])[:3])
        if logic.lastError is not None:
            raise SystemExit(f"click {number} failed: {logic.lastError}")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume) > 0
        placed.append((zyx, is_positive))
        title = (f"Click {number}: {'positive' if is_positive else 'negative'} point - {display_name(organ)} "
                 f"Dice {dice(mask, truth):.2f}, {logic.timing['latency_ms']:.0f} ms")
        draw_slice(out / f"slicer_click_{number}.png", suv, mask, truth, spacing, placed, title)
        print(f"{out / f'slicer_click_{number}.png'}: {title}")
    logic.cleanup()


def icons(seed: int) -> None:
    """A coronal PET MIP (inverted grey) with the liver outline and a positive click, 128 x 128 pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk
    from scipy import ndimage

    from SegAnyPETLib.labels import LABELS
    from SegAnyPETLib.phantom.generate import generate_case

    case = generate_case(seed)
    suv = sitk.GetArrayFromImage(case.image)
    liver = sitk.GetArrayFromImage(case.label) == LABELS["liver"]
    sx, _, sz = case.image.GetSpacing()
    mip = suv.max(axis=1)
    liver_mip = liver.any(axis=1)
    rows = np.flatnonzero(mip.max(axis=1) > 0.3)
    columns = np.flatnonzero(mip.max(axis=0) > 0.3)
    # a square (in millimetres) from just below the liver upwards
    height = int((columns.max() - columns.min() + 1) * sx / sz)
    bottom = max(int(np.flatnonzero(liver_mip.any(axis=1)).min()) - 12, 0)
    top = min(bottom + height, rows.max())
    k, i = np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(liver_mip))), liver_mip.shape)
    for path in (REPOSITORY / "SegAnyPET.png", REPOSITORY / "SegAnyPET" / "Resources" / "Icons" / "SegAnyPET.png"):
        fig = plt.figure(figsize=(1, 1), dpi=128)
        axes = fig.add_axes([0, 0, 1, 1])
        extent = (columns.min() * sx, (columns.max() + 1) * sx, bottom * sz, (top + 1) * sz)
        axes.imshow(mip[bottom : top + 1, columns.min() : columns.max() + 1], cmap="gray_r", vmin=0, vmax=6,
                    origin="lower", extent=extent, aspect="auto", interpolation="bilinear")
        x = (np.arange(columns.min(), columns.max() + 1) + 0.5) * sx
        z = (np.arange(bottom, top + 1) + 0.5) * sz
        axes.contour(x, z, liver_mip[bottom : top + 1, columns.min() : columns.max() + 1].astype(float), levels=[0.5],
                     colors=[SEGMENT_COLOR], linewidths=2.2)
        axes.plot((i + 0.5) * sx, (k + 0.5) * sz, marker="o", markersize=9, color=POINT_COLORS[True], markeredgecolor="white",
                  markeredgewidth=1.5)
        axes.set_axis_off()
        fig.savefig(path, dpi=128)
        plt.close(fig)
        print(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="model for the walkthrough (default: demo)")
    parser.add_argument("--out", default=str(REPOSITORY / "docs" / "images"), help="folder of the walkthrough PNGs")
    parser.add_argument("--seed", type=int, default=3, help="phantom seed")
    parser.add_argument("--organ", default="liver", help="target of the walkthrough")
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--icons", action="store_true", help="draw the extension and module icons instead")
    args = parser.parse_args(argv)
    if args.icons:
        icons(args.seed)
    else:
        walkthrough(args.model, Path(args.out), args.seed, args.organ, args.clicks, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
