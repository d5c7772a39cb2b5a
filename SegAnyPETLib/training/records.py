"""A run's records: ``metrics.csv`` (one row per step), ``validation.csv`` and ``curves.png``.

Rows are appended as the run goes; a resumed run first drops the rows written after its last
checkpoint (:func:`truncate_rows`), so its files equal those of an uninterrupted run. A write that
fails (full disk, file-size limit) is one :class:`~SegAnyPETLib.errors.SegAnyPETError`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, Sequence

from ..errors import SegAnyPETError
from ..io import atomic_path, cause_of, write_text

METRIC_COLUMNS = ("step", "epoch", "lr", "loss", "loss_hq", "loss_cps", "loss_lq", "lambda", "seconds")
VALIDATION_COLUMNS = ("step", "dice_1_click", "dice_1_click_val_targets")


def append_row(path: Path, columns: Sequence[str], row: Dict[str, Any]) -> None:
    """Append one row (floats to 6 significant digits), with the header when the file is new."""
    new = not path.exists()
    try:
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    except OSError as error:
        raise SegAnyPETError(f"cannot write {path}: {cause_of(error)}") from error


def append_metrics(path: Path, row: Dict[str, Any]) -> None:
    append_row(path, METRIC_COLUMNS, row)


def truncate_rows(run: Path, step: int) -> None:
    """Drop the metrics and validation rows after ``step`` (and any row cut short by a crash)."""
    for file in (run / "metrics.csv", run / "validation.csv"):
        if not file.exists():
            continue
        with open(file, newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            continue
        kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and _step(r[0]) is not None and _step(r[0]) <= step]
        buffer = io.StringIO()
        csv.writer(buffer).writerows(kept)
        write_text(file, buffer.getvalue(), overwrite=True)


def _step(cell: str):
    try:
        return int(float(cell))
    except ValueError:
        return None


def plot_curves(run: Path) -> Path:
    """``RUN/curves.png``: the losses, lambda and the validation Dice over the steps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(r["step"]) for r in rows]
    figure = Figure(figsize=(9, 3.2), dpi=100)
    losses, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for column in ("loss", "loss_hq", "loss_cps", "loss_lq"):
        losses.plot(steps, [float(r[column]) for r in rows], label=column, lw=0.8)
    losses.set_xlabel("step")
    losses.set_yscale("symlog", linthresh=1e-3)
    losses.legend(fontsize=7)
    right.plot(steps, [float(r["lambda"]) for r in rows], color="grey", lw=0.8, label="lambda")
    right.set_xlabel("step")
    if (run / "validation.csv").exists():
        with open(run / "validation.csv", newline="") as handle:
            validation = list(csv.DictReader(handle))
        dice = right.twinx()
        validation_steps = [int(r["step"]) for r in validation]
        dice.plot(validation_steps, [float(r["dice_1_click"]) for r in validation], "o-", color="C3")
        if validation and "dice_1_click_val_targets" in validation[0]:
            dice.plot(validation_steps, [float(r["dice_1_click_val_targets"]) for r in validation], "s--", color="C3",
                      label="val_targets (picks best.pt)")
            dice.legend(fontsize=7, loc="lower right")
        dice.set_ylabel("validation Dice, 1 click", color="C3")
        dice.set_ylim(0, 1)
    right.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    with atomic_path(run / "curves.png", overwrite=True) as tmp:
        figure.savefig(tmp, format="png")
    return run / "curves.png"
