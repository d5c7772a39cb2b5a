"""The network: official keys and shapes, and the same numbers as a plain reference implementation."""
from __future__ import annotations

import pytest
import torch

import reference_sam3d as ref
from conftest import REPO, randomize
from SegAnyPETLib.model import ARCHITECTURES, ModelConfig, build_model
from SegAnyPETLib.model.image_encoder import Block3D


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_vit_b_ori_state_dict_matches_the_published_keys_and_shapes():
    # All 324 keys and shapes of the official checkpoint (a copy of the project spec's list).
    lines = (REPO / "Testing" / "Data" / "vit_b_ori_state_dict.txt").read_text().splitlines()
    expected = {}
    for line in filter(None, lines):
        key, shape = line.split(" (")
        expected[key] = tuple(int(v) for v in shape.rstrip(")").split(",") if v.strip())
    with torch.device("meta"):
        state = build_model("vit_b_ori").state_dict()
    assert list(state) == list(expected)  # same keys, same order
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert sum(v.numel() for v in state.values()) == 100_509_616


@pytest.fixture(scope="module")
def vit_b_ori():
    torch.manual_seed(0)
    return randomize(build_model("vit_b_ori"), seed=1)


def test_vit_b_ori_matches_the_plain_reference(vit_b_ori):
    """Embedding, mask logits and IoU within 1e-3 relative error (padded 14^3 windows, axis swap)."""
    sd = vit_b_ori.state_dict()
    image = torch.randn(1, 1, 128, 128, 128, generator=torch.Generator().manual_seed(2))
    points = torch.tensor([[30, 70, 90], [64, 10, 100], [5, 120, 64]])
    labels = torch.tensor([1, 0, 1])
    prompt = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        embedding = vit_b_ori.image_encoder(image)
        reference_embedding = ref.image_encoder(image, sd, heads=12, window=14, global_blocks=(2, 5, 8, 11), patch=16)
        assert rel_error(embedding, reference_embedding) < 1e-3
        logits, iou = vit_b_ori.decode(embedding, points[None].float(), labels[None], prompt)
        reference_logits, reference_iou = ref.predict(sd, reference_embedding, points, labels, prompt, img_size=128)
    assert logits.shape == (1, 1, 32, 32, 32) and iou.shape == (1, 1)
    assert rel_error(logits, reference_logits) < 1e-3
    assert rel_error(iou, reference_iou) < 1e-3


def test_fast_padded_window_equals_the_official_padded_computation(vit_b_ori):
    block = vit_b_ori.image_encoder.blocks[0]
    assert block.window_size == 14
    x = torch.randn(2, 8, 8, 8, 768)
    with torch.inference_mode():
        fast = block(x)
        block.padded_fast_path = False
        try:
            plain = block(x)
        finally:
            block.padded_fast_path = True
    assert rel_error(fast - x, plain - x) < 1e-4


def test_multi_window_blocks_match_the_reference():
    """Grids larger than the window (several padded windows) use the official partition."""
    config = ModelConfig(name="check", img_size=40, patch_size=8, encoder_embed_dim=48, encoder_depth=2,
                         encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=3,
                         prompt_embed_dim=48, decoder_mlp_dim=64)
    block = randomize(build_model(config), seed=4).image_encoder.blocks[0]
    x = torch.randn(1, 5, 5, 5, 48)
    with torch.inference_mode():
        out = block(x)[0]
    sd = {f"b.{k}": v for k, v in block.state_dict().items()}
    # Reference: pad 5 -> 6 and attend inside each of the eight 3^3 windows.
    normed = torch.nn.functional.layer_norm(x[0], (48,), sd["b.norm1.weight"], sd["b.norm1.bias"], 1e-6)
    padded = torch.zeros(6, 6, 6, 48)
    padded[:5, :5, :5] = normed
    attended = torch.zeros_like(padded)
    for a in (0, 3):
        for b in (0, 3):
            for c in (0, 3):
                window = padded[a : a + 3, b : b + 3, c : c + 3]
                attended[a : a + 3, b : b + 3, c : c + 3] = ref.attention_over_window(window, sd, "b.attn", 2)
    h = x[0] + attended[:5, :5, :5]
    hidden = torch.nn.functional.layer_norm(h, (48,), sd["b.norm2.weight"], sd["b.norm2.bias"], 1e-6)
    hidden = torch.nn.functional.gelu(hidden @ sd["b.mlp.lin1.weight"].T + sd["b.mlp.lin1.bias"])
    expected = h + hidden @ sd["b.mlp.lin2.weight"].T + sd["b.mlp.lin2.bias"]
    assert rel_error(out, expected) < 1e-4


def test_dense_positional_encoding_swaps_the_first_two_axes():
    model = build_model("tiny")
    pe = model.prompt_encoder.get_dense_pe()[0]
    grid = model.config.embedding_grid
    size = model.config.img_size
    step = size // grid
    # A point at the centre voxel of token (i, j, k) encodes like dense cell (j, i, k).
    i, j, k = 1, 5, 3
    point = torch.tensor([[[i * step + step / 2 - 0.5, j * step + step / 2 - 0.5, k * step + step / 2 - 0.5]]])
    encoded = model.prompt_encoder.pe_layer.forward_with_coords(point + 0.5, (size,) * 3)[0, 0]
    assert torch.allclose(encoded, pe[:, j, i, k], atol=1e-5)
    assert not torch.allclose(encoded, pe[:, i, j, k], atol=1e-3)


@pytest.mark.parametrize("name", ["small", "tiny", "tiny_conv", "tiny_conv_clicks"])
def test_smaller_architectures_keep_the_interface(name):
    model = randomize(build_model(name), seed=5)
    config = ARCHITECTURES[name]
    image = torch.randn(1, 1, config.img_size, config.img_size, config.img_size)
    with torch.inference_mode():
        embedding = model.image_encoder(image)
        sparse, dense = model.prompt_encoder(points=(torch.tensor([[[10.0, 20.0, 30.0]]]), torch.tensor([[1]])),
                                             boxes=None, masks=torch.zeros(1, 1, *(config.low_res_size,) * 3))
        logits, iou = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                         sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                         multimask_output=True)
    grid = config.embedding_grid
    assert embedding.shape == (1, config.prompt_embed_dim, grid, grid, grid)
    assert sparse.shape == (1, 2, config.prompt_embed_dim)  # the point and the padding point
    assert logits.shape == (1, 3, 4 * grid, 4 * grid, 4 * grid) and iou.shape == (1, 3)


def test_click_maps_put_each_click_in_its_channel_and_cell():
    model = randomize(build_model("tiny_conv_clicks"), seed=2)
    encoder = model.prompt_encoder
    coords = torch.tensor([[[10.0, 20.0, 30.0], [40.0, 41.0, 63.0], [0.0, 0.0, 0.0]]])
    maps = encoder._rasterize((coords, torch.tensor([[1, 0, -1]])), torch.zeros(1, 1, 64, 64, 64))
    assert maps.shape == (1, 2, 64, 64, 64)
    assert maps[0, 0].sum() == 27 and maps[0, 0, 9:12, 19:22, 29:32].sum() == 27  # positive: 3^3 block
    assert maps[0, 1].sum() == 18 and maps[0, 1, 39:42, 40:43, 62:64].sum() == 18  # negative, cut at the edge
    assert maps[:, :, 0, 0, 0].sum() == 0  # the padding point is not a click

    def dense(model, x):
        points = (torch.tensor([[[x, 20.0, 30.0]]]), torch.tensor([[1]]))
        return model.prompt_encoder(points=points, masks=torch.zeros(1, 1, 64, 64, 64))[1]

    # Two clicks in the same 16 mm embedding cell (voxels 8 and 9): only the click maps tell them apart.
    with torch.inference_mode():
        assert not torch.allclose(dense(model, 8.0), dense(model, 9.0))
        plain = randomize(build_model("tiny_conv"), seed=2)
        assert torch.equal(dense(plain, 8.0), dense(plain, 9.0))
        # Mask-only prompts (no points) still decode.
        embedding = model.image_encoder(torch.randn(1, 1, 64, 64, 64))
        assert model.decode(embedding, torch.zeros(1, 0, 3), torch.zeros(1, 0, dtype=torch.long), None)[0].shape == (1, 1, 64, 64, 64)


def test_unknown_architecture_is_a_clear_error():
    from SegAnyPETLib.errors import SegAnyPETError

    with pytest.raises(SegAnyPETError, match="unknown architecture 'vit_x'"):
        build_model("vit_x")


def test_box_prompts_are_refused():
    model = build_model("tiny")
    with pytest.raises(ValueError, match="box prompts"):
        model.prompt_encoder(points=None, boxes=torch.zeros(1, 6), masks=None)


def test_conv_encoder_config_errors_name_the_problem():
    from SegAnyPETLib.errors import SegAnyPETError
    from SegAnyPETLib.model import ModelConfig

    with pytest.raises(SegAnyPETError, match="conv encoder needs patch_size 4"):
        build_model(ModelConfig(name="bad", encoder="conv", encoder_channels=(8, 16, 32), img_size=64, patch_size=8))
    with pytest.raises(SegAnyPETError, match="unknown image encoder 'mlp'"):
        build_model(ModelConfig(name="bad", encoder="mlp"))
