"""Evaluation with simulated clicks: Dice and NSD at 1/3/5 clicks, per case and target.

Every method (the model, the threshold and GrowCut baselines, or the Slicer logic in batch mode) is
a *segmenter* with ``set_image(image)``, ``new_object(target)`` and ``click(index_zyx, positive) -> mask``.
The same protocol drives all of them with the same random first click per case and target.
"""
from __future__ import annotations

import csv
import io
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .clicks import next_click
from .errors import SegAnyPETError
from .io import atomic_path, ensure_writable, write_text
from .labels import SEEN_ORGANS, UNSEEN_ORGANS, display_name
from .metrics import dice, normalized_surface_dice

logger = logging.getLogger(__name__)

RESULT_COLUMNS = ("method", "case", "target", "clicks", "dice", "nsd")


class Segmenter(Protocol):
    name: str

    def set_image(self, image: sitk.Image) -> None: ...

    def new_object(self, target: str = "") -> None:
        """Start the next object; ``target`` names it (a model segments its lesion targets as lesions)."""

    def click(self, index_zyx: Tuple[int, int, int], positive: bool) -> np.ndarray: ...


def method_name(source: str, lesion_targets: Sequence[str] = (), config=None, default=None) -> str:
    """A model's name in reports: a checkpoint file by its file name, anything else as given; a
    session ``config`` other than the model's own (``default``) is named after it (its preset, else
    the options that differ), and so are the targets segmented as lesions."""
    from .inference.config import PRESETS, preset_name

    name = Path(source).name if Path(source).suffix in (".pt", ".pth") else source
    default = default or PRESETS["official"]
    if config is not None and config != default:
        differences = config.differences(default)
        name += f" ({preset_name(config) or ', '.join(f'{k}={_option_text(v)}' for k, v in differences.items())})"
    return name + (f" (lesion mode: {', '.join(sorted(lesion_targets))})" if lesion_targets else "")


def _option_text(value) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value).lower() if isinstance(value, bool) else str(value)


class ModelSegmenter:
    """The network through :class:`~SegAnyPETLib.session.InteractiveSession` (``preset`` and
    ``overrides``: its options). Targets named in ``lesion_targets`` are segmented in lesion mode."""

    def __init__(self, model, device: str = "auto", name: Optional[str] = None, preset=None,
                 lesion_targets: Sequence[str] = (), **overrides) -> None:
        from .session import InteractiveSession

        self.session = InteractiveSession(model, preset, device=device, **overrides)
        self.lesion_targets = set(lesion_targets)
        if lesion_targets:
            self.session.lesion = True  # one clear error now where the config has no lesion refiners
            self.session.lesion = False
        self.name = name or method_name(str(getattr(model, "source", None) or "model"), lesion_targets,
                                        self.session.config, getattr(model, "inference", None))

    def set_image(self, image: sitk.Image) -> None:
        self.session.set_image(image)

    def new_object(self, target: str = "") -> None:
        self.session.new_object()
        self.session.lesion = target in self.lesion_targets

    def click(self, index_zyx, positive):
        return self.session.add_click(tuple(reversed(index_zyx)), positive=positive, space="ijk")

    @property
    def reach(self) -> Optional[np.ndarray]:
        """Where the next click can act (:attr:`~SegAnyPETLib.session.InteractiveSession.reach`)."""
        return self.session.reach


@dataclass
class Result:
    method: str
    case: str
    target: str
    clicks: int
    dice: float
    nsd: float


def click_seed(seed: int, case: str, target: str) -> int:
    """Seed of the click sequence of one case and target: the same for every method."""
    return zlib.crc32(f"{seed}/{case}/{target}".encode()) & 0x7FFFFFFF


def run_protocol(
    segmenter: Segmenter,
    target: np.ndarray,
    clicks: Sequence[int],
    rng: np.random.Generator,
    name: str = "",
) -> Dict[int, np.ndarray]:
    """Simulated clicks on one target (``name``d): {number of clicks: mask} for the requested counts."""
    segmenter.new_object(name)
    prediction: Optional[np.ndarray] = None
    masks: Dict[int, np.ndarray] = {}
    for count in range(1, max(clicks) + 1):
        index, positive = next_click(prediction, target, rng, getattr(segmenter, "reach", None))
        prediction = segmenter.click(index, positive)
        if count in clicks:
            masks[count] = prediction.copy()
    return masks


def evaluate_case(
    segmenters: Sequence[Segmenter],
    case_id: str,
    image: sitk.Image,
    label: np.ndarray,
    targets: Dict[str, int],
    clicks: Sequence[int] = (1, 3, 5),
    seed: int = 0,
    nsd_tolerance_mm: float = 2.0,
) -> List[Result]:
    """Every segmenter on every target present in ``label`` ((z, y, x) array on the image grid)."""
    spacing_zyx = image.GetSpacing()[::-1]
    results: List[Result] = []
    present = {name: value for name, value in targets.items() if np.any(label == value)}
    for segmenter in segmenters:
        segmenter.set_image(image)
        for name, value in present.items():
            truth = label == value
            rng = np.random.default_rng(click_seed(seed, case_id, name))
            for count, mask in run_protocol(segmenter, truth, clicks, rng, name).items():
                results.append(
                    Result(
                        segmenter.name,
                        case_id,
                        name,
                        count,
                        dice(mask, truth),
                        normalized_surface_dice(mask, truth, spacing_zyx, nsd_tolerance_mm),
                    )
                )
    return results


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    """``"i/n"`` (0-based i) -> (i, n); None -> (0, 1)."""
    if not text:
        return 0, 1
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise SegAnyPETError(f"--shard {text!r} must look like i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise SegAnyPETError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def write_results_csv(results: Iterable[Result], path: Path, overwrite: bool = False) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for r in results:
        writer.writerow([r.method, r.case, r.target, r.clicks, f"{r.dice:.6f}", f"{r.nsd:.6f}"])
    return write_text(path, buffer.getvalue(), overwrite=overwrite)


def read_results_csv(path: Path) -> List[Result]:
    with open(path, newline="") as handle:
        return [
            Result(row["method"], row["case"], row["target"], int(row["clicks"]), float(row["dice"]), float(row["nsd"]))
            for row in csv.DictReader(handle)
        ]


def summarize(results: Sequence[Result], metric: str = "dice") -> str:
    """Markdown tables laid out like the paper's: targets (seen, unseen, other) x method and clicks."""
    methods = list(dict.fromkeys(r.method for r in results))
    counts = sorted({r.clicks for r in results})
    targets = list(dict.fromkeys(r.target for r in results))
    groups = [
        ("seen organs", [t for t in SEEN_ORGANS if t in targets]),
        ("unseen organs", [t for t in UNSEEN_ORGANS if t in targets]),
        ("other targets", [t for t in targets if t not in SEEN_ORGANS and t not in UNSEEN_ORGANS]),
    ]
    values: Dict[Tuple[str, str, int], List[float]] = {}
    for r in results:
        values.setdefault((r.method, r.target, r.clicks), []).append(getattr(r, metric))
    header = ["target"] + [f"{m} {c} click{'s' if c > 1 else ''}" for m in methods for c in counts]
    lines = [f"{metric.upper()} (%), mean over cases; n = cases with the target", ""]
    lines.append("| " + " | ".join(header + ["n"]) + " |")
    lines.append("|" + "---|" * (len(header) + 1))
    for group, names in groups:
        if not names:
            continue
        lines.append(f"| **{group}** |" + " |" * len(header))
        for name in names:
            cells = [f"{100 * np.mean(values[(m, name, c)]):.2f}" if (m, name, c) in values else "" for m in methods for c in counts]
            n = len(values.get((methods[0], name, counts[0]), []))
            lines.append(f"| {display_name(name)} | " + " | ".join(cells) + f" | {n} |")
        means = []
        for m in methods:
            for c in counts:
                per_target = [np.mean(values[(m, t, c)]) for t in names if (m, t, c) in values]
                means.append(f"**{100 * np.mean(per_target):.2f}**" if per_target else "")
        lines.append(f"| mean ({group}) | " + " | ".join(means) + " | |")
    return "\n".join(lines) + "\n"


def plot_summary(results: Sequence[Result], path: Path, overwrite: bool = False) -> Path:
    """Dice per target, one panel per click count, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r.method for r in results))
    counts = sorted({r.clicks for r in results})
    targets = [t for t in list(SEEN_ORGANS) + list(UNSEEN_ORGANS) if any(r.target == t for r in results)]
    targets += [t for t in dict.fromkeys(r.target for r in results) if t not in targets]
    fig, axes = plt.subplots(len(counts), 1, figsize=(max(8, 0.9 * len(targets) + 2), 2.6 * len(counts)), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for ax, count in zip(axes[:, 0], counts):
        for k, method in enumerate(methods):
            means, errors = [], []
            for t in targets:
                v = [r.dice for r in results if r.method == method and r.target == t and r.clicks == count]
                means.append(np.mean(v) if v else np.nan)
                errors.append(np.std(v) if v else 0)
            ax.bar(np.arange(len(targets)) + (k - (len(methods) - 1) / 2) * width, means, width, yerr=errors, label=method, capsize=2)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"Dice, {count} click{'s' if count > 1 else ''}")
        ax.set_xticks(np.arange(len(targets)))
        ax.set_xticklabels([display_name(t) for t in targets], rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    # Above the first panel, where it hides no bar.
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(methods), fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_report(results: Sequence[Result], out: Path, overwrite: bool = False, title: str = "Evaluation") -> None:
    """``results.csv``, ``summary.md`` (Dice and NSD tables) and ``summary.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_results_csv(results, out / "results.csv", overwrite)
    text = f"# {title}\n\n{summarize(results, 'dice')}\n{summarize(results, 'nsd')}"
    write_text(out / "summary.md", text, overwrite)
    plot_summary(results, out / "summary.png", overwrite)


def evaluate_dataset(
    make_segmenters: Callable[[], List[Segmenter]],
    data: str,
    out: str,
    clicks: Sequence[int] = (1, 3, 5),
    targets: Optional[Sequence[str]] = None,
    seed: int = 0,
    shard: Optional[str] = None,
    overwrite: bool = False,
    title: str = "Evaluation",
    progress: bool = True,
    lesion_targets: Sequence[str] = (),
) -> List[Result]:
    """Run the protocol over a dataset (imagesTs/labelsTs when present) and write the report.

    ``lesion_targets`` (the names the segmenters segment as lesions) must be labels of the dataset:
    they are checked before the segmenters are made.

    With ``shard="i/n"`` only every n-th case from the i-th is done and written to
    ``results-i-of-n.csv``; the shard that completes the set merges all parts into the report.
    """
    from tqdm import tqdm

    from .data import load_case, open_dataset

    index, count = parse_shard(shard)
    out_dir = Path(out)
    part = out_dir / (f"results-{index}-of-{count}.csv" if count > 1 else "results.csv")
    for path in {part, out_dir / "results.csv", out_dir / "summary.md", out_dir / "summary.png"}:
        ensure_writable(path, overwrite)  # a merged report is only written by this run's shards
    dataset = open_dataset(data, split="auto")
    wanted = dataset.select_targets(targets)
    dataset.select_targets(lesion_targets)  # a misspelt name: one error before any work
    cases = dataset.cases[index::count]
    segmenters = make_segmenters()
    results: List[Result] = []
    for case in tqdm(cases, desc="evaluate", unit="case", disable=not progress):
        image, label = load_case(case)
        case_targets = {t: v for t, v in case.labels.items() if t in wanted}
        try:
            results += evaluate_case(
                segmenters, case.case_id, image, sitk.GetArrayViewFromImage(label), case_targets, clicks, seed
            )
        except SegAnyPETError as error:
            raise SegAnyPETError(f"case {case.case_id} ({case.image}): {error}") from error
    if not results:
        raise SegAnyPETError(f"no target of {', '.join(wanted)} found in the cases of {data}")
    if count == 1:
        write_report(results, out_dir, overwrite, title)
        return results
    write_results_csv(results, part, overwrite)
    parts = [out_dir / f"results-{i}-of-{count}.csv" for i in range(count)]
    if all(p.exists() for p in parts):
        merged = [r for p in parts for r in read_results_csv(p)]
        write_report(merged, out_dir, overwrite=True, title=title)
        logger.info("all %d shards done: merged report in %s", count, out_dir)
    return results
