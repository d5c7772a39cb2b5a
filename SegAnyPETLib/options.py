"""Typed option values from YAML, checkpoints and ``--set KEY=VALUE``: one check for every config.

:func:`typed` turns a value into an option's declared type (``int``, ``float``, ``bool``, ``str``,
``Optional[...]``, ``Tuple[...]``) or raises one :class:`~SegAnyPETLib.errors.SegAnyPETError` that names
the option and the value. :func:`parse_assignments` reads ``--set KEY=VALUE`` items.
"""
from __future__ import annotations

import math
import typing
from typing import Any, Dict, Iterable, Optional, Sequence, Union

import yaml

from .errors import SegAnyPETError

KIND_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def typed(what: str, name: str, value: Any, hint: Any, choices: Optional[Sequence[str]] = None) -> Any:
    """``value`` as type ``hint``; ``what`` ("training option") starts the error message.

    Text is accepted for numbers and flags (``"4e-5"``, ``"true"``) and, for a tuple, as a
    comma-separated list; ``choices`` limits text (and the items of a tuple of text).
    """
    if typing.get_origin(hint) is Union:  # Optional[X]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise SegAnyPETError(f"{what} {name} must be a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(typed(what, name, v, item, choices) for v in value)
    if hint is float:
        number = value
        if isinstance(value, str):  # YAML 1.1 reads 4e-5 (no dot) as text
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
            return float(number)
        raise SegAnyPETError(f"{what} {name} must be a finite number, got {value!r}")
    if hint is bool and isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    if hint is int and isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            pass
    if hint in (int, bool, str):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise SegAnyPETError(f"{what} {name} must be {KIND_WORDS[hint]}, got {value!r}")
        if choices is not None and value not in choices:
            raise SegAnyPETError(f"{what} {name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    return value


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def parse_assignments(items: Iterable[str], option: str = "--set") -> Dict[str, Any]:
    """``["key=value", ...]`` -> {key: YAML value}; dashes in keys become underscores."""
    values: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SegAnyPETError(f"{option} {item!r} must be KEY=VALUE")
        try:
            values[key.strip().replace("-", "_")] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            values[key.strip().replace("-", "_")] = text
    return values
