"""The SAM-Med3D network (image encoder, prompt encoder, mask decoder) and its architectures."""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..errors import SegAnyPETError
from ..options import typed
from ..preprocessing import PreprocessConfig
from .conv_encoder import ImageEncoderConv3D
from .image_encoder import ImageEncoderViT3D
from .mask_decoder import MaskDecoder3D
from .prompt_encoder import PromptEncoder3D


_LARGEST = 1 << 16  # no size of a network this package builds comes near it


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored in every checkpoint we write."""

    name: str
    encoder: str = "vit"  # "vit" (SAM-Med3D) or "conv" (ImageEncoderConv3D; patch_size is its stride)
    encoder_channels: Tuple[int, ...] = ()  # conv encoder widths at 1/2, 1/4 and 1/8 of the crop
    img_size: int = 128
    patch_size: int = 16
    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: Tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 384
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    iou_head_hidden_dim: int = 256
    click_maps: bool = False  # also rasterize the points into the dense prompt (see PromptEncoder3D)

    @property
    def embedding_grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution logits / mask prompt (4x the embedding grid)."""
        return 4 * self.embedding_grid

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ModelConfig":
        """The config stored in a checkpoint; one error naming the field for an unknown or missing
        field, a value of the wrong type, and sizes that are not positive or do not fit together."""
        if not isinstance(values, Mapping):
            raise SegAnyPETError(f"model_config must be a mapping of field: value, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in set(values) - known)
        if unknown:
            raise SegAnyPETError(f"model config has unknown fields {unknown}")
        if "name" not in values:
            raise SegAnyPETError("model_config has no name")
        hints = typing.get_type_hints(cls)
        config = cls(**{key: typed("model_config", key, value, hints[key]) for key, value in values.items()})
        return config.checked()

    def checked(self) -> "ModelConfig":
        """This config, or one error naming the first size that cannot make a network."""
        for name in ("img_size", "patch_size", "encoder_embed_dim", "encoder_num_heads", "prompt_embed_dim",
                     "mask_in_chans", "decoder_depth", "decoder_heads", "decoder_mlp_dim", "iou_head_hidden_dim"):
            value = getattr(self, name)
            if not 1 <= value <= _LARGEST:
                raise SegAnyPETError(f"model_config.{name} must be between 1 and {_LARGEST}, got {value}")
        for name in ("encoder_depth", "window_size"):
            if not 0 <= getattr(self, name) <= _LARGEST:
                raise SegAnyPETError(f"model_config.{name} must be between 0 and {_LARGEST}, got {getattr(self, name)}")
        if not 0 < self.mlp_ratio <= 64:
            raise SegAnyPETError(f"model_config.mlp_ratio must be between 0 and 64, got {self.mlp_ratio}")
        if self.img_size > 1024 or self.img_size % self.patch_size:
            raise SegAnyPETError(
                f"model_config.img_size {self.img_size} must be at most 1024 and a multiple of patch_size {self.patch_size}"
            )
        if self.prompt_embed_dim % self.decoder_heads:
            raise SegAnyPETError(
                f"model_config.prompt_embed_dim {self.prompt_embed_dim} is not a multiple of decoder_heads {self.decoder_heads}"
            )
        if self.encoder == "vit" and self.encoder_embed_dim % self.encoder_num_heads:
            raise SegAnyPETError(f"model_config.encoder_embed_dim {self.encoder_embed_dim} is not a multiple of "
                                 f"encoder_num_heads {self.encoder_num_heads}")
        return self


ARCHITECTURES: Dict[str, ModelConfig] = {
    # SAM-Med3D's network exactly (SegAnyPET and SAM-Med3D-turbo weights), 100.5 M parameters.
    "vit_b_ori": ModelConfig(name="vit_b_ori"),
    # Same interface and 128^3 input, a quarter of the width: GPU training from scratch.
    "small": ModelConfig(
        name="small",
        encoder_embed_dim=384,
        encoder_depth=8,
        encoder_num_heads=6,
        encoder_global_attn_indexes=tuple(range(8)),
        window_size=0,
    ),
    # 64^3 input at coarser spacing, 8^3 tokens: trains on a CPU in hours (the bundled model).
    "tiny": ModelConfig(
        name="tiny",
        img_size=64,
        patch_size=8,
        encoder_embed_dim=192,
        encoder_depth=6,
        encoder_num_heads=6,
        encoder_global_attn_indexes=tuple(range(6)),
        window_size=0,
        prompt_embed_dim=192,
        decoder_mlp_dim=768,
        iou_head_hidden_dim=128,
    ),
    # 64^3 input at 4 mm, a convolutional encoder with a 16^3 embedding: the bundled model.
    "tiny_conv": ModelConfig(
        name="tiny_conv",
        encoder="conv",
        encoder_channels=(16, 32, 64),
        img_size=64,
        patch_size=4,
        encoder_depth=2,
        encoder_num_heads=4,
        prompt_embed_dim=96,
        decoder_heads=4,
        decoder_mlp_dim=384,
        iou_head_hidden_dim=96,
    ),
}
# tiny_conv whose dense prompt also carries maps of the clicks, so the decoder knows where a click
# lies within its 16 mm embedding cell (organs a few millimetres apart, e.g. spleen and kidney).
ARCHITECTURES["tiny_conv_clicks"] = dataclasses.replace(ARCHITECTURES["tiny_conv"], name="tiny_conv_clicks", click_maps=True)


class Sam3D(nn.Module):
    """Container with SAM-Med3D's three sub-modules under their checkpoint names."""

    def __init__(self, config: ModelConfig, preprocessing: Optional[PreprocessConfig] = None) -> None:
        super().__init__()
        self.config = config
        # Input expected by the weights (the official protocol unless a checkpoint says otherwise),
        # where the weights came from, and what their checkpoint says about them.
        self.preprocessing = preprocessing or PreprocessConfig(crop_size=config.img_size)
        self.source: Optional[str] = None
        self.metadata: Dict[str, Any] = {}
        # Probability above which a voxel joins the mask: 0.5 (SAM's logit 0) unless the checkpoint
        # carries a threshold calibrated on validation cases (``seganypet calibrate``).
        self.mask_threshold: float = 0.5
        # The inference options the weights were measured with (a SessionConfig; None: the official protocol).
        self.inference = None
        grid = config.embedding_grid
        self.image_encoder = _build_image_encoder(config)
        self.prompt_encoder = PromptEncoder3D(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid, grid),
            input_image_size=(config.img_size,) * 3,
            mask_in_chans=config.mask_in_chans,
            click_maps=config.click_maps,
        )
        self.mask_decoder = MaskDecoder3D(
            transformer_dim=config.prompt_embed_dim,
            transformer_depth=config.decoder_depth,
            transformer_heads=config.decoder_heads,
            transformer_mlp_dim=config.decoder_mlp_dim,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        )

    @property
    def device(self) -> torch.device:
        return self.prompt_encoder.no_mask_embed.weight.device

    def decode(
        self,
        image_embeddings: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask_prompt: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One prediction from cached embeddings: points (B,N,3) crop voxels, labels (B,N) -> logits, IoU."""
        sparse, dense = self.prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
        return self.mask_decoder(
            image_embeddings=image_embeddings,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )


def _build_image_encoder(config: ModelConfig) -> nn.Module:
    if config.encoder == "conv":
        if config.patch_size != 4 or len(config.encoder_channels) != 3:
            raise SegAnyPETError("the conv encoder needs patch_size 4 and three encoder_channels")
        return ImageEncoderConv3D(
            img_size=config.img_size,
            channels=config.encoder_channels,
            out_chans=config.prompt_embed_dim,
            attention_depth=config.encoder_depth,
            attention_heads=config.encoder_num_heads,
        )
    if config.encoder != "vit":
        raise SegAnyPETError(f"unknown image encoder {config.encoder!r}; choose vit or conv")
    return ImageEncoderViT3D(
        img_size=config.img_size,
        patch_size=config.patch_size,
        embed_dim=config.encoder_embed_dim,
        depth=config.encoder_depth,
        num_heads=config.encoder_num_heads,
        mlp_ratio=config.mlp_ratio,
        out_chans=config.prompt_embed_dim,
        window_size=config.window_size,
        global_attn_indexes=config.encoder_global_attn_indexes,
    )


def build_model(architecture: Union[str, ModelConfig, Dict[str, Any]] = "vit_b_ori") -> Sam3D:
    """Build an untrained network: a name in :data:`ARCHITECTURES`, a config or its dict."""
    if isinstance(architecture, str):
        if architecture not in ARCHITECTURES:
            raise SegAnyPETError(
                f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
            )
        config = ARCHITECTURES[architecture]
    elif isinstance(architecture, dict):
        config = ModelConfig.from_dict(architecture)
    else:
        config = architecture
    return Sam3D(config).eval()
