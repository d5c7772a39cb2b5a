"""Read PET segmentation datasets in the layouts users have: nnU-Net v2, AutoPET and SAM-Med3D.

One small API for training and evaluation::

    dataset = open_dataset("Dataset501_PETPhantom")          # layout detected
    for case in dataset.cases:
        image, label = load_case(case)                       # grids and label values checked
        liver = target_mask(sitk.GetArrayViewFromImage(label), case, "liver")

Layouts:

- ``nnunet``: ``dataset.json`` with ``labels`` and ``file_ending``, ``imagesTr/<case>_0000<ending>``
  and ``labelsTr/<case><ending>`` (``imagesTs``/``labelsTs`` for the test split). A folder of noisy
  labels next to them (``labelsLQ`` by default, as the phantoms write it) gives ``noisy_label``.
  With several channels the one named PET is used.
- ``autopet``: one folder per study holding ``SUV.nii.gz``, ``SEG.nii.gz`` (lesions = 1) and
  optionally ``CTres.nii.gz``, found at any depth (AutoPET nests ``PETCT_<id>/<date>/``).
- ``sam-med3d``: ``<target>/<dataset>/imagesTr|labelsTr`` with one binary mask per file; every
  (target, file) is a case whose only label is ``{target: 1}``.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .errors import SegAnyPETError
from .io import read_image

logger = logging.getLogger(__name__)

SPLITS = ("auto", "train", "test")
IMAGE_ENDINGS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
DEFAULT_NOISY_FOLDER = "labelsLQ"


@dataclass(frozen=True)
class Case:
    """One image with its label file; ``labels`` maps target names to values in that file."""

    case_id: str
    image: Path
    label: Optional[Path]
    labels: Dict[str, int]
    noisy_label: Optional[Path] = None
    ct: Optional[Path] = None
    declared_in: str = ""  # where ``labels`` come from, for error messages


@dataclass
class Dataset:
    """The cases of a dataset folder and the union of their target names and values."""

    root: Path
    layout: str
    cases: List[Case]
    labels: Dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self):
        return iter(self.cases)

    def select_targets(self, names: Optional[Sequence[str]] = None) -> Dict[str, int]:
        """``labels`` restricted to ``names`` (all when None or empty), or one error naming the unknown ones."""
        if not names:
            return dict(self.labels)
        unknown = [name for name in names if name not in self.labels]
        if unknown:
            raise SegAnyPETError(f"target(s) {', '.join(unknown)} not in {self.root} (it has {', '.join(self.labels)})")
        return {name: self.labels[name] for name in names}

    def with_target(self, target: str) -> List[Case]:
        """The cases that declare ``target``."""
        return [case for case in self.cases if target in case.labels]


def detect_layout(root: Path) -> str:
    """``nnunet``, ``autopet`` or ``sam-med3d``, or a clear error for anything else."""
    if not root.exists():
        raise SegAnyPETError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise SegAnyPETError(f"dataset {root} is a file, expected a folder")
    if (root / "dataset.json").is_file() or (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return "nnunet"
    if any(root.glob("*/*/labelsTr")):
        return "sam-med3d"
    if next(root.rglob("SUV.nii.gz"), None) is not None:
        return "autopet"
    raise SegAnyPETError(
        f"{root}: unknown dataset layout; expected an nnU-Net v2 folder (dataset.json, imagesTr, labelsTr), "
        f"AutoPET study folders (SUV.nii.gz, SEG.nii.gz) or SAM-Med3D (<target>/<dataset>/imagesTr, labelsTr)"
    )


def open_dataset(root: str | os.PathLike, split: str = "auto", noisy_labels: str | os.PathLike | None = None) -> Dataset:
    """Find the cases of a dataset folder (layout detected).

    ``split``: for nnU-Net, ``train`` reads imagesTr/labelsTr, ``test`` imagesTs/labelsTs and
    ``auto`` the test split when labelsTs exists, else the training split. The other layouts have
    no test split. ``noisy_labels``: folder of noisy labels (name under ``root`` or a path); by
    default ``labelsLQ`` when present.
    """
    root = Path(root)
    if split not in SPLITS:
        raise SegAnyPETError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    layout = detect_layout(root)
    if layout == "nnunet":
        return _open_nnunet(root, split, noisy_labels)
    if split == "test":
        raise SegAnyPETError(f"{root}: the {layout} layout has no test split; use split='auto' or 'train'")
    if noisy_labels is not None:
        raise SegAnyPETError(f"{root}: noisy labels are only read from nnU-Net folders, not from the {layout} layout")
    cases = _autopet_cases(root) if layout == "autopet" else _sam_med3d_cases(root)
    labels: Dict[str, int] = {}
    for case in cases:
        labels.update(case.labels)
    logger.info("%s: %s layout, %d cases", root, layout, len(cases))
    return Dataset(root, layout, cases, labels)


# -- nnU-Net v2 ----------------------------------------------------------------------------------


def _read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    if not path.is_file():
        raise SegAnyPETError(f"{root}: nnU-Net folder without dataset.json")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SegAnyPETError(f"cannot read {path}: {error}") from error
    if not isinstance(content, dict) or not isinstance(content.get("labels"), dict):
        raise SegAnyPETError(f"{path} has no \"labels\" mapping of names to values")
    return content


def _declared_labels(content: dict, path: Path) -> Dict[str, int]:
    labels = {}
    for name, value in content["labels"].items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise SegAnyPETError(f"{path}: label {name!r} has value {value!r}; only integer labels are supported "
                                 f"(no nnU-Net regions)")
        if value != 0:
            labels[str(name)] = value
    return labels


def _pet_channel(content: dict) -> str:
    channels = content.get("channel_names") or content.get("modality") or {"0": "PET"}
    for key, name in channels.items():
        if "PET" in str(name).upper():
            return f"{int(key):04d}"
    return "0000"


def _open_nnunet(root: Path, split: str, noisy_labels) -> Dataset:
    content = _read_dataset_json(root)
    labels = _declared_labels(content, root / "dataset.json")
    ending = content.get("file_ending", ".nii.gz")
    if split == "auto":
        split = "test" if (root / "labelsTs").is_dir() and any((root / "labelsTs").iterdir()) else "train"
    suffix = "Ts" if split == "test" else "Tr"
    images_dir, labels_dir = root / f"images{suffix}", root / f"labels{suffix}"
    if not images_dir.is_dir():
        raise SegAnyPETError(f"{root}: no images{suffix} folder for the {split} split")
    noisy_dir = _noisy_folder(root, noisy_labels, split)
    channel = _pet_channel(content)
    image_files = sorted(images_dir.glob(f"*_{channel}{ending}"))
    if not image_files:
        raise SegAnyPETError(f"{images_dir}: no images named <case>_{channel}{ending}")
    case_ids = [f.name[: -len(f"_{channel}{ending}")] for f in image_files]
    if labels_dir.is_dir():
        for label_file in sorted(labels_dir.glob(f"*{ending}")):
            stem = label_file.name[: -len(ending)]
            if stem not in case_ids:
                expected = images_dir / f"{stem}_{channel}{ending}"
                raise SegAnyPETError(f"label {label_file} has no image (expected {expected})")
    cases = []
    for case_id, image in zip(case_ids, image_files):
        label = labels_dir / f"{case_id}{ending}"
        if labels_dir.is_dir() and not label.is_file():
            raise SegAnyPETError(f"image {image} has no label file {label}")
        noisy = noisy_dir / f"{case_id}{ending}" if noisy_dir is not None else None
        cases.append(Case(case_id, image, label if labels_dir.is_dir() else None, labels,
                          noisy if noisy is not None and noisy.is_file() else None,
                          declared_in=str(root / "dataset.json")))
    logger.info("%s: nnU-Net %s split, %d cases", root, split, len(cases))
    return Dataset(root, "nnunet", cases, dict(labels))


def _noisy_folder(root: Path, noisy_labels, split: str) -> Optional[Path]:
    if noisy_labels is None:
        default = root / DEFAULT_NOISY_FOLDER
        return default if split == "train" and default.is_dir() else None
    folder = Path(noisy_labels)
    if not folder.is_absolute() and not folder.exists():
        folder = root / folder
    if not folder.is_dir():
        raise SegAnyPETError(f"noisy-label folder {folder} does not exist")
    return folder


# -- AutoPET -------------------------------------------------------------------------------------


def _autopet_cases(root: Path) -> List[Case]:
    cases = []
    for suv in sorted(root.rglob("SUV.nii.gz")):
        study = suv.parent
        seg = study / "SEG.nii.gz"
        ct = study / "CTres.nii.gz"
        case_id = study.relative_to(root).as_posix() if study != root else study.name
        cases.append(Case(case_id, suv, seg if seg.is_file() else None, {"lesion": 1},
                          ct=ct if ct.is_file() else None, declared_in="the AutoPET layout (lesion = 1)"))
    return cases


# -- SAM-Med3D -----------------------------------------------------------------------------------


def _strip_ending(name: str) -> Optional[str]:
    for ending in IMAGE_ENDINGS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return None


def _sam_med3d_cases(root: Path) -> List[Case]:
    cases = []
    for labels_dir in sorted(root.glob("*/*/labelsTr")):
        dataset_dir = labels_dir.parent
        target, dataset = dataset_dir.parent.name, dataset_dir.name
        for label in sorted(labels_dir.iterdir()):
            stem = _strip_ending(label.name)
            if stem is None:
                continue
            image = dataset_dir / "imagesTr" / label.name
            if not image.is_file():
                raise SegAnyPETError(f"label {label} has no image (expected {image})")
            cases.append(Case(f"{target}/{dataset}/{stem}", image, label, {target: 1},
                              declared_in="the SAM-Med3D layout (binary masks)"))
    if not cases:
        raise SegAnyPETError(f"{root}: SAM-Med3D layout without any label file in <target>/<dataset>/labelsTr")
    return cases


# -- loading -------------------------------------------------------------------------------------


def _grid_difference(image: sitk.Image, label: sitk.Image) -> Optional[str]:
    """What differs between two grids (None when they match within tolerance)."""
    if image.GetSize() != label.GetSize():
        return f"size {label.GetSize()} vs image {image.GetSize()}"
    spacing = np.array(image.GetSpacing())
    if not np.allclose(label.GetSpacing(), spacing, rtol=1e-4, atol=1e-5):
        return f"spacing {label.GetSpacing()} vs image {image.GetSpacing()}"
    if not np.allclose(label.GetOrigin(), image.GetOrigin(), rtol=0, atol=1e-3 * spacing.max() + 1e-4):
        return f"origin {label.GetOrigin()} vs image {image.GetOrigin()}"
    if not np.allclose(label.GetDirection(), image.GetDirection(), rtol=0, atol=1e-4):
        return f"direction {label.GetDirection()} vs image {image.GetDirection()}"
    return None


def load_case(case: Case, noisy: bool = False) -> Tuple[sitk.Image, sitk.Image]:
    """Read a case's image (float32) and its label (or noisy label), both on the same grid.

    Raises SegAnyPETError naming the file when the label grid differs from the image grid or the
    label holds a value that the dataset does not declare.
    """
    label_path = case.noisy_label if noisy else case.label
    if label_path is None:
        kind = "noisy label" if noisy else "label"
        raise SegAnyPETError(f"case {case.case_id} ({case.image}) has no {kind} file")
    image = read_image(case.image, "image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        components = image.GetNumberOfComponentsPerPixel()
        raise SegAnyPETError(f"image {case.image} has {components} components per voxel, expected 1")
    label = read_image(label_path, "label")
    difference = _grid_difference(image, label)
    if difference is not None:
        raise SegAnyPETError(f"label {label_path} is not on the grid of image {case.image}: {difference}")
    values = sitk.GetArrayViewFromImage(label)
    present = np.unique(values)
    if not np.all(np.equal(np.mod(present, 1), 0)):
        raise SegAnyPETError(f"label {label_path} holds non-integer values, e.g. {present[np.mod(present, 1) != 0][0]}")
    undeclared = sorted(set(int(v) for v in present) - {0} - set(case.labels.values()))
    if undeclared:
        declared = ", ".join(f"{name}={value}" for name, value in sorted(case.labels.items(), key=lambda kv: kv[1]))
        raise SegAnyPETError(f"label {label_path} holds value(s) {undeclared} not declared in "
                             f"{case.declared_in or 'the dataset'} (declared: {declared or 'none'})")
    if label.GetPixelID() != sitk.sitkUInt8 and (present.size == 0 or present.max() <= 255):
        label = sitk.Cast(label, sitk.sitkUInt8)
    return sitk.Cast(image, sitk.sitkFloat32), label


def target_mask(label_array: np.ndarray, case: Case, target: str) -> np.ndarray:
    """Boolean mask of ``target`` in a case's label array."""
    if target not in case.labels:
        raise SegAnyPETError(f"case {case.case_id} has no target {target!r}; it has {', '.join(case.labels) or 'none'}")
    return np.asarray(label_array) == case.labels[target]
