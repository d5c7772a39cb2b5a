"""Radioactive decay and the times of a PET scan: decay factor, average count time, injection time."""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Union

import numpy as np

from .errors import SegAnyPETError


def decay_factor(elapsed_s: Union[float, np.ndarray], half_life_s: float) -> Union[float, np.ndarray]:
    """Fraction of the activity left after ``elapsed_s`` seconds."""
    return np.power(2.0, -np.asarray(elapsed_s, dtype=np.float64) / half_life_s)


def average_count_time(frame_duration_s: float, half_life_s: float) -> float:
    """Seconds after the frame start at which the activity equals its mean over the frame."""
    if frame_duration_s <= 0:
        return 0.0
    decay_in_frame = math.log(2.0) / half_life_s * frame_duration_s
    return half_life_s / math.log(2.0) * math.log(decay_in_frame / -math.expm1(-decay_in_frame))


def parse_injection_time(text: str) -> Union[dt.datetime, dt.time]:
    """``2025-01-01T10:00[:00]`` (date and time) or ``10:00[:00]`` (time of the scan day)."""
    text = text.strip()
    try:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?", text)
        if match:
            seconds = float(match.group(3) or 0.0)
            return dt.time(int(match.group(1)), int(match.group(2)), int(seconds), round(seconds % 1 * 1e6))
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise SegAnyPETError(
            f"injection time {text!r}: give an ISO date-time (2025-01-01T10:00:00) or HH:MM[:SS]"
        ) from None
