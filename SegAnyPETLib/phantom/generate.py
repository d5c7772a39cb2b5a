"""One synthetic whole-body FDG-PET case in memory: SUV image, expert and noisy labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from ..labels import LABELS
from .anatomy import build_anatomy
from .body import Tissue
from .noisy_labels import DEFAULT_SEVERITY, label_dice, simulate_noisy_labels
from .scanner import ScannerModel, acquire
from .uptake import activity_map, sample_suv

# PETS-5k (Siemens Biograph mCT) voxel size and our in-plane matrix: 651 x 456 mm, body cropped.
SPACING: Tuple[float, float, float] = (4.07, 4.07, 3.0)
IN_PLANE: Tuple[int, int] = (160, 112)

Seed = Union[int, Sequence[int]]


@dataclass
class PhantomCase:
    """SUV image (float32), expert label and noisy label (uint8), same grid, plus a summary."""

    image: sitk.Image
    label: sitk.Image
    noisy_label: sitk.Image
    info: Dict = field(default_factory=dict)


def _to_image(array: np.ndarray, grid) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in grid.spacing))
    image.SetOrigin(tuple(float(o) for o in grid.origin))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return image


def generate_case(seed: Seed, severity: float = DEFAULT_SEVERITY, spacing: Sequence[float] = SPACING,
                  in_plane: Sequence[int] = IN_PLANE, noisy: bool = True) -> PhantomCase:
    """Generate one patient from ``seed`` (an int or a sequence such as ``(dataset_seed, index)``).

    The same seed always gives the same case. ``spacing`` (x, y, z mm) and ``in_plane`` (nx, ny)
    change the grid, the anatomy stays in millimetres. ``noisy=False`` skips the noisy label
    (``noisy_label`` is then a copy of the expert label).
    """
    rng = np.random.default_rng(seed)
    # Separate streams, so that e.g. changing the noise model leaves the anatomy unchanged.
    anatomy_rng, uptake_rng, scanner_rng, label_rng = rng.spawn(4)
    anatomy = build_anatomy(anatomy_rng, spacing=tuple(spacing), in_plane=tuple(in_plane))
    suv = sample_suv(uptake_rng)
    activity, lesions = activity_map(anatomy, suv, uptake_rng)
    scanner = ScannerModel.sample(scanner_rng)
    image = acquire(activity, anatomy.grid.spacing, scanner, suv[Tissue.LIVER], scanner_rng)
    if noisy:
        noisy_label = simulate_noisy_labels(anatomy.label, anatomy.grid.spacing, label_rng, severity)
    else:
        noisy_label = anatomy.label.copy()
    patient = anatomy.patient
    info = {
        "sex": patient.sex,
        "height_cm": round(175.0 * patient.height, 1),
        "arms": patient.arms,
        "size": list(anatomy.grid.size),
        "labels_present": sorted(name for name, value in LABELS.items() if (anatomy.label == value).any()),
        "suv": {t.name.lower(): round(v, 2) for t, v in suv.items() if t != Tissue.AIR},
        "scanner": scanner.as_dict(),
        "lesions": lesions,
    }
    if noisy:
        info["noisy_label_severity"] = severity
        info["noisy_label_dice"] = {name: round(d, 3) for name, d in label_dice(anatomy.label, noisy_label).items()}
    return PhantomCase(_to_image(image, anatomy.grid), _to_image(anatomy.label, anatomy.grid),
                       _to_image(noisy_label, anatomy.grid), info)
