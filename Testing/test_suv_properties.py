"""Property-based tests of the SUV time and unit logic on series written with pydicom.

Each example invents a patient (true SUVbw per voxel, weight, dose, uptake time, half-life), encodes
it the way a scanner would for a random Units / DecayCorrection / time and unit convention, and
checks that :func:`dicom_to_suv` recovers the closed-form SUV.
"""
from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pet_dicom_factory import write_pet_series
from SegAnyPETLib.suv import SUV_TYPES, body_size, dicom_to_suv

HALF_LIVES = {"F18": 6586.2, "Ga68": 4057.7, "C11": 1220.04, "Zr89": 282240.0}
FRAME_S = 180.0


def _da(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d")


def _tm(moment: dt.datetime) -> str:
    return moment.strftime("%H%M%S")


@st.composite
def patients(draw):
    return {
        "suv": draw(st.lists(st.floats(0.1, 20.0), min_size=12, max_size=12)),
        "weight_kg": draw(st.floats(40.0, 150.0)),
        "height_cm": draw(st.floats(150.0, 200.0)),
        "sex": draw(st.sampled_from(["M", "F"])),
        "dose_bq": draw(st.floats(40e6, 800e6)),
        "half_life": draw(st.sampled_from(sorted(HALF_LIVES.values()))),
        # scan anywhere in the day, so injection and scan may straddle midnight
        "scan": dt.datetime(2025, 3, 1) + dt.timedelta(seconds=draw(st.integers(0, 86399))),
        "uptake_s": draw(st.integers(300, 4 * 3600)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    patient=patients(),
    units=st.sampled_from(["BQML", "CNTS-activity", "CNTS-suv", "GML", "CM2ML"]),
    decay=st.sampled_from(["START", "ADMIN", "NONE"]),
    series_after_acquisition=st.booleans(),
    injection_as=st.sampled_from(["datetime", "time"]),
    dose_in_mbq=st.booleans(),
    weight_in_grams=st.booleans(),
    stored_type=st.sampled_from(["BW", "LBMJAMES128", "LBMJANMA", "IBW"]),
    target=st.sampled_from(SUV_TYPES),
)
def test_dicom_to_suv_recovers_the_true_suv(
    patient, units, decay, series_after_acquisition, injection_as, dose_in_mbq, weight_in_grams, stored_type, target
):
    suv_bw = np.array(patient["suv"]).reshape(3, 2, 2)
    # the values as the header will hold them (DS precision), in kg, Bq, cm
    weight = round(patient["weight_kg"], 3)
    dose = round(patient["dose_bq"], -3)
    height = round(patient["height_cm"], 1)
    half_life = patient["half_life"]
    scan, injection = patient["scan"], patient["scan"] - dt.timedelta(seconds=patient["uptake_s"])
    rate = math.log(2.0) / half_life
    header = {
        "PatientWeight": f"{weight * 1000:.0f}" if weight_in_grams else f"{weight:.3f}",
        "PatientSize": f"{height / 100:.3f}",
        "PatientSex": patient["sex"],
        "SeriesDate": _da(scan), "SeriesTime": _tm(scan), "AcquisitionDate": _da(scan), "AcquisitionTime": _tm(scan),
        "DecayCorrection": decay, "Units": units.split("-")[0], "ActualFrameDuration": str(int(FRAME_S * 1000)),
    }  # fmt: skip
    per_slice = {}
    drug = {
        "RadionuclideTotalDose": f"{dose / 1e6:.3f}" if dose_in_mbq else f"{dose:.0f}",
        "RadionuclideHalfLife": str(half_life),
        "RadiopharmaceuticalStartDateTime": injection.strftime("%Y%m%d%H%M%S") if injection_as == "datetime" else None,
        "RadiopharmaceuticalStartTime": _tm(injection) if injection_as == "time" else None,
    }
    private = {}
    # activity concentration decay corrected to the scan start (Bq/mL)
    activity = suv_bw * dose * 2.0 ** (-(scan - injection).total_seconds() / half_life) / (weight * 1000.0)
    if decay == "START" and series_after_acquisition:
        # a post-processed series: SeriesTime an hour later; FrameReferenceTime (the offset of the
        # frame's mean-activity time from the series start) leads back to the start
        acquisition = scan + dt.timedelta(seconds=40)
        mean_time = math.log(rate * FRAME_S / -math.expm1(-rate * FRAME_S)) / rate
        later = scan + dt.timedelta(hours=1)
        header.update(
            SeriesTime=_tm(later), SeriesDate=_da(later), AcquisitionTime=_tm(acquisition), AcquisitionDate=_da(acquisition),
            FrameReferenceTime=f"{(40.0 + mean_time) * 1000.0:.3f}",
        )  # fmt: skip
    elif decay == "ADMIN":
        activity = activity * 2.0 ** ((scan - injection).total_seconds() / half_life)
    elif decay == "NONE":
        header["CorrectedImage"] = ["NORM", "DTIM", "ATTN", "SCAT", "RAN"]
        starts = [scan + dt.timedelta(seconds=FRAME_S * index) for index in range(3)]
        per_slice = {"AcquisitionTime": [_tm(s) for s in starts], "AcquisitionDate": [_da(s) for s in starts]}
        # no decay correction: the mean over each frame of the decaying activity
        in_frame = -math.expm1(-rate * FRAME_S) / (rate * FRAME_S)
        for index, start in enumerate(starts):
            activity[index] *= 2.0 ** (-(start - scan).total_seconds() / half_life) * in_frame

    if units == "BQML":
        stored = activity
    elif units == "CNTS-activity":
        stored = activity / 0.25
        private[(0x7053, 0x1009)] = ("DS", "0.25")
    elif units == "CNTS-suv":
        stored = suv_bw / 0.0004
        private[(0x7053, 0x1000)] = ("DS", "0.0004")
    elif units == "GML":
        kind = {"BW": "bw", "LBMJAMES128": "lbm", "LBMJANMA": "lbm-janma", "IBW": "ibw"}[stored_type]
        stored = suv_bw * body_size(kind, weight, height, patient["sex"]) / (weight * 1000.0)
        header["SUVType"] = stored_type
    else:  # CM2ML
        stored = suv_bw * body_size("bsa", weight, height) / (weight * 1000.0)
    expected = suv_bw * body_size(target, weight, height, patient["sex"]) / (weight * 1000.0)

    with tempfile.TemporaryDirectory() as folder:
        slopes = write_pet_series(Path(folder), stored, header=header, per_slice=per_slice, radiopharmaceutical=drug, private=private)
        result = dicom_to_suv(folder, target)
    measured = sitk.GetArrayFromImage(result.image).astype(np.float64)
    # rounding to int16 costs half a stored step; float32 output about 1e-7 relative
    step = (slopes * (expected / stored).reshape(3, -1).max(axis=1))[:, None, None]
    assert np.all(np.abs(measured - expected) <= 0.51 * step + 1e-5 * expected), (measured, expected, result.report)
