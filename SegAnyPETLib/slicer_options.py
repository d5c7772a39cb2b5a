"""The Slicer module's inference options without Qt: the preset combo box, the *Advanced* controls and
what the parameter node stores.

The parameter node holds a preset (:data:`MODEL_DEFAULT`, ``""``: the model's own config) and the
overrides as JSON: the options whose values differ from the preset's. :func:`optionControls` says
which control shows each option of :class:`~SegAnyPETLib.inference.config.SessionConfig` (a flag: check
box; a whole number: spin box; a number: decimal spin box, its minimum meaning "not set" for an
optional one; text with choices: combo box; a list of names: line edit with a comma-separated list),
so a new option needs no change here or in the widget. :class:`OptionsForm` turns the controls'
values into overrides and back; every value goes through the config's own checks.
"""
from __future__ import annotations

import json
import logging
import typing
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import SegAnyPETError
from .inference.config import PRESETS, OptionSpec, SessionConfig, option_specs, preset as presetConfig

logger = logging.getLogger(__name__)

MODEL_DEFAULT = ""  # the preset combo box's first item: the model's own options
MODEL_DEFAULT_LABEL = "Model default"
CONTROL_KINDS = ("checkbox", "spinbox", "doublespinbox", "combobox", "lineedit")
DECIMALS = 3  # of a decimal spin box; a value within half its last digit of the option's counts as unchanged
LARGEST = 1000  # the top of a spin box whose option the config does not bound
NOT_SET = "default"  # what an optional number's spin box shows at its minimum (the option's None)


@dataclass(frozen=True)
class OptionControl:
    """How the *Advanced* section shows one option: ``kind`` is one of :data:`CONTROL_KINDS`."""

    name: str
    kind: str
    label: str
    toolTip: str
    choices: Tuple[str, ...] = ()
    minimum: float = 0
    maximum: float = 0
    optional: bool = False  # the minimum of a spin box means None ("not set")


def presetItems() -> List[Tuple[str, str]]:
    """(value, label) of the preset combo box: the model's own, then each preset."""
    return [(MODEL_DEFAULT, MODEL_DEFAULT_LABEL)] + [(name, name) for name in PRESETS]


def _accepts(name: str, value: Any) -> bool:
    try:
        SessionConfig().replace(**{name: value})
    except SegAnyPETError:
        return False
    return True


def _control(spec: OptionSpec) -> OptionControl:
    hint, optional = spec.type, False
    if typing.get_origin(hint) is Union:  # Optional[X]
        hint, optional = next(a for a in typing.get_args(hint) if a is not type(None)), True
    label = spec.name.replace("_", " ").capitalize()
    common = dict(name=spec.name, label=label, toolTip=spec.help, optional=optional)
    if hint is bool:
        return OptionControl(kind="checkbox", **common)
    if hint in (int, float):
        # The range comes from the config's own checks: 0 or 1 at the bottom, 1 at the top for a fraction.
        minimum = 0 if optional or _accepts(spec.name, 0) else 1
        maximum = 1 if hint is float and not _accepts(spec.name, 1.5) else LARGEST
        return OptionControl(kind="spinbox" if hint is int else "doublespinbox", minimum=minimum, maximum=maximum, **common)
    if hint is str and spec.choices:
        return OptionControl(kind="combobox", choices=spec.choices, **common)
    return OptionControl(kind="lineedit", choices=spec.choices or (), **common)  # a list of names, or text


def optionControls() -> List[OptionControl]:
    """The *Advanced* section's controls, one per option of :class:`SessionConfig`, in its order."""
    return [_control(spec) for spec in option_specs()]


def shownValue(control: OptionControl, value: Any) -> Any:
    """What ``control`` shows for the option value ``value``."""
    if control.kind == "checkbox":
        return bool(value)
    if control.kind == "spinbox":
        return int(control.minimum if value is None else value)
    if control.kind == "doublespinbox":
        return float(control.minimum if value is None else value)
    if control.kind == "combobox":
        return str(value)
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def optionValue(control: OptionControl, shown: Any) -> Any:
    """The option value (still to be checked by the config) for what ``control`` shows."""
    if control.optional and control.kind in ("spinbox", "doublespinbox") and shown <= control.minimum:
        return None
    return shown


class OptionsForm:
    """The preset and the overrides (the options that differ from the preset's) the module stores, and
    what its controls show. ``base`` arguments are the preset's config before overrides (the logic's
    ``baseConfig``). Every change is checked by the config; a refused one changes nothing.
    """

    def __init__(self, preset: str = MODEL_DEFAULT, overrides: Optional[Mapping[str, Any]] = None) -> None:
        if preset:
            presetConfig(preset)  # one clear error for an unknown name
        overrides = dict(overrides or {})
        checked = SessionConfig().replace(**overrides)
        self.preset = preset or MODEL_DEFAULT
        self.overrides: Dict[str, Any] = {name: getattr(checked, name) for name in overrides}

    @classmethod
    def fromNode(cls, preset: str, options: str) -> "OptionsForm":
        """The form of a parameter node's ``preset`` and ``options`` (JSON of option: value)."""
        try:
            overrides = json.loads(options or "{}")
        except ValueError as error:
            raise SegAnyPETError(f"the stored inference options are not JSON ({error}): {options!r}") from None
        if not isinstance(overrides, dict):
            raise SegAnyPETError(f"the stored inference options must be a JSON object of option: value, got {options!r}")
        return cls(preset, overrides)

    @classmethod
    def remembered(cls, preset: str, options: str) -> "OptionsForm":
        """As :meth:`fromNode`, but the model's own options (with a warning) when the stored ones are
        refused (an option that no longer exists, say)."""
        try:
            return cls.fromNode(preset, options)
        except SegAnyPETError as error:
            logger.warning("SegAnyPET: remembered inference options ignored: %s", error)
            return cls()

    def toNode(self) -> Tuple[str, str]:
        """(preset, options JSON) for the parameter node."""
        return self.preset, json.dumps(self.overrides, sort_keys=True)

    def choosePreset(self, preset: str) -> None:
        """Another preset (``""``: the model's own); the overrides go, so the controls show its values."""
        if preset:
            presetConfig(preset)
        self.preset, self.overrides = preset or MODEL_DEFAULT, {}

    def config(self, base: SessionConfig) -> SessionConfig:
        """The options a click runs with: ``base`` and the overrides."""
        return base.replace(**self.overrides)

    def controlValues(self, base: SessionConfig) -> Dict[str, Any]:
        """What each control shows (option name: value), from ``base`` and the overrides."""
        config = self.config(base)
        return {control.name: shownValue(control, getattr(config, control.name)) for control in optionControls()}

    def setControlValues(self, base: SessionConfig, shown: Mapping[str, Any]) -> None:
        """Take the controls' values (option name: value shown; missing ones unchanged): the overrides
        become the options that differ from ``base``. A refused value raises and changes nothing."""
        current = self.config(base)
        values: Dict[str, Any] = {}
        for control in optionControls():
            if control.name not in shown:
                continue
            value = optionValue(control, shown[control.name])
            old = getattr(current, control.name)
            if (control.kind == "doublespinbox" and value is not None and old is not None
                    and abs(float(value) - old) < 0.5 * 10 ** -DECIMALS):
                value = old  # the spin box rounded the option's value
            values[control.name] = value
        self.overrides = base.replace(**{**self.overrides, **values}).differences(base)

    def summary(self) -> str:
        """One line: which preset, and which options differ from it."""
        name = f"the {self.preset} preset" if self.preset else "the model's own options"
        if not self.overrides:
            return f"Options of {name}."
        return f"Options of {name}, changed: {', '.join(sorted(self.overrides))}."
