"""Target names (TotalSegmentator's), label values, colours and the paper's seen/unseen groups."""
from __future__ import annotations

from typing import Dict, Tuple

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
