"""Losses of the trainer: DiceCE (SAM-Med3D) and the CPCL terms of SegAnyPET (paper Sec. 3.3-3.4)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """MONAI-style DiceCE with sigmoid and squared predictions, averaged over the batch.

    ``logits`` and ``target`` (B, 1, X, Y, Z); ``target`` may be soft (0..1).
    """
    target = target.to(logits.dtype)
    prob = torch.sigmoid(logits)
    dims = tuple(range(2, logits.ndim))
    intersection = (prob * target).sum(dims)
    denominator = (prob * prob).sum(dims) + (target * target).sum(dims)
    dice = 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)
    return dice.mean() + F.binary_cross_entropy_with_logits(logits, target)


def consistency_loss(probabilities: Sequence[torch.Tensor]) -> torch.Tensor:
    """L_cps = sum_i || mean_j Y_j - Y_i ||^2, each squared norm averaged over voxels and batch."""
    stacked = torch.stack(list(probabilities))
    mean = stacked.mean(dim=0, keepdim=True)
    return ((stacked - mean) ** 2).flatten(1).mean(dim=1).sum()


def predictive_entropy(probability: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Voxel-wise binary entropy (nats) of the mean prediction: U = -sum_c p_c log p_c."""
    p = probability.clamp(eps, 1 - eps)
    return -(p * torch.log(p) + (1 - p) * torch.log(1 - p))


def rectify_labels(noisy: torch.Tensor, uncertainty: torch.Tensor, threshold: float) -> torch.Tensor:
    """y~ = y + 1(u > H) * (-1)^y: flip the noisy label where the uncertainty exceeds H (paper Eq.)."""
    noisy = noisy.to(uncertainty.dtype)
    flip = (uncertainty > threshold).to(noisy.dtype)
    return noisy + flip * (1.0 - 2.0 * noisy)


def rampup_weight(step: int, total_steps: int, w_max: float, shape: str = "gaussian") -> float:
    """lambda(t): ``gaussian`` w_max exp(-5 (1 - t/T)^2) (the usual form), ``exp`` w_max exp(-5 (1 - t/T))
    (as printed in the paper), or ``constant``."""
    if shape == "constant" or total_steps <= 0:
        return w_max
    phase = 1.0 - min(max(step / total_steps, 0.0), 1.0)
    if shape == "gaussian":
        return w_max * math.exp(-5.0 * phase * phase)
    if shape == "exp":
        return w_max * math.exp(-5.0 * phase)
    raise ValueError(f"unknown ramp-up shape {shape!r}")
