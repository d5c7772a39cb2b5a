"""Tags of a PET DICOM series as the SUV conversion reads them: text, numbers, dates and times.

:class:`SeriesTags` records every tag it reads, with its value, for the SUV report, and refuses a
value that is not a number or a DICOM date/time with one error naming the tag and the file.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.valuerep import DA, DT, TM

from .errors import SegAnyPETError


def one_or_all(values: List[Any]) -> Any:
    """A per-slice list in the report, or its single value when all slices agree."""
    return values[0] if len(set(values)) == 1 else values


def naive(value: dt.datetime) -> dt.datetime:
    """The date-time without its time zone (DICOM times are local)."""
    return value.replace(tzinfo=None) if value.tzinfo else value


def tag_label(keyword: str) -> str:
    """``PatientWeight (0010,1030)`` for a keyword (the keyword alone for other labels)."""
    tag = tag_for_keyword(keyword)
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else keyword


def _private_label(tag: Tuple[int, int], name: str) -> str:
    return f"{name} ({tag[0]:04X},{tag[1]:04X})"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip().strip("\x00").strip()


class SeriesTags:
    """Reads the series' tags and records each one it reads, with its value, for the report.

    ``where`` (the folder) starts messages; ``files``, the slices' files in the order of
    ``headers``, name the file of a value that cannot be read.
    """

    def __init__(self, headers: Sequence[pydicom.Dataset], where: str, files: Optional[Sequence[Path]] = None):
        self.headers = list(headers)
        self.where = where
        self.files = list(files) if files is not None else None
        self.used: Dict[str, Any] = {}
        sequence = self.headers[0].get("RadiopharmaceuticalInformationSequence")
        self.radiopharmaceutical = sequence[0] if sequence else pydicom.Dataset()

    def source(self, index: int = 0) -> str:
        """The file of slice ``index`` when known, else the folder."""
        return str(self.files[index]) if self.files else self.where

    def _read(self, dataset: pydicom.Dataset, key: Union[str, Tuple[int, int]], label: str) -> Optional[str]:
        text = _text(dataset[key].value) if key in dataset else ""
        if text:
            self.used[label] = text
        return text or None

    def get(self, keyword: str) -> Optional[str]:
        """A series-level tag from the first slice (None when absent or empty)."""
        return self._read(self.headers[0], keyword, tag_label(keyword))

    def radiopharmaceutical_get(self, keyword: str) -> Optional[str]:
        """A tag of the first RadiopharmaceuticalInformationSequence item."""
        return self._read(self.radiopharmaceutical, keyword, tag_label(keyword))

    def private(self, tag: Tuple[int, int], name: str) -> Optional[str]:
        return self._read(self.headers[0], tag, _private_label(tag, name))

    def per_slice(self, keyword: str) -> List[Optional[str]]:
        """A tag of every slice; recorded once when all slices agree, as the list otherwise."""
        texts = [_text(ds[keyword].value) if keyword in ds else "" for ds in self.headers]
        if any(texts):
            self.used[tag_label(keyword)] = one_or_all(texts)
        return [text or None for text in texts]

    def number(self, text: Optional[str], label: str, index: int = 0) -> Optional[float]:
        """A decimal tag value of slice ``index`` (None when absent); one clear error naming the
        tag and the file when it is not a finite number."""
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            raise SegAnyPETError(f"{self.source(index)}: {tag_label(label)} is {text!r}, not a number")
        return value

    def datetime(self, date_text: Optional[str], time_text: Optional[str], label: str) -> Optional[dt.datetime]:
        if not time_text:
            return None
        if not date_text:
            raise SegAnyPETError(f"{self.source()}: {label} has a time but no date")
        try:
            date, time = DA(date_text.replace("-", "")), TM(time_text.replace(":", ""))
        except ValueError as error:
            raise SegAnyPETError(f"{self.source()}: {label} {date_text} {time_text} is not a DICOM date/time ({error})") from None
        return dt.datetime.combine(date, time)

    def date_time(self, text: Optional[str], label: str) -> Optional[dt.datetime]:
        if not text:
            return None
        try:
            value = DT(text)
        except ValueError as error:
            raise SegAnyPETError(f"{self.source()}: {label} {text!r} is not a DICOM date-time ({error})") from None
        return naive(value) if value is not None else None
