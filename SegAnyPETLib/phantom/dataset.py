"""Write phantoms as an nnU-Net v2 raw dataset, in parallel and reproducibly.

Layout::

    OUT/dataset.json                 channel_names {"0": "PET"}, labels, numTraining, file_ending
    OUT/imagesTr/<case>_0000.nii.gz  SUV, float32
    OUT/labelsTr/<case>.nii.gz       expert labels, uint8
    OUT/labelsLQ/<case>.nii.gz       noisy labels (training cases), uint8
    OUT/imagesTs, OUT/labelsTs       optional test cases
    OUT/phantom_info.json            per case: seed, sex, SUVs, lesions, scanner, noisy-label Dice
    OUT/previews/<case>.png          optional coronal MIPs, and overview.png of the first four

Case ``i`` is generated from the seed sequence ``(seed, i)``, so the files do not depend on the
number of workers or on the order in which the workers finish.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from ..errors import SegAnyPETError
from ..io import read_image, write_image, write_text
from ..labels import LABELS
from .noisy_labels import DEFAULT_SEVERITY

logger = logging.getLogger(__name__)

CASE_PREFIX = "phantom"
FILE_ENDING = ".nii.gz"
OVERVIEW_CASES = 4


@dataclass(frozen=True)
class CaseTask:
    out: str
    index: int
    case_id: str
    seed: int
    severity: float
    test: bool
    preview: bool
    overwrite: bool


def case_ids(count: int) -> List[str]:
    """``phantom_000`` ... with at least three digits."""
    digits = max(3, len(str(max(count - 1, 0))))
    return [f"{CASE_PREFIX}_{i:0{digits}d}" for i in range(count)]


def dataset_json(num_training: int, seed: int, severity: float) -> Dict:
    """The nnU-Net v2 ``dataset.json`` of a phantom dataset."""
    return {
        "name": "SegAnyPET whole-body FDG-PET phantoms",
        "description": f"Synthetic whole-body FDG-PET (SUV) with expert labels (labelsTr) and noisy labels "
                       f"(labelsLQ, severity {severity}); seed {seed}. See docs/phantoms.md.",
        "channel_names": {"0": "PET"},
        "labels": {"background": 0, **LABELS},
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        "licence": "CC0-1.0 (synthetic data)",
    }


def _init_worker() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # one process per core already


def write_case(task: CaseTask) -> Dict:
    """Generate one case and write its files; returns its info (runs in a worker process)."""
    from .generate import generate_case
    from .preview import save_preview

    out = Path(task.out)
    images, labels = ("imagesTs", "labelsTs") if task.test else ("imagesTr", "labelsTr")
    case = generate_case((task.seed, task.index), severity=task.severity, noisy=not task.test)
    write_image(case.image, out / images / f"{task.case_id}_0000{FILE_ENDING}", task.overwrite)
    write_image(case.label, out / labels / f"{task.case_id}{FILE_ENDING}", task.overwrite)
    if not task.test:
        write_image(case.noisy_label, out / "labelsLQ" / f"{task.case_id}{FILE_ENDING}", task.overwrite)
    if task.preview:
        save_preview(case.image, case.label, out / "previews" / f"{task.case_id}.png", task.case_id, task.overwrite)
    return {"case": task.case_id, "split": "test" if task.test else "train", "seed": [task.seed, task.index],
            **case.info}


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SegAnyPETError(f"{out} is a file; the phantom dataset needs a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SegAnyPETError(f"{out} is not empty; pass --overwrite (overwrite=True) to write the phantoms into it")


def write_dataset(out: str | os.PathLike, cases: int, seed: int = 0, test_cases: int = 0, workers: int = 1,
                  severity: float = DEFAULT_SEVERITY, preview: bool = False, overwrite: bool = False,
                  progress: bool = True) -> Dict:
    """Write ``cases`` training (+ ``test_cases`` test) phantoms to ``out``; returns a summary.

    Refuses a non-empty ``out`` unless ``overwrite`` (then same-named files are replaced).
    """
    from tqdm import tqdm

    if cases < 1 or test_cases < 0:
        raise SegAnyPETError(f"need at least one training case and no negative test cases, got {cases} and {test_cases}")
    if workers < 1:
        raise SegAnyPETError(f"--workers must be at least 1, got {workers}")
    if not 0.0 <= severity <= 1.0:
        raise SegAnyPETError(f"--severity must be between 0 and 1, got {severity}")
    out = Path(out)
    check_output(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    ids = case_ids(cases + test_cases)
    tasks = [CaseTask(str(out), i, ids[i], seed, severity, i >= cases, preview, overwrite) for i in range(len(ids))]
    started = time.perf_counter()
    infos: List[Dict] = []
    bar = tqdm(total=len(tasks), desc="phantoms", unit="case", disable=not progress)
    try:
        if workers == 1:
            for task in tasks:
                infos.append(write_case(task))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=_init_worker) as pool:
                futures = [pool.submit(write_case, task) for task in tasks]
                try:
                    for future in as_completed(futures):
                        infos.append(future.result())
                        bar.update()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    infos.sort(key=lambda info: info["case"])
    write_text(out / "dataset.json", json.dumps(dataset_json(cases, seed, severity), indent=2) + "\n", overwrite)
    write_text(out / "phantom_info.json", json.dumps(infos, indent=1) + "\n", overwrite)
    if preview:
        from .preview import save_preview_grid

        shown = [(read_image(out / "imagesTr" / f"{i}_0000{FILE_ENDING}"),
                  read_image(out / "labelsTr" / f"{i}{FILE_ENDING}"), i) for i in ids[: min(OVERVIEW_CASES, cases)]]
        save_preview_grid(shown, out / "previews" / "overview.png", overwrite)
    seconds = time.perf_counter() - started
    logger.info("wrote %d training and %d test phantoms to %s in %.1f s", cases, test_cases, out, seconds)
    return {"out": str(out), "training": cases, "test": test_cases, "seconds": seconds, "cases": infos}
