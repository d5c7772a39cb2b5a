"""Model registry, downloads through the Hugging Face cache, and checkpoint loading and saving.

A source is a registry name (``seganypet models list``), a local file, or ``hf://owner/repo/file``.
Official SegAnyPET and SAM-Med3D files load unchanged: a plain state_dict, ``{"model_state_dict":
...}`` and DDP ``module.`` prefixes are accepted, always with ``torch.load(weights_only=True)``.
Checkpoints written by this package also store the architecture and the preprocessing, so loading
never needs the user to know them.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Type, Union

import torch

from .device import resolve_device
from .errors import SegAnyPETError
from .inference.config import SessionConfig, config_from_dict, preset
from .io import atomic_path
from .model import ARCHITECTURES, ModelConfig, Sam3D, build_model
from .preprocessing import PreprocessConfig

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "seganypet-checkpoint"
BUNDLED_FILE = "seganypet_demo_tiny.pt"


@dataclass(frozen=True)
class RegistryEntry:
    """Where a named model lives and what it is."""

    name: str
    description: str
    repo_id: Optional[str] = None  # Hugging Face repository, None for the bundled model
    filename: str = ""
    sha256: Optional[str] = None  # verified after download / before loading when known
    size_mb: Optional[float] = None
    preset: str = "official"  # inference preset when the checkpoint stores none (SegAnyPETLib.inference.config)


REGISTRY: Dict[str, RegistryEntry] = {
    entry.name: entry
    for entry in (
        RegistryEntry(
            "demo",
            "bundled tiny model trained on synthetic PET phantoms (offline, CPU friendly)",
            filename=BUNDLED_FILE,
            preset="bundled",
        ),
        RegistryEntry(
            "seganypet-v1",
            "SegAnyPET paper model (ICCV 2025), 5,731 whole-body FDG scans",
            "YichiZhang98/SegAnyPET",
            "seganypet_v1.pth",
        ),
        RegistryEntry(
            "seganypet-v2",
            "SegAnyPET v2, 11,041 multi-centre scans",
            "YichiZhang98/SegAnyPET",
            "seganypet_v2.pth",
        ),
        RegistryEntry(
            "seganypet-lesion",
            "SegAnyPET v2 fine-tuned on lesions",
            "YichiZhang98/SegAnyPET",
            "seganypet_lesion.pth",
        ),
        RegistryEntry(
            "sam-med3d-turbo",
            "SAM-Med3D-turbo, general 3D medical (not PET-specific)",
            "blueyo0/SAM-Med3D",
            "sam_med3d_turbo.pth",
            size_mb=402,
        ),
    )
}

# Order in which "auto" looks for weights already on this machine; "demo" always exists.
AUTO_ORDER = ("seganypet-v2", "seganypet-v1", "demo")


def bundled_models_dir() -> Path:
    """Folder with the bundled weights: $SEGANYPET_MODELS_DIR, the repo's Resources/Models, or package data."""
    override = os.environ.get("SEGANYPET_MODELS_DIR")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates += [here.parent / "Resources" / "Models", here / "_models"]
    for candidate in candidates:
        if (candidate / BUNDLED_FILE).exists():
            return candidate
    return candidates[0]


def cache_dir() -> Optional[str]:
    """Download cache: $SEGANYPET_CACHE_DIR, else huggingface_hub's own (HF_HUB_CACHE / HF_HOME)."""
    return os.environ.get("SEGANYPET_CACHE_DIR") or None


def sha256sum(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: Optional[str]) -> None:
    if expected and sha256sum(path) != expected:
        raise SegAnyPETError(
            f"{path} fails its SHA-256 check (expected {expected[:12]}...): the file is corrupt or "
            "incomplete; delete it and download again"
        )


def cached_path(name: str) -> Optional[Path]:
    """Path of a registry model if it is already on this machine, else None (never downloads)."""
    entry = _entry(name)
    if entry.repo_id is None:
        path = bundled_models_dir() / entry.filename
        return path if path.exists() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.repo_id, entry.filename, cache_dir=cache_dir())
    return Path(found) if isinstance(found, str) else None


def download(
    name_or_url: str,
    local_files_only: Optional[bool] = None,
    tqdm_class: Optional[Type] = None,
) -> Path:
    """Local path of a registry model or ``hf://owner/repo/file``, downloading into the cache if needed.

    Honours ``HF_HUB_OFFLINE=1``; the SHA-256 is checked where the registry knows it.
    """
    if name_or_url.startswith("hf://"):
        parts = name_or_url[len("hf://") :].split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise SegAnyPETError(f"{name_or_url!r} is not of the form hf://owner/repo/file")
        repo_id, filename, expected = f"{parts[0]}/{parts[1]}", parts[2], None
    else:
        entry = _entry(name_or_url)
        if entry.repo_id is None:
            path = bundled_models_dir() / entry.filename
            if not path.exists():
                raise SegAnyPETError(
                    f"the bundled model {path} is missing; reinstall SegAnyPET or set SEGANYPET_MODELS_DIR"
                )
            _verify(path, entry.sha256 or _bundled_sha256(path))
            return path
        repo_id, filename, expected = entry.repo_id, entry.filename, entry.sha256

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = local_files_only if local_files_only is not None else _hub_offline()
    try:
        path = Path(
            hf_hub_download(
                repo_id, filename, cache_dir=cache_dir(), local_files_only=offline, tqdm_class=tqdm_class
            )
        )
    except LocalEntryNotFoundError as error:
        raise SegAnyPETError(
            f"{repo_id}/{filename} is not in the download cache and the Hugging Face hub cannot be reached"
            f"{' (offline mode)' if offline else ''}; run `seganypet models download` on a connected "
            "machine and copy its cache, or pass a local checkpoint file"
        ) from error
    except (RepositoryNotFoundError, EntryNotFoundError) as error:
        raise SegAnyPETError(f"{filename} was not found in the Hugging Face repository {repo_id}") from error
    except OSError as error:
        raise SegAnyPETError(f"download of {repo_id}/{filename} failed: {error}") from error
    _verify(path, expected)
    return path


def _bundled_sha256(path: Path) -> Optional[str]:
    """The hash written beside the bundled model (``<file>.sha256``), if any."""
    sidecar = path.with_name(path.name + ".sha256")
    return sidecar.read_text().split()[0] if sidecar.exists() else None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _entry(name: str) -> RegistryEntry:
    if name not in REGISTRY:
        raise SegAnyPETError(
            f"unknown model {name!r}: use a registry name ({', '.join(REGISTRY)}), a checkpoint file "
            "or hf://owner/repo/file"
        )
    return REGISTRY[name]


def resolve_source(source: str = "auto") -> str:
    """``"auto"``: the best model already on this machine (SegAnyPET v2, v1, else the bundled demo)."""
    if source != "auto":
        return source
    for name in AUTO_ORDER:
        if cached_path(name) is not None:
            return name
    return "demo"


def read_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """``torch.load(weights_only=True)`` with one clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.exists():
        raise SegAnyPETError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise SegAnyPETError(f"checkpoint {path} is a folder, expected a .pt/.pth file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not a usable checkpoint"
        message = str(error)
        if "WeightsUnpickler error:" in message:  # torch's weights_only notice wraps the actual reason
            message = message.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
        reason = " ".join(message.split()).split(". ")[0][:160] or type(error).__name__  # first sentence
        raise SegAnyPETError(f"cannot read checkpoint {path}: corrupt or not a PyTorch checkpoint ({reason})") from error
    if not isinstance(data, Mapping):
        raise SegAnyPETError(f"checkpoint {path} holds a {type(data).__name__}, expected a state_dict")
    return dict(data)


def extract_state_dict(data: Mapping[str, Any], path: Union[str, Path] = "checkpoint") -> Dict[str, torch.Tensor]:
    """The network weights from any of the accepted wrappings, without DDP ``module.`` prefixes."""
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(data.get(key), Mapping):
            data = data[key]
            break
    state = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            raise SegAnyPETError(f"{path}: entry {key!r} is not a tensor; this is not a SegAnyPET/SAM-Med3D state_dict")
        while key.startswith("module."):
            key = key[len("module.") :]
        state[key] = value
    if not state:
        raise SegAnyPETError(f"{path} contains no weights")
    return state


def infer_architecture(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """The registered architecture that ``state`` fits, else the closest one (to report differences)."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}

    def mismatches(name: str) -> int:
        expected = _shapes(name)
        return len(set(expected) ^ set(shapes)) + sum(expected[k] != shapes[k] for k in set(expected) & set(shapes))

    return ARCHITECTURES[min(ARCHITECTURES, key=mismatches)]


@functools.lru_cache(maxsize=None)
def _shapes(name: str) -> Dict[str, Tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in Sam3D(ARCHITECTURES[name]).state_dict().items()}


def _describe_mismatch(model: Sam3D, state: Mapping[str, torch.Tensor], path) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in expected
             if k in state and state[k].shape != expected[k].shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            parts.append(f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
    return f"{path} does not fit the {model.config.name} network: " + "; ".join(parts)


def model_from_checkpoint(data: Mapping[str, Any], path: Union[str, Path] = "checkpoint") -> Sam3D:
    """Build the network described by (or inferred from) a checkpoint and load its weights strictly.

    Refused with one error naming the file: weights that are NaN or infinite (a diverged run) and
    any stored field (``model_config``, ``preprocessing``, ``metadata``, ``mask_threshold``) that is
    malformed, naming the field.
    """
    state = extract_state_dict(data, path)
    refuse_non_finite(state, path)
    try:
        config = ModelConfig.from_dict(data["model_config"]) if "model_config" in data else infer_architecture(state)
        model = build_model(config)
    except SegAnyPETError as error:  # an architecture this version cannot build
        raise SegAnyPETError(f"{path}: {error}") from error
    except (RuntimeError, ValueError, TypeError, MemoryError) as error:  # torch cannot build what model_config says
        raise SegAnyPETError(f"{path}: model_config describes a network this version cannot build ({error})") from error
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise SegAnyPETError(_describe_mismatch(model, state, path)) from error
    _set_stored_fields(model, data, path)
    if "inference" in data:
        model.inference = config_from_dict(data["inference"], str(path))
    return model


def refuse_non_finite(state: Mapping[str, torch.Tensor], path: Union[str, Path] = "checkpoint") -> None:
    """One clear error when a weight is NaN or infinite: the run that wrote them diverged."""
    bad = [key for key, value in state.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        listing = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise SegAnyPETError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values ({listing}): the training run "
            "diverged; use an earlier checkpoint"
        )


def _set_stored_fields(model: Sam3D, data: Mapping[str, Any], path: Union[str, Path]) -> None:
    """Check the checkpoint's preprocessing, metadata and mask threshold and set them on ``model``."""
    if "preprocessing" in data:
        try:
            preprocessing = PreprocessConfig.from_dict(data["preprocessing"])
        except SegAnyPETError as error:
            raise SegAnyPETError(f"{path}: {error}") from error
        if preprocessing.crop_size != model.config.img_size:
            raise SegAnyPETError(
                f"{path}: preprocessing.crop_size {preprocessing.crop_size} does not fit the {model.config.name} "
                f"network, whose input is {model.config.img_size} voxels a side"
            )
        model.preprocessing = preprocessing
    if "metadata" in data:
        if not isinstance(data["metadata"], Mapping):
            raise SegAnyPETError(f"{path}: metadata must be a mapping, got {type(data['metadata']).__name__}")
        model.metadata = dict(data["metadata"])
    if "mask_threshold" in data:
        model.mask_threshold = check_mask_threshold(data["mask_threshold"], f"{path}: mask_threshold")


def check_mask_threshold(value: Any, what: str = "mask threshold") -> float:
    """A probability strictly between 0 and 1, or one clear error."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 < threshold < 1.0:
        raise SegAnyPETError(f"{what} must be a probability between 0 and 1 (exclusive), got {value!r}")
    return threshold


def checkpoint_file(source: Union[str, Path] = "auto") -> Tuple[str, Path]:
    """(resolved name, local file) of a registry name, ``"auto"``, a file or ``hf://...`` (downloads)."""
    name = resolve_source(str(source))
    if name in REGISTRY or name.startswith("hf://"):
        return name, download(name)
    path = Path(name)
    if not path.exists():
        raise SegAnyPETError(
            f"unknown model {name!r}: neither a registry name ({', '.join(REGISTRY)}), nor an existing "
            "checkpoint file, nor hf://owner/repo/file"
        )
    return name, path


def load_model(source: Union[str, Path] = "auto", device: str = "auto") -> Sam3D:
    """Load a network ready for inference: registry name, ``"auto"``, local file or ``hf://...``."""
    name, path = checkpoint_file(source)
    model = model_from_checkpoint(read_checkpoint(path), path)
    model.source = name
    if model.inference is None and name in REGISTRY:
        model.inference = preset(REGISTRY[name].preset)
    logger.info("loaded %s (%s, %s)", name, model.config.name, path)
    return model.to(resolve_device(device)).eval()


def save_checkpoint(
    path: Union[str, Path],
    model: Sam3D,
    preprocessing: Optional[PreprocessConfig] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    extra: Optional[Mapping[str, Any]] = None,
    overwrite: bool = True,
    half: bool = False,
) -> Path:
    """Write a self-describing checkpoint atomically (architecture + preprocessing + weights)."""
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload: Dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model_config": model.config.to_dict(),
        "preprocessing": (preprocessing or model.preprocessing).to_dict(),
        "metadata": dict(metadata or {}),
        "mask_threshold": float(model.mask_threshold),
        "inference": (model.inference or SessionConfig()).to_dict(),
        "model_state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }
    payload.update(extra or {})
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)
