"""Coronal maximum-intensity projections with label outlines, for checking phantoms at a glance."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..io import atomic_path
from ..labels import LABELS, display_name

MIP_SUV_MAX = 8.0  # display window 0..8 SUV, inverted grey as on a reading workstation


def preview_color(name: str) -> Tuple[float, float, float]:
    """Clearly distinct outline colours (the anatomical colours of labels.COLORS are too alike here)."""
    from matplotlib import colormaps

    if name == "lesion":
        return (1.0, 0.8, 0.0)
    palette = colormaps["tab20"].colors
    return tuple(palette[(2 * (LABELS[name] - 1)) % 20 + (LABELS[name] - 1) // 10])


def coronal_mip(array: np.ndarray) -> np.ndarray:
    """Maximum over y (anterior-posterior) of a [z, y, x] array: a [z, x] image."""
    return array.max(axis=1)


def _body_columns(mip: np.ndarray) -> Tuple[int, int]:
    """First and last column of a MIP holding activity, with a small margin (the whole MIP if none)."""
    columns = np.flatnonzero(mip.max(axis=0) > 0.05)
    if columns.size == 0:
        return 0, mip.shape[1] - 1
    return max(int(columns[0]) - 3, 0), min(int(columns[-1]) + 3, mip.shape[1] - 1)


def draw_case(axes, image: sitk.Image, label: Optional[sitk.Image] = None, title: str = "",
              suv_max: float = MIP_SUV_MAX) -> None:
    """Draw a coronal MIP of ``image`` on matplotlib ``axes``, outlines of ``label``'s organs on top.

    Patient right is on the viewer's left, head up, millimetre aspect (radiological convention);
    the air beside the body is cropped.
    """
    suv = sitk.GetArrayViewFromImage(image)
    sx, _, sz = image.GetSpacing()
    ox, _, oz = image.GetOrigin()
    nx, _, nz = image.GetSize()
    extent = (ox - sx / 2, ox + (nx - 0.5) * sx, oz - sz / 2, oz + (nz - 0.5) * sz)
    mip = coronal_mip(suv)
    axes.imshow(mip, cmap="gray_r", vmin=0.0, vmax=suv_max, origin="lower", extent=extent, interpolation="bilinear")
    first, last = _body_columns(mip)
    axes.set_xlim(ox + sx * (first - 0.5), ox + sx * (last + 0.5))
    if label is not None:
        labels = sitk.GetArrayViewFromImage(label)
        x = ox + sx * np.arange(nx)
        z = oz + sz * np.arange(nz)
        for name, value in LABELS.items():
            projection = coronal_mip(labels == value)
            if projection.any():
                axes.contour(x, z, projection.astype(np.float32), levels=[0.5], colors=[preview_color(name)],
                             linewidths=0.8)
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()


def _aspect(image: sitk.Image) -> float:
    """Width / height of the drawn (cropped) MIP in millimetres."""
    first, last = _body_columns(coronal_mip(sitk.GetArrayViewFromImage(image)))
    return (last - first + 1) * image.GetSpacing()[0] / (image.GetSize()[2] * image.GetSpacing()[2])


def save_preview_grid(cases: Sequence[Tuple[sitk.Image, Optional[sitk.Image], str]], path: str | os.PathLike,
                      overwrite: bool = False, suv_max: float = MIP_SUV_MAX) -> Path:
    """Write a PNG with one coronal MIP per (image, label, title), side by side, and a colour legend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    height = 6.0
    widths = [height * _aspect(image) for image, _, _ in cases]
    present = set()
    for _, label, _ in cases:
        if label is not None:
            present |= {int(v) for v in np.unique(sitk.GetArrayViewFromImage(label))}
    handles = [Line2D([0], [0], color=preview_color(name), lw=2, label=display_name(name))
               for name, value in LABELS.items() if value in present]
    columns = 5 if len(cases) > 1 else 2
    legend_rows = (len(handles) + columns - 1) // columns
    legend_height = 0.17 * legend_rows + 0.1 if handles else 0.0
    figure = Figure(figsize=(max(sum(widths) * 1.04, 3.2), height + 0.35 + legend_height), dpi=110)
    grid = figure.add_gridspec(1, len(cases), width_ratios=widths, left=0.01, right=0.99, wspace=0.03,
                               top=1 - 0.35 / figure.get_figheight(), bottom=legend_height / figure.get_figheight())
    for i, (image, label, title) in enumerate(cases):
        draw_case(figure.add_subplot(grid[0, i]), image, label, title, suv_max)
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=columns, fontsize=7, frameon=False)
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:
        figure.savefig(tmp, format="png")
    return path


def save_preview(image: sitk.Image, label: Optional[sitk.Image], path: str | os.PathLike, title: str = "",
                 overwrite: bool = False) -> Path:
    """Write the coronal MIP of one case with its label outlines as PNG."""
    return save_preview_grid([(image, label, title)], path, overwrite)
