"""3D ViT image encoder of SAM-Med3D, with an exact fast path for its padded-window blocks.

Relative positions. The published network adds its decomposed relative-position terms with a
broadcast that differs from MViTv2: for query (a, b, c) and key (x, y, z) on a cubic grid it adds::

    q[a,b,c] . Rd[a,z]  +  q[a,b,x] . Rh[b,z]  +  q[a,b,y] . Rw[y,z]

(``Rd[i,j]`` is the table row for offset i - j), i.e. every axis term varies along the key's last
axis and two of them use the query of another token of the same (a, b) row. The weights were
trained with it, so :class:`Attention` computes exactly this.

Padded windows. In ``vit_b_ori`` the token grid is 8^3 but eight of the twelve blocks use "window"
attention with a window of 14: the official code zero-pads the layer-normed tokens to 14^3 and
attends over all 2744 tokens, 512 of them real. Padded tokens are zero vectors, so their queries,
keys and values all equal the qkv bias. For a real query, the padded keys together contribute::

    exp(s q.b_k) * [ sum_{all x,y,z < 14} - sum_{x,y,z < 8} ] exp(A[z] + H[x,z] + W[y,z])

with ``b_v`` as their common value, where A, H and W are the three terms above; each bracketed sum
is a log-sum-exp over z of per-axis log-sum-exps. So all padded keys act like ONE extra key
``b_k`` with value ``b_v`` and the log of the bracket as its additive bias. :meth:`Attention.forward`
attends the 512 real queries over 512 + 1 keys with ``scaled_dot_product_attention``: the official
numbers with 512 x 513 instead of 2744 x 2744 logits, and projections and MLP for real tokens only.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .common import LayerNorm3d, MLPBlock


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position table (q_size, k_size, C) for query and key positions along one axis."""
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos = F.interpolate(rel_pos.T[None], size=max_rel_dist, mode="linear")[0].T
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


class Attention(nn.Module):
    """Multi-head self-attention with decomposed relative positions on D, H and W (MViTv2)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        use_rel_pos: bool = True,
        input_size: Tuple[int, int, int] = (8, 8, 8),
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        self.input_size = input_size
        if use_rel_pos:
            self.rel_pos_d = nn.Parameter(torch.zeros(2 * input_size[0] - 1, self.head_dim))
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[1] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[2] - 1, self.head_dim))

    def _zero_token(self, which: int, like: torch.Tensor) -> torch.Tensor:
        """q (0), k (1) or v (2) of a zero token, (1, heads, 1, head_dim): the qkv bias slice."""
        heads, head_dim = self.num_heads, self.head_dim
        if self.qkv.bias is None:
            return like.new_zeros(1, heads, 1, head_dim)
        dim = heads * head_dim
        return self.qkv.bias[which * dim : (which + 1) * dim].view(1, heads, 1, head_dim).to(like.dtype)

    def _rel_terms(self, q: torch.Tensor, grid: int, keys: int):
        """The three relative-position terms (see module doc) in float32.

        Returns A (B,h,a,b,c,z), H (B,h,a,b,x,z) and W (B,h,a,b,y,z) for a cubic grid of ``grid``
        real tokens per axis and ``keys`` key positions per axis (> grid inside a padded window,
        where the queries of the padded tokens are the query bias).
        """
        b, heads = q.shape[:2]
        qg = q.reshape(b, heads, grid, grid, grid, self.head_dim).float()
        if keys > grid:
            q_pad = self._zero_token(0, qg).float().view(1, heads, 1, 1, 1, self.head_dim)
            q_ext = torch.cat([qg, q_pad.expand(b, -1, grid, grid, keys - grid, -1)], dim=4)
        else:
            q_ext = qg
        rd, rh, rw = (get_rel_pos(keys, keys, t).float() for t in (self.rel_pos_d, self.rel_pos_h, self.rel_pos_w))
        a_term = torch.einsum("bnijke,ize->bnijkz", qg, rd[:grid])
        h_term = torch.einsum("bnijxe,jze->bnijxz", q_ext, rh[:grid])
        w_term = torch.einsum("bnijye,yze->bnijyz", q_ext, rw)
        return a_term, h_term, w_term

    def forward(self, x: torch.Tensor, padded_window: Optional[int] = None) -> torch.Tensor:
        """Attend over the (B, n, n, n, C) tokens.

        With ``padded_window`` the tokens are the real part of one zero-padded window of that size
        (the official single-window case) and the padded keys are added in closed form.
        """
        b, d, h, w, c = x.shape
        if not d == h == w:
            raise ValueError(f"SAM-Med3D attention needs a cubic token grid, got {d}x{h}x{w}")
        n = d * h * w
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        keys = padded_window or d
        bias = None
        if self.use_rel_pos:
            a_term, h_term, w_term = self._rel_terms(q, d, keys)
            bias = (
                a_term[..., None, None, :d]
                + h_term[:, :, :, :, None, :d, None, :d]
                + w_term[:, :, :, :, None, None, :d, :d]
            ).reshape(b, self.num_heads, n, n)
        if padded_window:
            if self.use_rel_pos:
                log_pad = self._log_padded_weight(a_term, h_term, w_term, d)
            else:
                bias = q.new_zeros(b, self.num_heads, n, n, dtype=torch.float32)
                log_pad = bias.new_full((b, self.num_heads, n), float(keys**3 - n)).log()
            k = torch.cat([k, self._zero_token(1, k).expand(b, -1, -1, -1)], dim=2)
            v = torch.cat([v, self._zero_token(2, v).expand(b, -1, -1, -1)], dim=2)
            bias = torch.cat([bias, log_pad.reshape(b, self.num_heads, n, 1)], dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, d, h, w, c))

    @staticmethod
    def _log_padded_weight(a_term, h_term, w_term, grid: int) -> torch.Tensor:
        """log sum over the padded keys of exp(rel-pos terms): all keys of the window minus the real ones."""

        def log_total(size: int) -> torch.Tensor:
            over_x = torch.logsumexp(h_term[..., :size, :size], dim=-2)[:, :, :, :, None, :]
            over_y = torch.logsumexp(w_term[..., :size, :size], dim=-2)[:, :, :, :, None, :]
            return torch.logsumexp(a_term[..., :size] + over_x + over_y, dim=-1)

        log_all = log_total(a_term.shape[-1])
        log_real = log_total(grid)
        return log_all + torch.log(-torch.expm1(log_real - log_all))


class Block3D(nn.Module):
    """Pre-norm transformer block with global or (padded) window attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_layer: Type[nn.Module] = nn.LayerNorm,
        act_layer: Type[nn.Module] = nn.GELU,
        use_rel_pos: bool = True,
        window_size: int = 0,
        input_size: Tuple[int, int, int] = (8, 8, 8),
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            input_size=input_size if window_size == 0 else (window_size,) * 3,
        )
        self.norm2 = norm_layer(dim)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), act=act_layer)
        self.window_size = window_size
        # False runs the official computation (zero-padded windows, every padded token attended):
        # the same numbers, kept for benchmarks and tests.
        self.padded_fast_path = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        grid = x.shape[1:4]
        if self.window_size == 0 or all(s == self.window_size for s in grid):
            x = self.attn(x)
        elif self.padded_fast_path and all(s <= self.window_size for s in grid):
            x = self.attn(x, padded_window=self.window_size)
        else:
            x = self._windowed(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))

    def _windowed(self, x: torch.Tensor) -> torch.Tensor:
        """Several windows (grids larger than the window): the official partition, full attention."""
        b, d, h, w, c = x.shape
        ws = self.window_size
        pads = [(ws - s % ws) % ws for s in (d, h, w)]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        dp, hp, wp = d + pads[0], h + pads[1], w + pads[2]
        x = x.view(b, dp // ws, ws, hp // ws, ws, wp // ws, ws, c)
        windows = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, ws, ws, ws, c)
        windows = self.attn(windows)
        x = windows.view(b, dp // ws, hp // ws, wp // ws, ws, ws, ws, c)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, dp, hp, wp, c)
        return x[:, :d, :h, :w].contiguous()


class PatchEmbed3D(nn.Module):
    """Non-overlapping 3D patches to tokens, output (B, D, H, W, C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 4, 1)


class ImageEncoderViT3D(nn.Module):
    """ViT backbone plus a convolutional neck; (B, 1, S, S, S) -> (B, out_chans, S/p, S/p, S/p)."""

    def __init__(
        self,
        img_size: int = 128,
        patch_size: int = 16,
        in_chans: int = 1,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 384,
        qkv_bias: bool = True,
        use_rel_pos: bool = True,
        window_size: int = 14,
        global_attn_indexes: Tuple[int, ...] = (2, 5, 8, 11),
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed3D(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, grid, embed_dim))
        norm = lambda dim: nn.LayerNorm(dim, eps=1e-6)  # noqa: E731
        self.blocks = nn.ModuleList(
            Block3D(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                norm_layer=norm,
                use_rel_pos=use_rel_pos,
                window_size=0 if i in global_attn_indexes else window_size,
                input_size=(grid, grid, grid),
            )
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv3d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm3d(out_chans),
            nn.Conv3d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm3d(out_chans),
        )
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, progress: Optional[Callable[[float], None]] = None) -> torch.Tensor:
        """``progress(fraction)`` is called before each block (it may raise to cancel)."""
        x = self.patch_embed(x) + self.pos_embed
        for index, block in enumerate(self.blocks):
            if progress is not None:
                progress(index / len(self.blocks))
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.neck(x.permute(0, 4, 1, 2, 3))
