"""Mask decoder of SAM-Med3D: prompt tokens + image embedding -> low-resolution mask logits and IoU."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from .common import MLP, LayerNorm3d
from .transformer import TwoWayTransformer3D


class MaskDecoder3D(nn.Module):
    """Predicts masks at 4x the embedding resolution (32^3 for an 8^3 embedding)."""

    def __init__(
        self,
        transformer_dim: int = 384,
        num_multimask_outputs: int = 3,
        transformer_depth: int = 2,
        transformer_heads: int = 8,
        transformer_mlp_dim: int = 2048,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer3D(
            transformer_depth, transformer_dim, transformer_heads, transformer_mlp_dim
        )
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose3d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm3d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose3d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool = False,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (masks (B, M, 4X, 4Y, 4Z), iou (B, M)); M = 1 unless ``multimask_output``."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)
        src = image_embeddings
        if src.shape[0] != batch:
            src = torch.repeat_interleave(src, batch, dim=0)
        src = src + dense_prompt_embeddings
        pos = image_pe if image_pe.shape[0] == batch else torch.repeat_interleave(image_pe, batch, dim=0)
        b, c, x, y, z = src.shape

        hs, src = self.transformer(src, pos, tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, x, y, z))
        selected = range(1, self.num_mask_tokens) if multimask_output else range(1)
        hyper_in = torch.stack([self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in selected], dim=1)
        b, c_up, ux, uy, uz = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c_up, -1)).reshape(b, -1, ux, uy, uz)
        iou = self.iou_prediction_head(hs[:, 0])[:, list(selected)]
        return masks, iou
