"""A small convolutional image encoder with the ViT encoder's interface, for training from scratch.

A residual 3D CNN (instance norm, leaky ReLU: nnU-Net's building blocks) downsamples the crop by 8
for context, adds global attention over that coarse grid, and comes back to 1/4 of the crop with a
U-Net skip. Convolutions learn organ shapes from few examples much faster than ViT
patches, and the finer embedding grid (16^3 for a 64^3 crop) gives the decoder full-resolution
masks. Output: (B, out_chans, S/4, S/4, S/4), exactly what the mask decoder takes.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .common import LayerNorm3d


def _conv_norm(in_chans: int, out_chans: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    """3^3 convolution, instance norm and (unless ``act`` is False) leaky ReLU."""
    layers = [
        nn.Conv3d(in_chans, out_chans, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.InstanceNorm3d(out_chans, affine=True),
    ]
    if act:
        layers.append(nn.LeakyReLU(0.01, inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock3D(nn.Module):
    """Two 3^3 convolutions with a shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_norm(channels, channels)
        self.conv2 = _conv_norm(channels, channels, act=False)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class GlobalAttention3D(nn.Module):
    """Pre-norm transformer layers over every voxel of a coarse grid, with a learned position embedding."""

    def __init__(self, channels: int, grid: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, grid**3, channels))
        layer = nn.TransformerEncoderLayer(
            channels, num_heads, dim_feedforward=4 * channels, dropout=0.0,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        tokens = self.layers(x.flatten(2).transpose(1, 2) + self.pos_embed)
        return tokens.transpose(1, 2).reshape(b, c, d, h, w)


class ImageEncoderConv3D(nn.Module):
    """(B, 1, S, S, S) -> (B, out_chans, S/4, S/4, S/4) with ``channels`` = widths at S/2, S/4, S/8."""

    def __init__(
        self,
        img_size: int = 64,
        channels: Sequence[int] = (16, 32, 64),
        out_chans: int = 96,
        attention_depth: int = 2,
        attention_heads: int = 4,
    ) -> None:
        super().__init__()
        c2, c4, c8 = channels
        self.stem = _conv_norm(1, c2, stride=2)
        self.down4 = nn.Sequential(_conv_norm(c2, c4, stride=2), ResidualBlock3D(c4), ResidualBlock3D(c4))
        self.down8 = nn.Sequential(_conv_norm(c4, c8, stride=2), ResidualBlock3D(c8), ResidualBlock3D(c8))
        self.context = GlobalAttention3D(c8, img_size // 8, attention_depth, attention_heads)
        self.up4 = nn.ConvTranspose3d(c8, c4, kernel_size=2, stride=2)
        self.fuse = nn.Sequential(_conv_norm(2 * c4, c4), ResidualBlock3D(c4))
        self.neck = nn.Sequential(
            nn.Conv3d(c4, out_chans, kernel_size=1, bias=False),
            LayerNorm3d(out_chans),
            nn.Conv3d(out_chans, out_chans, kernel_size=1, bias=False),
            LayerNorm3d(out_chans),
        )
        self.grad_checkpointing = False

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training:
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, x: torch.Tensor, progress: Optional[Callable[[float], None]] = None) -> torch.Tensor:
        """``progress(fraction)`` is called before each stage (it may raise to cancel)."""
        report = progress or (lambda fraction: None)
        report(0.0)
        skip = self._run(self.down4, self._run(self.stem, x))
        report(0.4)
        coarse = self.context(self._run(self.down8, skip))
        report(0.6)
        fused = self._run(self.fuse, torch.cat([skip, self.up4(coarse)], dim=1))
        report(0.9)
        return self.neck(fused)
