"""Synthetic whole-body FDG-PET phantoms with expert and noisy labels (see docs/phantoms.md).

Modules, one job each: :mod:`.shapes` (implicit shapes and the canvas that rasterises them),
:mod:`.body` (patient build, tissue classes, body outline and skeleton), :mod:`.organs` (internal
organs), :mod:`.anatomy` (lesions and the assembled patient, in millimetres), :mod:`.uptake` (SUV per
tissue from the literature), :mod:`.scanner` (PSF blur and correlated count noise), :mod:`.noisy_labels`
(low-quality labels), :mod:`.generate` (one case in memory), :mod:`.dataset` (nnU-Net v2 folder)
and :mod:`.preview` (coronal MIPs with label outlines).
"""
from __future__ import annotations

from .generate import PhantomCase, generate_case

__all__ = ["PhantomCase", "generate_case"]
