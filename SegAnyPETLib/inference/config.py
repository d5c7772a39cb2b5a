"""Every inference option of a session, once, and the named presets.

:class:`SessionConfig`'s defaults are the official SegAnyPET / SAM-Med3D protocol: one crop per
object with the first click at crop voxel ``size // 2`` on the model's grid, the previous
low-resolution logits fed back, ``sigmoid > threshold`` on the crop and nearest-neighbour paste-back,
nothing else. Each extra is an option, off by default; a preset turns on the extras that were
measured for one model. A checkpoint stores the config it should run with (as it stores its
preprocessing); :func:`resolve_config` combines a model's stored config, a preset and overrides.

Adding an option: one field here, with its default, help and (for text) choices. The command line
(``--set``), the Slicer module's *Advanced* section and the checkpoint validation read this table.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..errors import SegAnyPETError
from ..options import typed

REFINERS = ("clicked_islands", "contrast_edge", "touching_islands", "focal_uptake")


def _option(default: Any, help: str, choices: Optional[Sequence[str]] = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": tuple(choices) if choices else None})


@dataclass(frozen=True)
class SessionConfig:
    """How a session turns clicks into a mask (see the module docstring; defaults: official)."""

    crop: str = _option(
        "at_click", "where a new object's crop lies: at_click puts the click at crop voxel size/2 on the model's "
        "grid, zeros beyond the image (official); inside_image centres it on the click, moved inside the image",
        ("at_click", "inside_image"))
    paste: str = _option(
        "nearest", "how a crop's prediction reaches the input grid: nearest thresholds on the crop and takes the "
        "nearest crop voxel (official); trilinear interpolates the probabilities, then thresholds",
        ("nearest", "trilinear"))
    mask_threshold: Optional[float] = _option(
        None, "probability above which a voxel is in the mask; empty: the checkpoint's (0.5 unless calibrated)")
    max_crops: int = _option(1, "most crops per object, added crops included")
    extend: bool = _option(
        False, "add overlapping crops where the mask reaches a crop face inside the image (organs larger than the crop)")
    extension_agreement: float = _option(
        0.9, "keep an added crop only if its mask and its source crop's agree this well (Dice) where they overlap")
    interior_crop: bool = _option(
        False, "a new object's first click also adds a crop centred on the deepest point of its first mask")
    part_check: bool = _option(
        False, "segment each part of a new object's first mask from its own centre; leave out parts that are "
        "another object")
    mirror: bool = _option(False, "average every prediction over the 8 mirrorings of its crop (8x encoder work)")
    refiners: Tuple[str, ...] = _option(
        (), "mask refiners run in this order after every change (clicked_islands, contrast_edge, touching_islands)",
        REFINERS)
    lesion_refiners: Tuple[str, ...] = _option(
        (), "the refiners of an object marked as a lesion, in order (clicked_islands, focal_uptake)", REFINERS)
    edge_fraction: float = _option(
        0.4, "where contrast_edge and focal_uptake put the edge, from the surroundings' uptake (0) to the object's (1)")

    def __post_init__(self) -> None:
        for spec in option_specs():
            object.__setattr__(self, spec.name, typed("inference option", spec.name, getattr(self, spec.name),
                                                      spec.type, spec.choices))
        if self.max_crops < 1:
            raise SegAnyPETError(f"inference option max_crops must be at least 1, got {self.max_crops}")
        if self.mask_threshold is not None and not 0.0 < self.mask_threshold < 1.0:
            raise SegAnyPETError(f"inference option mask_threshold must lie between 0 and 1, got {self.mask_threshold}")
        for name in ("extension_agreement", "edge_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SegAnyPETError(f"inference option {name} must lie between 0 and 1, got {getattr(self, name)}")

    def replace(self, **overrides: Any) -> "SessionConfig":
        """A copy with ``overrides`` (option names; unknown names are refused)."""
        unknown = sorted(set(overrides) - {spec.name for spec in option_specs()})
        if unknown:
            raise SegAnyPETError(f"unknown inference option(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(spec.name for spec in option_specs())}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> Dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in dataclasses.asdict(self).items()}

    def differences(self, other: "SessionConfig") -> Dict[str, Any]:
        """The options whose values differ from ``other``'s (this config's values)."""
        return {spec.name: getattr(self, spec.name) for spec in option_specs()
                if getattr(self, spec.name) != getattr(other, spec.name)}


class OptionSpec(NamedTuple):
    """One option of :class:`SessionConfig`: what a user interface needs to show it."""

    name: str
    type: Any
    default: Any
    help: str
    choices: Optional[Tuple[str, ...]]


def option_specs() -> Iterator[OptionSpec]:
    """The options of :class:`SessionConfig` in declaration order."""
    hints = typing.get_type_hints(SessionConfig)
    for spec in dataclasses.fields(SessionConfig):
        yield OptionSpec(spec.name, hints[spec.name], spec.default, spec.metadata["help"], spec.metadata["choices"])


# The presets: official, and each model's recipe where a measurement made it (docs/inference.md).
PRESETS: Dict[str, SessionConfig] = {
    "official": SessionConfig(),
    # What the bundled phantom model was designed and evaluated with, less crop extension, which changed
    # no validation result and cost encoder runs (docs/inference.md, docs/experiments/LOG.md).
    "bundled": SessionConfig(
        crop="inside_image", paste="trilinear", max_crops=6, interior_crop=True, part_check=True,
        refiners=("clicked_islands", "contrast_edge", "touching_islands"),
        lesion_refiners=("clicked_islands", "focal_uptake"),
    ),
}


def preset(name: str) -> SessionConfig:
    """The preset called ``name``, or one clear error listing the presets."""
    if name not in PRESETS:
        raise SegAnyPETError(f"unknown preset {name!r}; choose {', '.join(PRESETS)}")
    return PRESETS[name]


def config_from_dict(values: Mapping[str, Any], where: str = "checkpoint") -> SessionConfig:
    """A config stored as a dict (a checkpoint's ``inference``); each bad field named in the error."""
    if not isinstance(values, Mapping):
        raise SegAnyPETError(f"{where}: inference must be a mapping of option: value, got {type(values).__name__}")
    try:
        return SessionConfig().replace(**dict(values))
    except SegAnyPETError as error:
        raise SegAnyPETError(f"{where}: {error}") from None


def preset_name(config: SessionConfig) -> Optional[str]:
    """The name of the preset equal to ``config``, else None."""
    return next((name for name, values in PRESETS.items() if values == config), None)


def resolve_config(model: Any = None, preset_or_config: Any = None, **overrides: Any) -> SessionConfig:
    """The config a session runs with: ``preset_or_config`` (a name or a :class:`SessionConfig`; default:
    the model's own, ``model.inference``, else ``official``), then ``overrides``."""
    if isinstance(preset_or_config, SessionConfig):
        base = preset_or_config
    elif preset_or_config:
        base = preset(str(preset_or_config))
    else:
        base = getattr(model, "inference", None) or PRESETS["official"]
    return base.replace(**overrides) if overrides else base
