"""Pick the torch device: CUDA, then Apple MPS, then CPU."""
from __future__ import annotations

import torch

from .errors import SegAnyPETError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a device into a device."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise SegAnyPETError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SegAnyPETError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU here")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise SegAnyPETError(f"device {device!r} asked for, but Apple MPS is not available here")
    return resolved
