"""SegAnyPET: promptable 3D segmentation of PET images, without any Slicer dependency."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "load_model"]


def __getattr__(name: str):
    # Lazy, so `import SegAnyPETLib` (and the CLI's start-up) does not import torch.
    if name == "build_model":
        from .model import build_model

        return build_model
    if name == "load_model":
        from .checkpoints import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
