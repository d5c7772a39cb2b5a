"""Checkpoint loading: wrappings, corrupt files, the registry and the Hugging Face cache offline."""
from __future__ import annotations

import datetime
import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from conftest import randomize
from SegAnyPETLib import checkpoints
from SegAnyPETLib.checkpoints import load_model, read_checkpoint, save_checkpoint
from SegAnyPETLib.cli import main
from SegAnyPETLib.device import resolve_device
from SegAnyPETLib.errors import SegAnyPETError
from SegAnyPETLib.inference.config import PRESETS, option_specs
from SegAnyPETLib.model import build_model
from SegAnyPETLib.preprocessing import PreprocessConfig


@pytest.fixture
def tiny_state():
    return randomize(build_model("tiny"), seed=11).state_dict()


def same_weights(model, state) -> bool:
    return all(torch.equal(model.state_dict()[k], state[k]) for k in state)


@pytest.mark.parametrize("wrap", ["plain", "model_state_dict", "ddp"])
def test_official_wrappings_load(tmp_path, tiny_state, wrap):
    if wrap == "plain":
        payload = tiny_state
    elif wrap == "model_state_dict":
        payload = {"model_state_dict": tiny_state, "epoch": 3}
    else:
        payload = {f"module.{k}": v for k, v in tiny_state.items()}
    path = tmp_path / "weights.pth"
    torch.save(payload, path)
    model = load_model(path, device="cpu")
    assert model.config.name == "tiny"  # inferred from keys and shapes
    assert same_weights(model, tiny_state)


def test_our_checkpoints_store_architecture_and_preprocessing(tmp_path):
    model = randomize(build_model("small"), seed=2)
    save_checkpoint(tmp_path / "run.pt", model, preprocessing=PreprocessConfig(spacing=(2.0, 2.0, 2.0)), metadata={"note": "x"})
    loaded = load_model(tmp_path / "run.pt", device="cpu")
    assert loaded.config == model.config
    assert loaded.preprocessing.spacing == (2.0, 2.0, 2.0)
    assert loaded.metadata == {"note": "x"}
    assert loaded.mask_threshold == 0.5
    assert same_weights(loaded, model.state_dict())


def test_the_mask_threshold_travels_with_the_checkpoint(tmp_path, tiny_state):
    model = build_model("tiny")
    model.load_state_dict(tiny_state)
    model.mask_threshold = 0.3
    save_checkpoint(tmp_path / "calibrated.pt", model)
    assert load_model(tmp_path / "calibrated.pt", device="cpu").mask_threshold == 0.3
    for bad in (0.0, 1.5, "high"):
        torch.save({"model_state_dict": tiny_state, "mask_threshold": bad}, tmp_path / "bad.pt")
        with pytest.raises(SegAnyPETError, match=r"bad\.pt: mask_threshold must be a probability"):
            load_model(tmp_path / "bad.pt", device="cpu")


def test_corrupt_and_wrong_files_get_clear_errors(tmp_path, tiny_state):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02this is not a checkpoint")
    with pytest.raises(SegAnyPETError, match="corrupt or not a PyTorch checkpoint"):
        load_model(corrupt, device="cpu")
    with pytest.raises(SegAnyPETError, match="nor an existing checkpoint file"):
        load_model(tmp_path / "missing.pth", device="cpu")
    broken = dict(tiny_state)
    broken.pop("mask_decoder.iou_token.weight")
    broken["extra.weight"] = torch.zeros(2)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(SegAnyPETError, match=r"1 missing \(mask_decoder.iou_token.weight\); 1 unexpected \(extra.weight\)"):
        load_model(tmp_path / "broken.pth", device="cpu")
    unknown = tmp_path / "unknown_encoder.pt"
    torch.save({"model_state_dict": tiny_state, "model_config": {"name": "x", "encoder": "mlp"}}, unknown)
    with pytest.raises(SegAnyPETError, match=f"{unknown}: unknown image encoder 'mlp'"):
        load_model(unknown, device="cpu")


def test_pickled_objects_are_refused(tmp_path, tiny_state):
    """weights_only=True: a file that would run arbitrary unpickling is not loaded."""
    torch.save({"model_state_dict": tiny_state, "when": datetime.datetime(2025, 1, 1)}, tmp_path / "unsafe.pth")
    with pytest.raises(SegAnyPETError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "unsafe.pth")


def fill_hf_cache(cache: Path, repo_id: str, filename: str, source: Path) -> Path:
    """The Hugging Face cache layout: models--owner--repo/{refs/main, snapshots/<commit>/file}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    target = repo_dir / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    return target


def test_registry_and_hf_urls_load_from_a_prefilled_cache_offline(tmp_path, monkeypatch, tiny_state):
    source = tmp_path / "seganypet_v1.pth"
    torch.save({"model_state_dict": tiny_state}, source)
    cache = tmp_path / "cache"
    fill_hf_cache(cache, "YichiZhang98/SegAnyPET", "seganypet_v1.pth", source)
    monkeypatch.setenv("SEGANYPET_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert same_weights(load_model("seganypet-v1", device="cpu"), tiny_state)
    assert same_weights(load_model("hf://YichiZhang98/SegAnyPET/seganypet_v1.pth", device="cpu"), tiny_state)
    assert checkpoints.cached_path("seganypet-v1") is not None
    assert checkpoints.cached_path("seganypet-v2") is None
    assert checkpoints.resolve_source("auto") == "seganypet-v1"  # best model on this machine
    with pytest.raises(SegAnyPETError, match="not in the download cache.*offline"):
        load_model("seganypet-v2", device="cpu")


def test_sha256_is_checked_when_known(tmp_path, monkeypatch, tiny_state):
    source = tmp_path / "model.pth"
    torch.save(tiny_state, source)
    fill_hf_cache(tmp_path / "cache", "lab/models", "model.pth", source)
    monkeypatch.setenv("SEGANYPET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setitem(checkpoints.REGISTRY, "lab", checkpoints.RegistryEntry("lab", "test", "lab/models", "model.pth", good))
    assert same_weights(load_model("lab", device="cpu"), tiny_state)
    monkeypatch.setitem(checkpoints.REGISTRY, "lab", checkpoints.RegistryEntry("lab", "test", "lab/models", "model.pth", "0" * 64))
    with pytest.raises(SegAnyPETError, match="fails its SHA-256 check"):
        load_model("lab", device="cpu")


def test_bundled_model_sidecar_hash_is_verified(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / checkpoints.BUNDLED_FILE, randomize(build_model("tiny")))
    monkeypatch.setenv("SEGANYPET_MODELS_DIR", str(tmp_path))
    (tmp_path / (checkpoints.BUNDLED_FILE + ".sha256")).write_text("f" * 64 + "  " + checkpoints.BUNDLED_FILE)
    with pytest.raises(SegAnyPETError, match="SHA-256"):
        load_model("demo", device="cpu")
    digest = checkpoints.sha256sum(tmp_path / checkpoints.BUNDLED_FILE)
    (tmp_path / (checkpoints.BUNDLED_FILE + ".sha256")).write_text(f"{digest}  {checkpoints.BUNDLED_FILE}\n")
    assert load_model("demo", device="cpu").config.name == "tiny"


def test_unknown_names_and_urls(tmp_path):
    with pytest.raises(SegAnyPETError, match="unknown model 'seganypet-v9'"):
        load_model("seganypet-v9", device="cpu")
    with pytest.raises(SegAnyPETError, match="hf://owner/repo/file"):
        load_model("hf://only-owner", device="cpu")


def test_auto_device_is_cpu_here_and_bad_devices_are_refused():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SegAnyPETError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(SegAnyPETError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_models_list_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGANYPET_CACHE_DIR", str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name, entry in checkpoints.REGISTRY.items():  # each with the preset it runs by default
        assert any(line.split()[:1] == [name] and line.split()[2] == entry.preset for line in out.splitlines())
    assert "hf://YichiZhang98/SegAnyPET/seganypet_v1.pth" in out
    assert str(tmp_path) in out


def test_models_presets_lists_every_option_in_every_preset(capsys):
    assert main(["models", "presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["option", *PRESETS]
    table = {line.split()[0]: line.split()[1:] for line in lines[1:len(list(option_specs())) + 1]}
    assert list(table) == [spec.name for spec in option_specs()]
    assert table["extend"] == [str(getattr(config, "extend")) for config in PRESETS.values()]
    assert table["refiners"][list(PRESETS).index("bundled")] == ",".join(PRESETS["bundled"].refiners)


def test_models_download_offline_reports_the_problem(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGANYPET_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "download", "sam-med3d-turbo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not in the download cache" in err[0]


def test_stored_fields_and_non_finite_weights_are_refused_with_the_field_named(tmp_path, tiny_state):
    model = build_model("tiny")
    model.load_state_dict(tiny_state)
    saved = torch.load(save_checkpoint(tmp_path / "good.pt", model), weights_only=True)
    bad = {
        "preprocessing has unknown field\\(s\\) flip": lambda d: d["preprocessing"].update(flip=True),
        "preprocessing.crop_size 128 does not fit the tiny network": lambda d: d["preprocessing"].update(crop_size=128),
        "preprocessing.crop_size must be a positive whole number": lambda d: d["preprocessing"].update(crop_size=0),
        "preprocessing.spacing must be three positive finite numbers": lambda d: d["preprocessing"].update(spacing=[1, 0, 1]),
        "preprocessing.normalization: unknown normalization 'minmax'": lambda d: d["preprocessing"].update(normalization="minmax"),
        "model_config decoder_depth must be a whole number": lambda d: d["model_config"].update(decoder_depth=2.5),
        "model_config.prompt_embed_dim 190 is not a multiple of decoder_heads 8": lambda d: d["model_config"].update(prompt_embed_dim=190),
        "metadata must be a mapping, got str": lambda d: d.update(metadata="notes"),
        "1 weight tensor\\(s\\) hold NaN or infinite values \\(prompt_encoder.no_mask_embed.weight\\)":
            lambda d: d["model_state_dict"]["prompt_encoder.no_mask_embed.weight"].fill_(float("-inf")),
    }
    for message, change in bad.items():
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.items()}
        data["model_state_dict"] = {k: v.clone() for k, v in saved["model_state_dict"].items()}
        change(data)
        torch.save(data, tmp_path / "bad.pt")
        with pytest.raises(SegAnyPETError, match=f"bad\\.pt: {message}"):
            load_model(tmp_path / "bad.pt", device="cpu")
