"""Training configuration: one flat dataclass, read from YAML and overridden from the command line.

Plain like nnU-Net's plans: every knob has a name, a default and a comment; ``configs/*.yaml``
ship the paper's recipe and the bundled model's recipe.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..errors import SegAnyPETError
from ..options import typed

STRATEGIES = ("finetune", "consistency", "cpcl")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class TrainConfig:
    # ---- data
    data: str = ""  # dataset folder (nnU-Net v2, AutoPET or SAM-Med3D layout)
    targets: Optional[List[str]] = None  # target names to train on; None = every label of the dataset
    hq_cases: Optional[int] = None  # the first N cases keep expert labels (HQ), the rest use noisy labels
    lq_labels: str = "labelsLQ"  # folder (name or path) of the noisy labels of the LQ cases
    val_cases: int = 0  # the last N cases are held out for validation (Dice at one click)
    val_targets: Optional[List[str]] = None  # targets whose validation Dice picks RUN/best.pt; None = all trained
    min_target_voxels: int = 100  # skip crops whose target has fewer voxels (SAM-Med3D: 500-1000 at 1.5 mm)
    target_weights: Dict[str, float] = field(default_factory=dict)  # sampling weight per target (default 1)
    # ---- network
    arch: str = "tiny"  # vit_b_ori | small | tiny | tiny_conv | tiny_conv_clicks
    init: Optional[str] = None  # checkpoint (or registry name) to start from
    spacing: Optional[Tuple[float, float, float]] = None  # crop spacing mm; default from the architecture
    grad_checkpointing: bool = False  # GPU memory saver
    # ---- strategy (paper Table 3)
    strategy: str = "cpcl"  # finetune | consistency | cpcl
    n_prompts: int = 3  # cross prompting: prompt sets per LQ image
    w_max: float = 0.1  # maximum of the ramped-up weight lambda
    beta: float = 1.0  # weight of the supervised LQ loss inside the lambda term
    uncertainty_threshold: float = 0.6  # H, in nats (binary entropy max is ln 2 = 0.693)
    rampup: str = "gaussian"  # gaussian exp(-5(1-t)^2) | exp exp(-5(1-t)) | constant
    rampup_steps: Optional[int] = None  # steps over which lambda reaches w_max; default: the whole run
    # ---- interactive recipe (SAM-Med3D)
    click_iterations: int = 11  # simulated clicks per HQ sample, loss summed over them
    lq_click_iterations: int = 3  # simulated clicks per LQ prompt set (loss on the last)
    augment: bool = True  # flips, scale and intensity augmentation
    scale_range: Tuple[float, float] = (0.85, 1.15)
    centre_shift: float = 0.0  # mm: move the crop centre off the target voxel by up to this on each axis (0: SAM-Med3D)
    # ---- optimisation
    epochs: int = 200
    max_steps: Optional[int] = None  # overrides epochs
    samples_per_epoch: Optional[int] = None  # default: number of training cases
    batch_size: int = 12
    accumulation: int = 20  # gradient accumulation (micro-batches per optimizer step)
    lr: float = 8e-4
    decoder_lr_scale: float = 0.1  # prompt encoder and decoder learning rate = lr x this
    weight_decay: float = 0.1
    milestones: Tuple[float, ...] = (120, 180)  # MultiStepLR, in epochs
    milestone_steps: Optional[Tuple[int, ...]] = None  # the same in optimizer steps (wins when set)
    gamma: float = 0.1
    warmup_steps: int = 0  # linear learning-rate warm-up (0: none, as in the paper)
    clip_grad: Optional[float] = None
    amp: str = "auto"  # auto (bf16/fp16 on GPU) | off
    # ---- run
    seed: int = 0
    num_workers: int = 2
    device: str = "auto"
    val_every: int = 0  # optimizer steps between validations; 0 = once per epoch
    checkpoint_every: int = 0  # steps between RUN/last.pt writes; 0 = once per epoch
    extra: Dict[str, Any] = field(default_factory=dict)  # free-form notes copied into checkpoints

    def validate(self) -> "TrainConfig":
        if self.strategy not in STRATEGIES:
            raise SegAnyPETError(f"unknown strategy {self.strategy!r}; choose {', '.join(STRATEGIES)}")
        if self.batch_size < 1 or self.accumulation < 1:
            raise SegAnyPETError("batch_size and accumulation must be at least 1")
        if self.click_iterations < 1 or self.lq_click_iterations < 1:
            raise SegAnyPETError("click iterations must be at least 1")
        if self.strategy != "finetune" and self.n_prompts < 2:
            raise SegAnyPETError("cross prompting needs n_prompts >= 2")
        for name in ("max_steps", "samples_per_epoch"):  # None: the default, 0 would silently mean it too
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SegAnyPETError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epochs < 1:
            raise SegAnyPETError(f"epochs must be at least 1, got {self.epochs}")
        for name in ("val_cases", "val_every", "checkpoint_every", "num_workers", "warmup_steps", "min_target_voxels"):
            if getattr(self, name) < 0:
                raise SegAnyPETError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.hq_cases is not None and self.hq_cases < 0:
            raise SegAnyPETError(f"hq_cases must not be negative, got {self.hq_cases}")
        if not self.lr > 0:
            raise SegAnyPETError(f"lr must be positive, got {self.lr}")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    """Tuples to lists, recursively, so the config survives YAML and weights_only checkpoints."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> TrainConfig:
    """Defaults, then the YAML file (a path, or a name in SegAnyPETLib/configs), then ``overrides``."""
    values: Dict[str, Any] = {}
    if path:
        file = Path(path)
        if not file.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
            file = CONFIG_DIR / f"{path}.yaml"
        if not file.exists():
            raise SegAnyPETError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as error:
            raise SegAnyPETError(f"config file {file} is not valid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise SegAnyPETError(f"config file {file} must be a mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SegAnyPETError(f"unknown training option(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(TrainConfig)
    values = {name: typed("training option", name, value, hints[name]) for name, value in values.items()}
    return TrainConfig(**values).validate()

