"""Scanner physics: point-spread blur (partial volume) and count-dependent, correlated noise.

- Resolution: a Gaussian PSF of 5-8 mm FWHM, the system resolution of a clinical scanner
  (Siemens Biograph mCT: ~4.4 mm FWHM at the centre, NEMA; Jakoby et al., Phys Med Biol
  2011;56:2375) combined with the usual post-reconstruction Gaussian filter of 2-5 mm.
- Noise: in an iteratively reconstructed image the variance grows roughly with the local
  activity, so the standard deviation is ``cov * sqrt(reference * a)`` where ``a`` is the blurred
  activity and ``reference`` the liver SUV: the liver's coefficient of variation is then ``cov``
  (5-20 % per patient; EANM 2015 asks for < 15 %). The noise is white noise low-pass filtered to a
  grain of 6-11 mm FWHM, as OSEM noise is correlated over about the resolution.
- Multi-bed acquisition: overlapping beds of 216 mm (the mCT's axial field of view) give a
  sensitivity that dips at the bed junctions and at both ends, so noise varies along z.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class ScannerModel:
    """Per-patient acquisition: PSF, noise level and grain, bed length and overlap."""

    psf_fwhm_mm: float
    liver_cov: float
    noise_fwhm_mm: float
    bed_length_mm: float = 216.0
    bed_overlap: float = 0.43

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "ScannerModel":
        return cls(
            psf_fwhm_mm=float(rng.uniform(5.0, 8.0)),
            liver_cov=float(rng.uniform(0.05, 0.2)),
            noise_fwhm_mm=float(rng.uniform(6.0, 11.0)),
            bed_overlap=float(rng.uniform(0.3, 0.5)),
        )

    def as_dict(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def blur(activity: np.ndarray, spacing: Sequence[float], fwhm_mm: float) -> np.ndarray:
    """Gaussian PSF of ``fwhm_mm`` on a [z, y, x] array with spacing (x, y, z) in mm."""
    sigma = [fwhm_mm * FWHM_TO_SIGMA / spacing[d] for d in (2, 1, 0)]
    return ndimage.gaussian_filter(activity, sigma, mode="constant", truncate=3.0)


def bed_sensitivity(nz: int, spacing_z: float, model: ScannerModel) -> np.ndarray:
    """Relative sensitivity per slice of a step-and-shoot acquisition, mean 1 at the bed centres."""
    z = np.arange(nz) * spacing_z
    step = model.bed_length_mm * (1.0 - model.bed_overlap)
    beds = int(np.ceil(max(z[-1] - model.bed_length_mm, 0.0) / step)) + 1
    start = (z[-1] - (model.bed_length_mm + (beds - 1) * step)) / 2.0
    sensitivity = np.zeros(nz)
    half = model.bed_length_mm / 2.0
    for b in range(beds):
        centre = start + half + b * step
        sensitivity += np.clip(1.0 - np.abs(z - centre) / half, 0.0, None)  # axial triangle
    return np.maximum(sensitivity, 0.15) / np.median(sensitivity)


def correlated_noise(shape, spacing: Sequence[float], fwhm_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise with a Gaussian correlation of ``fwhm_mm``."""
    white = rng.standard_normal(shape, dtype=np.float32)
    sigma = [fwhm_mm * FWHM_TO_SIGMA / spacing[d] for d in (2, 1, 0)]
    noise = ndimage.gaussian_filter(white, sigma, mode="wrap", truncate=3.0)
    noise /= noise.std() + 1e-12
    return noise


def nonzero_box(array: np.ndarray, margin: Sequence[int] = (0, 0, 0)) -> Tuple[slice, ...]:
    """Bounding box of the non-zero voxels of a [z, y, x] array, grown by ``margin`` voxels per axis."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        used = np.flatnonzero(np.any(array != 0, axis=other))
        if used.size == 0:
            return tuple(slice(0, 0) for _ in range(3))
        box.append(slice(max(int(used[0]) - margin[axis], 0), min(int(used[-1]) + 1 + margin[axis], array.shape[axis])))
    return tuple(box)


def acquire(activity: np.ndarray, spacing: Sequence[float], model: ScannerModel, reference_suv: float,
            rng: np.random.Generator) -> np.ndarray:
    """Blurred, noisy, non-negative SUV image (float32, quantised to 0.001 SUV like DICOM data).

    Only the box around the body (plus the PSF's reach) is processed; outside it stays 0.
    """
    reach = [int(np.ceil(3.0 * model.psf_fwhm_mm * FWHM_TO_SIGMA / spacing[d])) + 1 for d in (2, 1, 0)]
    box = nonzero_box(activity, reach)
    image = np.zeros(activity.shape, dtype=np.float32)
    if any(b.start >= b.stop for b in box):
        return image
    blurred = blur(activity[box], spacing, model.psf_fwhm_mm)
    noise = correlated_noise(blurred.shape, spacing, model.noise_fwhm_mm, rng)
    level = model.liver_cov / np.sqrt(bed_sensitivity(activity.shape[0], spacing[2], model)[box[0]])
    sigma = np.sqrt(np.maximum(blurred, 0.0) * np.float32(reference_suv)) * level.astype(np.float32)[:, None, None]
    noisy = blurred + sigma * noise
    noisy[blurred < 0.01] = 0.0  # air beyond the blurred body edge
    np.maximum(noisy, 0.0, out=noisy)
    image[box] = np.round(noisy * 1000.0) / 1000.0
    return image
