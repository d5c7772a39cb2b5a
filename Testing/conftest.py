"""Shared fixtures: small deterministic networks and images."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reference_sam3d and helpers

REPO = Path(__file__).resolve().parents[1]


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter non-trivial values (zero-initialised tables would hide bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if "rel_pos" in name or name.endswith("pos_embed") or "qkv.bias" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
            elif "norm" in name and name.endswith("weight"):
                tensor.copy_(1 + 0.1 * torch.randn(tensor.shape, generator=generator))
    return model


@pytest.fixture
def blob_image() -> sitk.Image:
    """A 48 x 40 x 36 PET-like volume (4 x 4 x 3 mm) with a hot ellipsoid, LPS identity direction."""
    z, y, x = np.mgrid[:36, :40, :48]
    rng = np.random.default_rng(0)
    array = 1.0 + 0.1 * rng.standard_normal((36, 40, 48))
    array += 6.0 * (((x - 24) / 8.0) ** 2 + ((y - 20) / 6.0) ** 2 + ((z - 18) / 7.0) ** 2 < 1)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((4.0, 4.0, 3.0))
    image.SetOrigin((-96.0, -80.0, -54.0))
    return image


def constant_model(arch: str = "tiny", sign: float = 1.0):
    """A real network whose weights make every logit ``sign`` x (large): all (or no) voxels segmented."""
    from SegAnyPETLib.model import build_model

    model = randomize(build_model(arch), seed=7)
    decoder = model.mask_decoder
    with torch.no_grad():
        decoder.output_upscaling[3].weight.zero_()
        decoder.output_upscaling[3].bias.fill_(3.0)
        last = decoder.output_hypernetworks_mlps[0].layers[-1]
        last.weight.zero_()
        last.bias.fill_(sign)
    return model.eval()


def random_model(arch: str = "tiny"):
    """An untrained network with non-trivial weights (always the same) on 4 mm crops."""
    from SegAnyPETLib.model import build_model

    torch.manual_seed(0)
    model = randomize(build_model(arch), seed=3)
    model.preprocessing = type(model.preprocessing)(spacing=(4.0, 4.0, 4.0), crop_size=model.config.img_size)
    return model.eval()


@pytest.fixture
def tiny_model():
    return random_model("tiny")


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """Three synthetic whole-body phantoms (expert and noisy labels) in an nnU-Net v2 folder."""
    from SegAnyPETLib.phantom.dataset import write_dataset

    root = tmp_path_factory.mktemp("phantoms") / "Dataset900_Test"
    write_dataset(root, cases=3, seed=99, workers=1, progress=False)
    return root


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model) -> Path:
    from SegAnyPETLib.checkpoints import save_checkpoint

    return save_checkpoint(tmp_path / "tiny.pt", tiny_model)
