"""Target names (TotalSegmentator's), label values, colours and the paper's seen/unseen groups;
:func:`read_label_names` reads the names of a label image from a labels file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

from .errors import SegAnyPETError

# Label values follow the AutoPET-Organ order of the paper's external test (1-12), then extras.
LABELS: Dict[str, int] = {
    "liver": 1,
    "kidney_left": 2,
    "kidney_right": 3,
    "heart": 4,
    "spleen": 5,
    "aorta": 6,
    "prostate": 7,
    "lung_lower_lobe_left": 8,
    "lung_lower_lobe_right": 9,
    "lung_upper_lobe_left": 10,
    "lung_upper_lobe_right": 11,
    "lung_middle_lobe_right": 12,
    "brain": 13,
    "urinary_bladder": 14,
    "lesion": 15,
}

# Organs the paper trains on (seen) and tests zero-shot (unseen), Table 1 of SegAnyPET.
SEEN_ORGANS: Tuple[str, ...] = ("liver", "kidney_left", "kidney_right", "heart", "spleen")
UNSEEN_ORGANS: Tuple[str, ...] = (
    "aorta",
    "prostate",
    "lung_lower_lobe_left",
    "lung_lower_lobe_right",
    "lung_upper_lobe_left",
    "lung_upper_lobe_right",
    "lung_middle_lobe_right",
)

# RGB 0-255, close to Slicer's generic anatomy colours; lobes get distinct shades.
COLORS: Dict[str, Tuple[int, int, int]] = {
    "liver": (221, 130, 101),
    "kidney_left": (185, 102, 83),
    "kidney_right": (185, 102, 83),
    "heart": (206, 110, 84),
    "spleen": (157, 108, 162),
    "aorta": (224, 97, 76),
    "prostate": (230, 158, 140),
    "lung_lower_lobe_left": (197, 165, 145),
    "lung_lower_lobe_right": (197, 165, 145),
    "lung_upper_lobe_left": (172, 138, 115),
    "lung_upper_lobe_right": (172, 138, 115),
    "lung_middle_lobe_right": (202, 164, 140),
    "brain": (250, 250, 225),
    "urinary_bladder": (222, 154, 132),
    "lesion": (255, 230, 0),
}

DEFAULT_COLOR: Tuple[int, int, int] = (128, 174, 128)


def display_name(name: str) -> str:
    """``"kidney_left"`` -> ``"kidney left"`` for tables and the Slicer segment list."""
    return name.replace("_", " ")


def color_of(name: str) -> Tuple[int, int, int]:
    """Colour for a target name; free-text names get a neutral green."""
    return COLORS.get(name, DEFAULT_COLOR)


def read_label_names(path: str | os.PathLike) -> Dict[int, str]:
    """Label value -> name from an nnU-Net dataset.json (v2 ``name: value`` or v1 ``"value": name``).

    Value 0 (background) is left out. Refused with one error naming the file: not JSON, no
    mapping, an entry of neither form, a negative value, a key given twice, two names for one
    value and one name for two values.
    """
    path = Path(path)
    if not path.is_file():
        raise SegAnyPETError(f"labels file {path} does not exist")
    repeated: List[str] = []

    def pairs(items: List[Tuple[str, Any]]) -> Dict[str, Any]:
        keys = [key for key, _ in items]
        repeated.extend(sorted({key for key in keys if keys.count(key) > 1}))
        return dict(items)

    try:
        content = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
    except (ValueError, UnicodeDecodeError) as error:
        raise SegAnyPETError(f"labels file {path} is not JSON ({error})") from None
    if repeated:
        raise SegAnyPETError(f"labels file {path} gives the key {repeated[0]!r} twice; JSON keeps only the last")
    labels = content.get("labels", content) if isinstance(content, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise SegAnyPETError(f"labels file {path} has no 'labels' mapping")
    entries = []
    for key, value in labels.items():
        if isinstance(value, int) and not isinstance(value, bool):  # v2: name -> value
            entries.append((value, str(key)))
        elif isinstance(key, str) and key.strip().lstrip("-").isdigit() and isinstance(value, str):  # v1
            entries.append((int(key), value))
        else:
            raise SegAnyPETError(f"labels file {path}: entry {key!r}: {value!r} is neither name: value nor 'value': name")
    names: Dict[int, str] = {}
    for value, name in entries:
        if value < 0:
            raise SegAnyPETError(f"labels file {path}: {name} has the negative label value {value}")
        if value in names:
            raise SegAnyPETError(f"labels file {path} gives label value {value} two names: {names[value]} and {name}")
        twin = next((other for other, known in names.items() if known == name), None)
        if twin is not None:
            raise SegAnyPETError(f"labels file {path} gives the name {name} to label values {twin} and {value}")
        names[value] = name
    names.pop(0, None)
    return names
