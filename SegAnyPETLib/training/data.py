"""Training samples: a crop around a random voxel of a random target, made exactly as at inference.

Sample ``i`` of a rank is a pure function of ``(seed, rank, i)``, so a resumed run sees exactly the
samples it would have seen, with any number of loader workers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import SegAnyPETError
from ..preprocessing import CropGrid, PreprocessConfig, crop_label, resample_crop, zscore_positive

logger = logging.getLogger(__name__)


@dataclass
class TrainingCase:
    """One loaded case: its PET image, the label used for training, and where each target lies."""

    case_id: str
    image: sitk.Image
    label: sitk.Image
    target_values: Dict[str, int]  # target name -> label value, only targets present in the label
    target_voxels: Dict[str, np.ndarray]  # target name -> flat indices (numpy order) of its voxels

    @classmethod
    def from_images(cls, case_id: str, image: sitk.Image, label: sitk.Image, targets: Dict[str, int], min_voxels: int) -> "TrainingCase":
        array = sitk.GetArrayViewFromImage(label)
        values, voxels = {}, {}
        for name, value in targets.items():
            flat = np.flatnonzero(array == value)
            if flat.size >= min_voxels:
                values[name], voxels[name] = value, flat.astype(np.int64)
        return cls(case_id, image, label, values, voxels)


class CropSampleDataset(Dataset):
    """Item ``i``: ``{"image": (1,S,S,S) float32, "target": (1,S,S,S) float32, "case": str, "name": str}``."""

    def __init__(
        self,
        cases: Sequence[TrainingCase],
        preprocessing: PreprocessConfig,
        seed: int = 0,
        rank: int = 0,
        augment: bool = True,
        scale_range: Tuple[float, float] = (0.85, 1.15),
        min_target_voxels: int = 100,
        target_weights: Optional[Dict[str, float]] = None,
        centre_shift: float = 0.0,
    ) -> None:
        self.cases = [case for case in cases if case.target_values]
        if not self.cases:
            raise SegAnyPETError("no training case contains any of the requested targets")
        self.preprocessing = preprocessing
        self.seed, self.rank = seed, rank
        self.augment = augment
        self.scale_range = scale_range
        self.min_target_voxels = min_target_voxels
        self.target_weights = dict(target_weights or {})
        self.centre_shift = centre_shift

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> Dict[str, object]:
        rng = np.random.default_rng([self.seed, self.rank, int(index)])
        for _ in range(10):
            sample = self._draw(rng)
            if sample is not None:
                return sample
        return self._draw(rng, accept_small=True)

    def _draw(self, rng: np.random.Generator, accept_small: bool = False) -> Optional[Dict[str, object]]:
        case = self.cases[rng.integers(len(self.cases))]
        names = sorted(case.target_values)
        weights = np.array([self.target_weights.get(n, 1.0) for n in names], dtype=float)
        name = names[rng.choice(len(names), p=weights / weights.sum())]
        flat = case.target_voxels[name][rng.integers(len(case.target_voxels[name]))]
        index = np.unravel_index(int(flat), tuple(reversed(case.label.GetSize())))
        center = np.array(case.label.TransformIndexToPhysicalPoint([int(index[2]), int(index[1]), int(index[0])]))
        if self.centre_shift:  # the target need not cover the crop's centre: only the clicks say what to segment
            center = center + rng.uniform(-self.centre_shift, self.centre_shift, 3)
        spacing = np.asarray(self.preprocessing.spacing, dtype=float)
        if self.augment:
            spacing = spacing * rng.uniform(*self.scale_range)
        config = PreprocessConfig(spacing=tuple(spacing), crop_size=self.preprocessing.crop_size)
        grid = CropGrid.around(center, config, case.image)
        target = crop_label(case.label, grid) == case.target_values[name]
        if not accept_small and target.sum() < self.min_target_voxels:
            return None
        image = resample_crop(case.image, grid)
        if self.augment:
            image, target = _augment(image, target, rng)
        image = zscore_positive(image)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image))[None],
            "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))[None],
            "case": case.case_id,
            "name": name,
        }


def _augment(image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Flips on each axis; PET-style intensity changes: gamma on the uptake, blur or noise."""
    for axis in range(3):
        if rng.random() < 0.5:
            image, target = np.flip(image, axis), np.flip(target, axis)
    positive = np.clip(image, 0, None)
    if rng.random() < 0.5:  # contrast between low and high uptake (scanner, reconstruction, uptake time)
        scale = float(np.percentile(positive, 99.5)) or 1.0
        image = scale * (positive / scale) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.25:  # extra noise relative to the local uptake (fewer counts)
        image = image + rng.normal(0, rng.uniform(0.05, 0.2), image.shape) * np.sqrt(np.abs(image) * float(image.mean() + 1e-6))
    return image.astype(np.float32), target


class SequentialSampler(Sampler[int]):
    """Indices ``start, start + 1, ...`` without end (random draws happen inside the dataset)."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        index = self.start
        while True:
            yield index
            index += 1

    def __len__(self) -> int:  # pragma: no cover - infinite
        return 2**62


def collate(samples: List[Dict[str, object]]) -> Dict[str, object]:
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "target": torch.stack([s["target"] for s in samples]),
        "case": [s["case"] for s in samples],
        "name": [s["name"] for s in samples],
    }
