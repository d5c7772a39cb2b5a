"""Low-quality labels: an AI pre-annotation corrected in a hurry by a junior reader.

Per organ, with amplitudes and probabilities scaled by ``severity`` in [0, 1]:

- boundary errors: the organ's signed distance map is shifted by a smooth random field of
  about 1-2 voxels plus a systematic over- or under-segmentation bias;
- slice errors: a few consecutive slices missing or shifted in-plane, the top or bottom slice
  of the organ left out (as when contours are drawn slice by slice and interpolated);
- a missing piece (a bite out of the boundary) and false-positive blobs next to the organ;
- occasionally the whole organ missing, and single lesions missed.

At the default severity 0.5 the per-organ Dice against the expert label is mostly 0.75-0.95
(docs/phantoms.md gives the measured numbers).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
from scipy import ndimage

from ..errors import SegAnyPETError
from ..labels import LABELS
from .shapes import SmoothField

DEFAULT_SEVERITY = 0.5
LESION = LABELS["lesion"]


def _signed_distance(mask: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Signed distance in mm, negative inside."""
    inside = ndimage.distance_transform_edt(mask, sampling=spacing_zyx)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx)
    return (outside - inside).astype(np.float32)


def _ball(shape, center, radius_mm: float, spacing_zyx) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing_zyx))
    return d2 < radius_mm ** 2


def _corrupt(mask: np.ndarray, spacing_zyx, rng: np.random.Generator, severity: float) -> np.ndarray:
    """One organ's mask (in a padded crop) with boundary, slice, piece and blob errors."""
    voxel = float(np.mean(spacing_zyx[1:]))
    radius = (3 * mask.sum() * float(np.prod(spacing_zyx)) / (4 * np.pi)) ** (1 / 3)
    distance = _signed_distance(mask, spacing_zyx)
    half_thickness = max(float(-distance.min()), voxel / 2)
    # Boundary: smooth displacement (mm) plus a global bias, ~1-2 voxels at severity 0.5-1, capped
    # by the organ's half thickness so thin organs (spleen, aorta) are not wiped out.
    amplitude = severity * min(3.0 * voxel, 0.6 * half_thickness) * rng.uniform(0.6, 1.2)
    zz, yy, xx = (np.arange(n, dtype=np.float32) * s for n, s in zip(mask.shape, spacing_zyx))
    field = SmoothField(rng, 1.0, modes=5, frequency=(0.6, 2.0), scale=max(radius, 10.0))
    wobble = field(xx[None, None, :], yy[None, :, None], zz[:, None, None])
    near = np.abs(distance) < 2 * voxel
    wobble *= 0.7 * amplitude / (float(np.sqrt(np.mean(np.square(wobble[near])))) + 1e-6)
    bias = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6) * amplitude
    noisy = distance < wobble + bias

    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if slices.size >= 4:
        if rng.random() < 0.6 * severity:  # a slab missing or shifted
            width = int(rng.integers(1, 4))
            start = int(rng.integers(slices[0], slices[-1] - width + 2))
            slab = slice(start, start + width)
            if rng.random() < 0.5:
                noisy[slab] = False
            else:
                shift = rng.integers(-2, 3, size=2)
                noisy[slab] = np.roll(noisy[slab], tuple(shift), axis=(1, 2))
        if rng.random() < 0.5 * severity:  # top or bottom slice left out
            end = slices[0] if rng.random() < 0.5 else slices[-1]
            noisy[end] = False
    boundary = np.argwhere(mask & ~ndimage.binary_erosion(mask))
    if boundary.size and rng.random() < 0.5 * severity:  # a bite out of the organ
        center = boundary[rng.integers(len(boundary))]
        noisy &= ~_ball(mask.shape, center, rng.uniform(0.25, 0.45) * radius, spacing_zyx)
    if boundary.size and rng.random() < 0.5 * severity:  # a false-positive blob beside it
        center = boundary[rng.integers(len(boundary))] + rng.integers(-3, 4, size=3)
        noisy |= _ball(mask.shape, center, rng.uniform(0.15, 0.3) * radius + voxel, spacing_zyx)
    return noisy


def simulate_noisy_labels(label: np.ndarray, spacing: Sequence[float], rng: np.random.Generator,
                          severity: float = DEFAULT_SEVERITY) -> np.ndarray:
    """Corrupt an expert label array [z, y, x] (spacing x, y, z in mm) into a low-quality one."""
    if not 0.0 <= severity <= 1.0:
        raise SegAnyPETError(f"noisy-label severity must be between 0 and 1, got {severity}")
    spacing_zyx = (float(spacing[2]), float(spacing[1]), float(spacing[0]))
    noisy = np.zeros_like(label)
    if severity == 0.0:
        return label.copy()
    margin = 6

    def padded(box, offset=(0, 0, 0)):
        return tuple(slice(max(o + b.start - margin, 0), min(o + b.stop + margin, n))
                     for b, o, n in zip(box, offset, label.shape))

    # Organs first, lesions last and one at a time, so that single lesions can be missed.
    objects = []
    for value, box in enumerate(ndimage.find_objects(label), start=1):
        if box is None:
            continue
        box = padded(box)
        if value != LESION:
            objects.append((value, box, label[box] == value))
            continue
        components, _ = ndimage.label(label[box] == LESION)
        for i, part in enumerate(ndimage.find_objects(components), start=1):
            part_box = padded(part, offset=[b.start for b in box])
            local = tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(part_box, box))
            objects.append((LESION, part_box, components[local] == i))
    for value, box, mask in objects:
        miss = 0.3 * severity if value == LESION else 0.06 * severity
        if rng.random() < miss:
            continue
        noisy[box][_corrupt(mask, spacing_zyx, rng, severity)] = value
    return noisy


def label_dice(expert: np.ndarray, noisy: np.ndarray) -> Dict[str, float]:
    """Dice of the noisy against the expert label, per name in LABELS present in the expert label."""
    n = 256
    joint = np.bincount(expert.ravel().astype(np.int64) * n + noisy.ravel(), minlength=n * n).reshape(n, n)
    result = {}
    for name, value in LABELS.items():
        total = joint[value].sum() + joint[:, value].sum()
        if joint[value].sum():
            result[name] = float(2.0 * joint[value, value] / total)
    return result
