"""PET DICOM series to SUV, as the QIBA vendor-neutral pseudo-code and the IBSI/OncoRay manual say.

``SUV = (stored pixel * RescaleSlope + RescaleIntercept) * factor``, one factor per slice:

Units (0054,1001)
    ``BQML``  activity concentration; ``factor = body size / decayed dose``.
    ``CNTS``  Philips: the SUV scale factor (7053,1000) gives SUVbw directly; else the activity
              concentration scale factor (7053,1009) gives Bq/mL, then as BQML.
    ``GML``   already SUV (g/mL) of the SUVType (0054,1006) (BW when absent);
    ``CM2ML`` already SUVbsa (cm2/mL): both are rescaled to the asked type by the body-size ratio.

Decay of the dose (BQML and Philips activity factor), by DecayCorrection (0054,1102)
    ``ADMIN`` images are decay corrected to the injection: decayed dose = dose.
    ``START`` decayed dose = dose * 2^(-(t_ref - t_injection) / half-life), where t_ref is the
              SeriesDate/Time when not after the earliest AcquisitionDate/Time; otherwise (a
              post-processed series) the GE private scan date-time (0009,100D), else the series
              start back-computed from the earliest slice, ``acquisition - FrameReferenceTime +
              average count-rate time within ActualFrameDuration``, else the earliest acquisition.
    ``NONE``  images are not decay corrected: each slice's own time, acquisition start + average
              count-rate time within its frame, ``(1/lambda) ln(lambda d / (1 - exp(-lambda d)))``.

Injection: RadiopharmaceuticalStartDateTime (0018,1078), else RadiopharmaceuticalStartTime
(0018,1072) on the series date, a day earlier when that would fall after the scan (across
midnight). Dose: RadionuclideTotalDose (0018,1074) in Bq; a value below 1e5 is read as MBq. Weight:
PatientWeight (0010,1030) in kg; above 1000 it is read as grams. Height: PatientSize (0010,1020) in
m; above 3 it is read as cm. Every such guess is a warning in the report.

SUV types and their body size: :mod:`SegAnyPETLib.body_size` (bw, lbm, lbm-janma, bsa, ibw).

Refused with one :class:`SegAnyPETError` each, naming the option that supplies the value: missing
or impossible weight (``--weight``), height (``--height``), sex (``--sex``), dose (``--dose``),
injection time (``--injection-time``), half-life (``--half-life``); unsupported Units; images
not attenuation corrected (CorrectedImage lacks ATTN) or, with DecayCorrection START/ADMIN, not
decay corrected (lacks DECY); a tag value that is not a number or a date/time (naming the tag and
the file). Folder problems come from :mod:`SegAnyPETLib.dicom_series`.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pydicom
import SimpleITK as sitk

from .body_size import BODY_SIZE_TEXT, SUV_TYPE_NAMES, SUV_TYPES, SUV_UNITS, body_size
from .decay import average_count_time, decay_factor, parse_injection_time
from .dicom_header import SeriesTags, naive, one_or_all
from .dicom_series import read_pet_series
from .errors import SegAnyPETError

logger = logging.getLogger(__name__)

# SUVType (0054,1006) defined terms; plain LBM does not name its formula, James 128 is assumed.
_HEADER_SUV_TYPES: Dict[str, str] = {
    "BW": "bw", "LBM": "lbm", "LBMJAMES128": "lbm", "LBMJANMA": "lbm-janma", "BSA": "bsa", "IBW": "ibw",
}
_MBQ_BELOW_BQ = 1e5  # a RadionuclideTotalDose below this is in MBq (100 GBq is never injected)
_GRAMS_ABOVE_KG = 1000.0  # a PatientWeight above this is in grams
_CM_ABOVE_M = 3.0  # a PatientSize above this is in cm
_PHILIPS_SUV_FACTOR = (0x7053, 0x1000)
_PHILIPS_ACTIVITY_FACTOR = (0x7053, 0x1009)
_GE_SCAN_DATETIME = (0x0009, 0x100D)


@dataclass
class SUVResult:
    """The SUV image on the DICOM grid, its factor(s) and how they were obtained."""

    image: sitk.Image
    factor: Union[float, np.ndarray]  # one value, or one per slice (z order of ``image``)
    suv_type: str
    report: Dict[str, Any] = field(default_factory=dict)


class _Conversion:
    """The QIBA / IBSI decision tree for one series; fills ``report`` as it goes."""

    def __init__(
        self, headers: Sequence[pydicom.Dataset], where: str, suv_type: str, overrides: Dict[str, Any],
        files: Optional[Sequence[os.PathLike]] = None,
    ):
        if suv_type not in SUV_TYPES:
            raise SegAnyPETError(f"unknown SUV type {suv_type!r}; choose one of {', '.join(SUV_TYPES)}")
        self.tags = SeriesTags(headers, where, files)
        self.where = where
        self.suv_type = suv_type
        self.overrides = {key: value for key, value in overrides.items() if value is not None}
        self.warnings: List[str] = []
        self.values: Dict[str, Any] = {}
        self._cache: Dict[str, Any] = {}

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning("%s: %s", self.where, message)

    # -- patient ----------------------------------------------------------------------------------
    def weight_kg(self) -> float:
        if "weight_kg" not in self._cache:
            if "weight_kg" in self.overrides:
                weight = float(self.overrides["weight_kg"])
            else:
                weight = self.tags.number(self.tags.get("PatientWeight"), "PatientWeight") or 0.0
                if weight > _GRAMS_ABOVE_KG:
                    self.warn(f"PatientWeight {weight:g} read as grams")
                    weight /= 1000.0
            if not weight > 0:
                raise SegAnyPETError(f"{self.where}: no patient weight (PatientWeight (0010,1030) missing or 0); pass --weight KG")
            self._cache["weight_kg"] = weight
        return self._cache["weight_kg"]

    def height_cm(self) -> float:
        if "height_cm" not in self._cache:
            if "height_cm" in self.overrides:
                height = float(self.overrides["height_cm"])
            else:
                height = self.tags.number(self.tags.get("PatientSize"), "PatientSize") or 0.0
                if height > _CM_ABOVE_M:
                    self.warn(f"PatientSize {height:g} read as cm")
                else:
                    height *= 100.0
            if not height > 0:
                raise SegAnyPETError(f"{self.where}: no patient height (PatientSize (0010,1020) missing or 0); pass --height CM")
            self._cache["height_cm"] = height
        return self._cache["height_cm"]

    def sex(self) -> str:
        if "sex" not in self._cache:
            sex = str(self.overrides.get("sex") or self.tags.get("PatientSex") or "").upper()
            if sex not in ("M", "F", "O"):
                raise SegAnyPETError(f"{self.where}: PatientSex (0010,0040) is {sex or 'missing'}, need M, F or O; pass --sex M|F")
            if sex == "O":
                self.warn("PatientSex O: the mean of the male and female formulas is used")
            self._cache["sex"] = sex
        return self._cache["sex"]

    def body_size(self, suv_type: str) -> float:
        weight = self.weight_kg() if suv_type != "ibw" else None
        height = self.height_cm() if suv_type != "bw" else None
        sex = self.sex() if suv_type in ("lbm", "lbm-janma", "ibw") else None
        size = body_size(suv_type, weight, height, sex)
        self.values[f"body_size_{suv_type}"] = size
        return size

    # -- dose and time ----------------------------------------------------------------------------
    def dose_bq(self) -> float:
        if "dose_bq" in self.overrides:
            dose = float(self.overrides["dose_bq"])
        else:
            dose = self.tags.number(self.tags.radiopharmaceutical_get("RadionuclideTotalDose"), "RadionuclideTotalDose") or 0.0
            if 0 < dose < _MBQ_BELOW_BQ:
                self.warn(f"RadionuclideTotalDose {dose:g} read as MBq")
                dose *= 1e6
        if not dose > 0:
            raise SegAnyPETError(
                f"{self.where}: no injected dose (RadionuclideTotalDose (0018,1074) missing or not positive); pass --dose MBQ"
            )
        self.values["dose_bq"] = dose
        return dose

    def half_life_s(self) -> float:
        if "half_life_s" in self.overrides:
            half_life = float(self.overrides["half_life_s"])
        else:
            half_life = self.tags.number(self.tags.radiopharmaceutical_get("RadionuclideHalfLife"), "RadionuclideHalfLife") or 0.0
        if not half_life > 0:
            raise SegAnyPETError(f"{self.where}: no half-life (RadionuclideHalfLife (0018,1075) missing or 0); pass --half-life S")
        self.values["half_life_s"] = half_life
        return half_life

    def series_datetime(self) -> Optional[dt.datetime]:
        date = self.tags.get("SeriesDate") or self.tags.get("AcquisitionDate") or self.tags.get("StudyDate")
        return self.tags.datetime(date, self.tags.get("SeriesTime"), "SeriesDate/SeriesTime")

    def acquisition_datetimes(self) -> List[Optional[dt.datetime]]:
        combined = self.tags.per_slice("AcquisitionDateTime")
        if all(combined):
            return [self.tags.date_time(text, "AcquisitionDateTime") for text in combined]
        dates = self.tags.per_slice("AcquisitionDate")
        times = self.tags.per_slice("AcquisitionTime")
        if not all(dates):
            fallback = self.tags.get("SeriesDate") or self.tags.get("StudyDate")
            dates = [date or fallback for date in dates]
        return [self.tags.datetime(date, time, "AcquisitionDate/AcquisitionTime") for date, time in zip(dates, times)]

    def injection_datetime(self, scan: dt.datetime) -> dt.datetime:
        override = self.overrides.get("injection_time")
        if isinstance(override, str):
            override = parse_injection_time(override)
        time_only = False
        if isinstance(override, dt.datetime):
            injection, source = naive(override), "--injection-time (date and time)"
        elif isinstance(override, dt.time):
            injection, source = dt.datetime.combine(scan.date(), override), "--injection-time (time of the scan day)"
            time_only = True
        else:
            injection = self.tags.date_time(
                self.tags.radiopharmaceutical_get("RadiopharmaceuticalStartDateTime"), "RadiopharmaceuticalStartDateTime"
            )
            source = "RadiopharmaceuticalStartDateTime"
            if injection is None:
                time = self.tags.radiopharmaceutical_get("RadiopharmaceuticalStartTime")
                if time is None:
                    raise SegAnyPETError(
                        f"{self.where}: no injection time (RadiopharmaceuticalStartDateTime (0018,1078) and "
                        "RadiopharmaceuticalStartTime (0018,1072) missing); pass --injection-time HH:MM"
                    )
                injection = self.tags.datetime(scan.strftime("%Y%m%d"), time, "RadiopharmaceuticalStartTime")
                source = "RadiopharmaceuticalStartTime on the scan day"
                time_only = True
        if injection > scan and time_only:
            injection -= dt.timedelta(days=1)
            source += ", previous day (across midnight)"
        if injection > scan:
            raise SegAnyPETError(
                f"{self.where}: injection {injection.isoformat()} is after the scan reference time {scan.isoformat()}; "
                "check --injection-time"
            )
        self.values["injection_time"] = injection.isoformat()
        self.values["injection_time_source"] = source
        return injection

    def start_reference(self, half_life: float) -> Tuple[dt.datetime, str]:
        """Scan reference time for DecayCorrection START (QIBA)."""
        series = self.series_datetime()
        acquisitions = self.acquisition_datetimes()
        known = [(time, index) for index, time in enumerate(acquisitions) if time is not None]
        earliest, earliest_index = min(known) if known else (None, None)
        if series is not None and (earliest is None or series <= earliest):
            return series, "SeriesDate/SeriesTime"
        if earliest is None:
            raise SegAnyPETError(f"{self.where}: no SeriesTime or AcquisitionTime; cannot decay-correct the dose")
        if re.match(r"GE\b", (self.tags.get("Manufacturer") or "").upper()):
            ge = self.tags.date_time(self.tags.private(_GE_SCAN_DATETIME, "GE private scan date-time"), "GE scan date-time")
            if ge is not None:
                return ge, "GE private scan date-time (0009,100D) (series time is after the acquisition)"
        frame_reference = self.tags.number(
            self.tags.per_slice("FrameReferenceTime")[earliest_index], "FrameReferenceTime", earliest_index) or 0.0
        frame_duration = self.tags.number(
            self.tags.per_slice("ActualFrameDuration")[earliest_index], "ActualFrameDuration", earliest_index) or 0.0
        if frame_reference > 0 and frame_duration > 0:
            start = earliest - dt.timedelta(seconds=frame_reference / 1000.0) + dt.timedelta(
                seconds=average_count_time(frame_duration / 1000.0, half_life)
            )
            return start, "earliest acquisition - FrameReferenceTime + average count time (series time is after the acquisition)"
        self.warn("SeriesTime is after the acquisition and no FrameReferenceTime: the earliest AcquisitionTime is used")
        return earliest, "earliest AcquisitionDate/AcquisitionTime (series time is after the acquisition)"

    def decayed_dose(self) -> np.ndarray:
        """The injected dose decayed to each slice's reference time (Bq), by DecayCorrection."""
        count = len(self.tags.headers)
        mode = (self.tags.get("DecayCorrection") or "").upper()
        corrections = self.corrected_image()
        if mode in ("START", "ADMIN") and corrections is not None and "DECY" not in corrections:
            raise SegAnyPETError(
                f"{self.where}: DecayCorrection is {mode} but CorrectedImage (0028,0051) lacks DECY: "
                "the images are not decay corrected; cannot compute SUV"
            )
        dose = self.dose_bq()
        self.values["decay_correction"] = mode
        if mode == "ADMIN":
            self.values["reference_time_source"] = "injection (DecayCorrection ADMIN)"
            return np.full(count, dose)
        half_life = self.half_life_s()
        if mode == "START":
            reference, source = self.start_reference(half_life)
            references = [reference] * count
        elif mode == "NONE":
            references, source = self.slice_references(half_life, corrections)
        else:
            raise SegAnyPETError(
                f"{self.where}: DecayCorrection (0054,1102) is {mode or 'missing'}; supported: START, ADMIN, NONE"
            )
        injection = self.injection_datetime(min(references))
        elapsed = np.array([(reference - injection).total_seconds() for reference in references])
        decayed = dose * decay_factor(elapsed, half_life)
        self.values["reference_time"] = one_or_all([reference.isoformat() for reference in references])
        self.values["reference_time_source"] = source
        self.values["decay_time_s"] = one_or_all(elapsed.tolist())
        self.values["decayed_dose_bq"] = one_or_all(decayed.tolist())
        return decayed

    def slice_references(self, half_life: float, corrections: Optional[List[str]]) -> Tuple[List[dt.datetime], str]:
        """Each slice's mean-activity time, for images that are not decay corrected (NONE)."""
        if corrections is not None and "DECY" in corrections:
            self.warn("DecayCorrection NONE but CorrectedImage lists DECY; DecayCorrection is followed")
        acquisitions = self.acquisition_datetimes()
        durations = [self.tags.number(v, "ActualFrameDuration", index) or 0.0
                     for index, v in enumerate(self.tags.per_slice("ActualFrameDuration"))]
        if any(a is None for a in acquisitions) or not all(d > 0 for d in durations):
            raise SegAnyPETError(
                f"{self.where}: DecayCorrection NONE needs AcquisitionTime and ActualFrameDuration (0018,1242) "
                "on every slice to decay-correct each slice"
            )
        references = [a + dt.timedelta(seconds=average_count_time(d / 1000.0, half_life)) for a, d in zip(acquisitions, durations)]
        return references, "each slice's AcquisitionTime + average count time in ActualFrameDuration (DecayCorrection NONE)"

    def corrected_image(self) -> Optional[List[str]]:
        """The CorrectedImage (0028,0051) values, None (with one warning) when absent."""
        if "corrected_image" not in self._cache:
            text = self.tags.get("CorrectedImage")
            if text is None:
                self.warn("CorrectedImage (0028,0051) is absent: attenuation and decay correction cannot be checked")
            self._cache["corrected_image"] = [item.strip().upper() for item in text.split("\\")] if text else None
        return self._cache["corrected_image"]

    # -- the factor -------------------------------------------------------------------------------
    def factors(self) -> Tuple[np.ndarray, str]:
        """Per-slice factors from rescaled pixel values to SUV of ``suv_type``, and the formula."""
        units = (self.tags.get("Units") or "").upper()
        self.values["units"] = units
        self.tags.per_slice("RescaleSlope"), self.tags.per_slice("RescaleIntercept")  # applied by DicomSeries
        target = self.suv_type
        numerator = BODY_SIZE_TEXT[target]
        count = len(self.tags.headers)
        if units in ("BQML", "CNTS"):
            corrections = self.corrected_image()
            if corrections is not None and "ATTN" not in corrections:
                raise SegAnyPETError(
                    f"{self.where}: CorrectedImage (0028,0051) lacks ATTN: the images are not attenuation corrected; "
                    "their SUV would be meaningless"
                )
        if units == "CNTS":
            suv_scale = self.tags.number(self.tags.private(_PHILIPS_SUV_FACTOR, "Philips SUV scale factor"), "Philips SUV factor")
            if suv_scale:
                size_ratio = 1.0 if target == "bw" else self.body_size(target) / self.body_size("bw")
                formula = "SUV = pixel [CNTS] * Philips SUV scale factor (7053,1000) [SUVbw]"
                if target != "bw":
                    formula += f" * {numerator} / weight [g]"
                return np.full(count, suv_scale * size_ratio), formula
            activity_scale = self.tags.number(
                self.tags.private(_PHILIPS_ACTIVITY_FACTOR, "Philips activity concentration scale factor"), "Philips activity factor"
            )
            if not activity_scale:
                raise SegAnyPETError(
                    f"{self.where}: Units CNTS without the Philips SUV scale factor (7053,1000) or activity "
                    "concentration scale factor (7053,1009): counts cannot be converted to SUV"
                )
            decayed = self.decayed_dose()
            formula = f"SUV = pixel [CNTS] * Philips activity factor (7053,1009) [Bq/mL per count] * {numerator} / decayed dose [Bq]"
            return activity_scale * self.body_size(target) / decayed, formula
        if units == "BQML":
            decayed = self.decayed_dose()
            formula = f"SUV = pixel [Bq/mL] * {numerator} / decayed dose [Bq]"
            return self.body_size(target) / decayed, formula
        if units in ("GML", "CM2ML"):
            stored_type = self.stored_suv_type(units)
            self.values["stored_suv_type"] = stored_type
            if stored_type == target:
                return np.ones(count), f"SUV = pixel [{SUV_UNITS[target]}] (already {SUV_TYPE_NAMES[target]})"
            ratio = self.body_size(target) / self.body_size(stored_type)
            return np.full(count, ratio), f"SUV = pixel [stored SUV{stored_type}] * {numerator} / {BODY_SIZE_TEXT[stored_type]}"
        raise SegAnyPETError(
            f"{self.where}: Units (0054,1001) {units or 'missing'} not supported; supported: BQML, CNTS (Philips), GML, CM2ML"
        )

    def stored_suv_type(self, units: str) -> str:
        header_type = (self.tags.get("SUVType") or "").upper()
        if units == "CM2ML":
            if header_type and header_type != "BSA":
                self.warn(f"Units CM2ML with SUVType {header_type}: the pixels are taken as SUVbsa")
            return "bsa"
        stored = _HEADER_SUV_TYPES.get(header_type, "bw")
        if (header_type and header_type not in _HEADER_SUV_TYPES) or stored == "bsa":
            self.warn(f"Units GML with SUVType {header_type}: the pixels are taken as SUVbw")
            stored = "bw"
        if header_type == "LBM":
            self.warn("SUVType LBM does not name its formula: James with 128 assumed")
        return stored


def suv_factors(
    headers: Sequence[pydicom.Dataset],
    suv_type: str = "bw",
    *,
    weight_kg: Optional[float] = None,
    height_cm: Optional[float] = None,
    sex: Optional[str] = None,
    dose_bq: Optional[float] = None,
    injection_time: Union[None, str, dt.datetime, dt.time] = None,
    half_life_s: Optional[float] = None,
    where: str = "series",
    files: Optional[Sequence[os.PathLike]] = None,
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Per-slice factors (rescaled pixel -> SUV) for slice headers sorted like the image, and the report.

    The keyword arguments override the header (weight in kg, height in cm, dose in Bq); ``files``
    (the headers' files) name the file of a tag that cannot be read, ``where`` otherwise.
    """
    if not headers:
        raise SegAnyPETError(f"{where}: no slices")
    overrides = dict(
        weight_kg=weight_kg, height_cm=height_cm, sex=sex, dose_bq=dose_bq, injection_time=injection_time, half_life_s=half_life_s
    )
    conversion = _Conversion(headers, where, suv_type, overrides, files)
    factors, formula = conversion.factors()
    factors = np.asarray(factors, dtype=np.float64)
    if not np.all(np.isfinite(factors)) or np.any(factors <= 0):
        raise SegAnyPETError(f"{where}: the SUV factor came out as {factors.min():g}; check the dose, weight and times")
    report: Dict[str, Any] = {
        "suv_type": suv_type,
        "suv_type_name": SUV_TYPE_NAMES[suv_type],
        "suv_unit": SUV_UNITS[suv_type],
        "factor": one_or_all(factors.tolist()),
        "formula": formula,
        **conversion.values,
        "tags": conversion.tags.used,
        "overrides": {key: (value.isoformat() if hasattr(value, "isoformat") else value) for key, value in conversion.overrides.items()},
        "warnings": conversion.warnings,
    }
    return factors, report


def dicom_to_suv(
    folder: str | os.PathLike,
    suv_type: str = "bw",
    *,
    weight_kg: Optional[float] = None,
    height_cm: Optional[float] = None,
    sex: Optional[str] = None,
    dose_bq: Optional[float] = None,
    injection_time: Union[None, str, dt.datetime, dt.time] = None,
    half_life_s: Optional[float] = None,
    series_uid: Optional[str] = None,
) -> SUVResult:
    """Read the PET series under ``folder`` and convert it to SUV of ``suv_type`` on the DICOM grid."""
    series = read_pet_series(folder, series_uid)
    factors, report = suv_factors(
        series.headers,
        suv_type,
        weight_kg=weight_kg,
        height_cm=height_cm,
        sex=sex,
        dose_bq=dose_bq,
        injection_time=injection_time,
        half_life_s=half_life_s,
        where=str(series.folder),
        files=series.files,
    )
    suv = series.rescaled_pixels() * factors[:, None, None]
    report = {
        "folder": str(series.folder),
        "series_instance_uid": series.series_instance_uid,
        "slices": len(series.headers),
        "size": list(series.size),
        "spacing_mm": list(series.spacing),
        **report,
    }
    factor: Union[float, np.ndarray] = float(factors[0]) if np.ptp(factors) == 0 else factors
    return SUVResult(image=series.make_image(suv), factor=factor, suv_type=suv_type, report=report)
