"""A plain, obviously-correct forward pass of SAM-Med3D's network, straight from a state_dict.

Written from the published description (../shared/spec/REFERENCE.md), slowly and literally: the
padded-window blocks really zero-pad the tokens to the window and attend over every padded token,
and the relative-position terms are added with the published network's broadcast, written out as
an explicit per-(query, key) formula. The library's fast implementation is tested against this.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def layer_norm_channels(x, weight, bias, eps=1e-6):
    """LayerNorm over dim 1 of (B, C, ...)."""
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean) / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)


def rel_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """R[i, j] = table[i - j + size - 1], shape (size, size, C) (no interpolation needed here)."""
    assert table.shape[0] == 2 * size - 1
    i = torch.arange(size)[:, None]
    j = torch.arange(size)[None, :]
    return table[i - j + size - 1]


def attention_over_window(tokens, sd, prefix, heads):
    """Full attention over a cubic (n, n, n, C) window, all of its tokens as queries and keys."""
    n = tokens.shape[0]
    dim = tokens.shape[-1]
    head_dim = dim // heads
    flat = tokens.reshape(n**3, dim)
    qkv = flat @ sd[f"{prefix}.qkv.weight"].T + sd[f"{prefix}.qkv.bias"]
    q, k, v = qkv.split(dim, dim=-1)
    rd = rel_table(sd[f"{prefix}.rel_pos_d"], n)
    rh = rel_table(sd[f"{prefix}.rel_pos_h"], n)
    rw = rel_table(sd[f"{prefix}.rel_pos_w"], n)
    out = torch.empty_like(flat)
    for h in range(heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        qh, kh, vh = q[:, cols], k[:, cols], v[:, cols]
        logits = (qh / math.sqrt(head_dim)) @ kh.T  # (n^3, n^3)
        qg = qh.reshape(n, n, n, head_dim)  # [a, b, c]
        # Published broadcast: query (a,b,c), key (x,y,z) gets
        #   q[a,b,c].Rd[a,z] + q[a,b,x].Rh[b,z] + q[a,b,y].Rw[y,z]
        term_d = torch.einsum("abce,aze->abcz", qg, rd)  # [a,b,c,z]
        term_h = torch.einsum("abxe,bze->abxz", qg, rh)  # [a,b,x,z]
        term_w = torch.einsum("abye,yze->abyz", qg, rw)  # [a,b,y,z]
        bias = (
            term_d[:, :, :, None, None, :]  # varies with key z only
            + term_h[:, :, None, :, None, :]  # key x (as q's third index) and z
            + term_w[:, :, None, None, :, :]  # key y and z
        )
        logits = logits + bias.reshape(n**3, n**3)
        out[:, cols] = torch.softmax(logits, dim=-1) @ vh
    out = out @ sd[f"{prefix}.proj.weight"].T + sd[f"{prefix}.proj.bias"]
    return out.reshape(n, n, n, dim)


def encoder_block(x, sd, prefix, heads, window):
    """One pre-norm block on (g, g, g, C) tokens; window > g means one zero-padded window."""
    g = x.shape[0]
    normed = F.layer_norm(x, x.shape[-1:], sd[f"{prefix}.norm1.weight"], sd[f"{prefix}.norm1.bias"], 1e-6)
    if window:
        padded = torch.zeros(window, window, window, x.shape[-1])
        padded[:g, :g, :g] = normed
        attended = attention_over_window(padded, sd, f"{prefix}.attn", heads)[:g, :g, :g]
    else:
        attended = attention_over_window(normed, sd, f"{prefix}.attn", heads)
    x = x + attended
    hidden = F.layer_norm(x, x.shape[-1:], sd[f"{prefix}.norm2.weight"], sd[f"{prefix}.norm2.bias"], 1e-6)
    hidden = F.gelu(hidden @ sd[f"{prefix}.mlp.lin1.weight"].T + sd[f"{prefix}.mlp.lin1.bias"])
    return x + hidden @ sd[f"{prefix}.mlp.lin2.weight"].T + sd[f"{prefix}.mlp.lin2.bias"]


def image_encoder(image, sd, heads, window, global_blocks, patch):
    """(1, 1, S, S, S) -> (1, C_out, g, g, g)."""
    x = F.conv3d(image, sd["image_encoder.patch_embed.proj.weight"], sd["image_encoder.patch_embed.proj.bias"], stride=patch)
    x = x[0].permute(1, 2, 3, 0) + sd["image_encoder.pos_embed"][0]
    depth = len({k.split(".")[2] for k in sd if k.startswith("image_encoder.blocks.")})
    for i in range(depth):
        x = encoder_block(x, sd, f"image_encoder.blocks.{i}", heads, 0 if i in global_blocks else window)
    x = x.permute(3, 0, 1, 2)[None]
    x = F.conv3d(x, sd["image_encoder.neck.0.weight"])
    x = layer_norm_channels(x, sd["image_encoder.neck.1.weight"], sd["image_encoder.neck.1.bias"])
    x = F.conv3d(x, sd["image_encoder.neck.2.weight"], padding=1)
    return layer_norm_channels(x, sd["image_encoder.neck.3.weight"], sd["image_encoder.neck.3.bias"])


def fourier(coords, gaussian):
    """Random-Fourier encoding of coords in [0, 1]: [sin, cos, sin] of 2 pi (2c - 1) G."""
    projected = 2 * math.pi * ((2 * coords - 1) @ gaussian)
    return torch.cat([projected.sin(), projected.cos(), projected.sin()], dim=-1)


def dense_pe(sd, grid):
    """(C, g, g, g): cell (i, j, k) encodes ((j + .5) / g, (i + .5) / g, (k + .5) / g) -- the axis swap."""
    g = grid
    centres = (torch.arange(g, dtype=torch.float32) + 0.5) / g
    i, j, k = torch.meshgrid(centres, centres, centres, indexing="ij")
    return fourier(torch.stack([j, i, k], dim=-1), sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]).permute(3, 0, 1, 2)


def attention(q, k, v, sd, prefix, heads):
    q = q @ sd[f"{prefix}.q_proj.weight"].T + sd[f"{prefix}.q_proj.bias"]
    k = k @ sd[f"{prefix}.k_proj.weight"].T + sd[f"{prefix}.k_proj.bias"]
    v = v @ sd[f"{prefix}.v_proj.weight"].T + sd[f"{prefix}.v_proj.bias"]
    d = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        c = slice(h * d, (h + 1) * d)
        outs.append(torch.softmax(q[:, c] @ k[:, c].T / math.sqrt(d), dim=-1) @ v[:, c])
    return torch.cat(outs, dim=-1) @ sd[f"{prefix}.out_proj.weight"].T + sd[f"{prefix}.out_proj.bias"]


def ln(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], 1e-5)


def mlp(x, sd, prefix, layers):
    for i in range(layers):
        x = x @ sd[f"{prefix}.layers.{i}.weight"].T + sd[f"{prefix}.layers.{i}.bias"]
        if i < layers - 1:
            x = torch.relu(x)
    return x


def predict(sd, embedding, points, labels, mask_prompt, img_size, decoder_heads=8):
    """Low-res mask 0 and its IoU for one image: points (N, 3) crop voxels, labels (N,) in {0, 1}."""
    c = embedding.shape[1]
    g = embedding.shape[2]
    # Sparse: points at voxel centres plus the padding point (0, 0, 0) with label -1.
    coords = (points.float() + 0.5) / img_size
    sparse = fourier(coords, sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"])
    for n, label in enumerate(labels.tolist()):
        sparse[n] = sparse[n] + sd[f"prompt_encoder.point_embeddings.{int(label)}.weight"][0]
    sparse = torch.cat([sparse, sd["prompt_encoder.not_a_point_embed.weight"]], dim=0)
    # Dense: the mask prompt through the downscaling convolutions.
    m = F.conv3d(mask_prompt, sd["prompt_encoder.mask_downscaling.0.weight"], sd["prompt_encoder.mask_downscaling.0.bias"], stride=2)
    m = F.gelu(layer_norm_channels(m, sd["prompt_encoder.mask_downscaling.1.weight"], sd["prompt_encoder.mask_downscaling.1.bias"]))
    m = F.conv3d(m, sd["prompt_encoder.mask_downscaling.3.weight"], sd["prompt_encoder.mask_downscaling.3.bias"], stride=2)
    m = F.gelu(layer_norm_channels(m, sd["prompt_encoder.mask_downscaling.4.weight"], sd["prompt_encoder.mask_downscaling.4.bias"]))
    dense = F.conv3d(m, sd["prompt_encoder.mask_downscaling.6.weight"], sd["prompt_encoder.mask_downscaling.6.bias"])
    # Two-way transformer.
    tokens = torch.cat([sd["mask_decoder.iou_token.weight"], sd["mask_decoder.mask_tokens.weight"], sparse], dim=0)
    keys = (embedding + dense)[0].reshape(c, -1).T
    key_pe = dense_pe(sd, g).reshape(c, -1).T
    queries = tokens
    for layer in range(2):
        p = f"mask_decoder.transformer.layers.{layer}"
        if layer == 0:
            queries = attention(queries, queries, queries, sd, f"{p}.self_attn", decoder_heads)
        else:
            q = queries + tokens
            queries = queries + attention(q, q, queries, sd, f"{p}.self_attn", decoder_heads)
        queries = ln(queries, sd, f"{p}.norm1")
        queries = ln(queries + attention(queries + tokens, keys + key_pe, keys, sd, f"{p}.cross_attn_token_to_image", decoder_heads), sd, f"{p}.norm2")
        hidden = torch.relu(queries @ sd[f"{p}.mlp.lin1.weight"].T + sd[f"{p}.mlp.lin1.bias"])
        queries = ln(queries + hidden @ sd[f"{p}.mlp.lin2.weight"].T + sd[f"{p}.mlp.lin2.bias"], sd, f"{p}.norm3")
        keys = ln(keys + attention(keys + key_pe, queries + tokens, queries, sd, f"{p}.cross_attn_image_to_token", decoder_heads), sd, f"{p}.norm4")
    p = "mask_decoder.transformer"
    queries = ln(queries + attention(queries + tokens, keys + key_pe, keys, sd, f"{p}.final_attn_token_to_image", decoder_heads), sd, f"{p}.norm_final_attn")
    # Upscaling and hypernetwork of mask token 0.
    src = keys.T.reshape(1, c, g, g, g)
    up = F.conv_transpose3d(src, sd["mask_decoder.output_upscaling.0.weight"], sd["mask_decoder.output_upscaling.0.bias"], stride=2)
    up = F.gelu(layer_norm_channels(up, sd["mask_decoder.output_upscaling.1.weight"], sd["mask_decoder.output_upscaling.1.bias"]))
    up = F.gelu(F.conv_transpose3d(up, sd["mask_decoder.output_upscaling.3.weight"], sd["mask_decoder.output_upscaling.3.bias"], stride=2))
    hyper = mlp(queries[1], sd, "mask_decoder.output_hypernetworks_mlps.0", 3)
    mask = torch.einsum("c,cxyz->xyz", hyper, up[0])[None, None]
    iou = mlp(queries[0], sd, "mask_decoder.iou_prediction_head", 3)[:1][None]
    return mask, iou
