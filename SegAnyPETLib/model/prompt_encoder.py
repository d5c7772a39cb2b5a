"""Prompt encoder of SAM-Med3D: points and a low-resolution mask to sparse and dense embeddings."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from .common import LayerNorm3d


class PositionEmbeddingRandom3D(nn.Module):
    """Random-Fourier positional encoding of 3D coordinates in [0, 1]."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((3, num_pos_feats)))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        # The published network repeats the sine block: 3 x num_pos_feats channels.
        return torch.cat([torch.sin(coords), torch.cos(coords), torch.sin(coords)], dim=-1)

    def forward(self, size: Tuple[int, int, int]) -> torch.Tensor:
        """Dense encoding (C, X, Y, Z) of the cell centres of a grid.

        Quirk kept for the published weights: the stacked coordinate of cell (i, j, k) is
        ((j + .5) / size[0], (i + .5) / size[1], (k + .5) / size[2]), so the first two axes are
        swapped relative to :meth:`forward_with_coords`.
        """
        device = self.positional_encoding_gaussian_matrix.device
        i, j, k = torch.meshgrid(*(torch.arange(s, device=device, dtype=torch.float32) for s in size), indexing="ij")
        coords = torch.stack([(j + 0.5) / size[0], (i + 0.5) / size[1], (k + 0.5) / size[2]], dim=-1)
        return self._encode(coords).permute(3, 0, 1, 2)

    def forward_with_coords(self, coords: torch.Tensor, image_size: Tuple[int, int, int]) -> torch.Tensor:
        """Encode (B, N, 3) coordinates given in voxels of an image of ``image_size``."""
        scale = torch.tensor(image_size, device=coords.device, dtype=torch.float32)
        return self._encode(coords.float() / scale)


class PromptEncoder3D(nn.Module):
    """Sparse embeddings for points, dense embeddings for the previous low-resolution logits.

    With ``click_maps`` (not in the published network) the dense input also has a positive and a
    negative click channel, each click a 3^3 block at the logits' resolution, so the dense
    embedding knows where inside an embedding cell a click lies.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: Tuple[int, int, int],
        input_image_size: Tuple[int, int, int],
        mask_in_chans: int = 16,
        click_maps: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.pe_layer = PositionEmbeddingRandom3D(embed_dim // 3)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(2))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = tuple(4 * s for s in image_embedding_size)
        self.click_maps = click_maps
        self.mask_downscaling = nn.Sequential(
            nn.Conv3d(3 if click_maps else 1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm3d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv3d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm3d(mask_in_chans),
            nn.GELU(),
            nn.Conv3d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image-embedding grid, (1, C, X, Y, Z)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5  # voxel centre
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 3)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        is_pad = (labels == -1).unsqueeze(-1)
        embedding = torch.where(is_pad, self.not_a_point_embed.weight, embedding)
        embedding = embedding + (labels == 0).unsqueeze(-1) * self.point_embeddings[0].weight
        embedding = embedding + (labels == 1).unsqueeze(-1) * self.point_embeddings[1].weight
        return embedding

    def _rasterize(self, points: Optional[Tuple[torch.Tensor, torch.Tensor]], masks: torch.Tensor) -> torch.Tensor:
        """(B, 2, *mask_input_size) maps of the positive and negative points (padding ignored),
        for the mask prompt ``masks`` (B, 1, *mask_input_size) they are stacked with."""
        size = self.mask_input_size
        maps = masks.new_zeros((masks.shape[0], 2) + tuple(size))
        if points is not None and points[0].shape[1]:
            coords, labels = points
            scale = torch.tensor([m / i for m, i in zip(size, self.input_image_size)], device=coords.device)
            cells = torch.floor((coords.float() + 0.5) * scale).long()
            cells = torch.minimum(cells.clamp(min=0), torch.tensor(size, device=cells.device) - 1)
            valid = (labels == 0) | (labels == 1)
            b, n = torch.nonzero(valid, as_tuple=True)
            channel = 1 - labels[b, n]  # positive -> 0, negative -> 1
            x, y, z = cells[b, n].unbind(-1)
            maps[b, channel, x, y, z] = 1.0
            maps = nn.functional.max_pool3d(maps, kernel_size=3, stride=1, padding=1)
        return maps

    def forward(
        self,
        points: Optional[Tuple[torch.Tensor, torch.Tensor]],
        boxes: Optional[torch.Tensor] = None,
        masks: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``points=(coords (B,N,3) in crop voxels, labels (B,N) 1/0)``, ``masks`` (B,1,4X,4Y,4Z)."""
        if boxes is not None:
            raise ValueError("box prompts are not supported: the published weights have no box embedding")
        if points is not None:
            batch = points[0].shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device
        sparse = torch.empty((batch, 0, self.embed_dim), device=device)
        if points is not None:
            sparse = torch.cat([sparse, self._embed_points(points[0], points[1], pad=True)], dim=1)
        if self.click_maps:
            if masks is None:
                masks = torch.zeros((batch, 1, *self.mask_input_size), device=device)
            masks = torch.cat([masks, self._rasterize(points, masks)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return sparse, dense
