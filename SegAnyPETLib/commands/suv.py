"""``seganypet suv``: convert a PET DICOM series to an SUV image (NIfTI, NRRD, ...) on the DICOM grid."""
from __future__ import annotations

import argparse
import json
from typing import Any, List

DESCRIPTION = """\
Convert a PET DICOM series to SUV the way the QIBA vendor-neutral pseudo-code and the IBSI/OncoRay
SUV manual describe (Units BQML, CNTS with the Philips factors, GML, CM2ML; DecayCorrection
START, ADMIN, NONE). Prints the factor, the SUV type, the formula and every DICOM tag it used.
Values missing from the header (or wrong there) can be given with --weight, --height, --sex,
--dose, --injection-time and --half-life.
"""

EXAMPLE = """\
example:
  seganypet suv ../shared/data/suv_dro/DRO/DRO_0_0/PT -o /tmp/suv.nii.gz --json /tmp/suv.json
"""


# The names of SegAnyPETLib.body_size.SUV_TYPES, here so that building the parser imports nothing heavy.
SUV_TYPE_HELP = {
    "bw": "body weight (default)",
    "lbm": "lean body mass, James 128 (SUL, DICOM LBMJAMES128)",
    "lbm-janma": "lean body mass, Janmahasatian (SUL, DICOM LBMJANMA)",
    "bsa": "body surface area, Du Bois",
    "ibw": "ideal body weight, Sugawara",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "suv",
        help="convert a PET DICOM series to SUV",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dicom_dir", metavar="DICOM_DIR", help="folder with the PET series (sub-folders are searched)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="SUV image to write (.nii.gz, .nrrd, .mha)")
    parser.add_argument(
        "--type",
        dest="suv_type",
        choices=tuple(SUV_TYPE_HELP),
        default="bw",
        help="SUV normalisation: " + "; ".join(f"{name}: {text}" for name, text in SUV_TYPE_HELP.items()),
    )
    parser.add_argument("--json", metavar="REPORT", help="also write the full report (factor, tags, warnings) as JSON")
    parser.add_argument("--weight", type=float, metavar="KG", help="patient weight in kg (instead of PatientWeight)")
    parser.add_argument("--height", type=float, metavar="CM", help="patient height in cm (instead of PatientSize)")
    parser.add_argument("--sex", type=str.upper, choices=("M", "F", "O"), help="patient sex (instead of PatientSex)")
    parser.add_argument("--dose", type=float, metavar="MBQ", help="injected activity in MBq (instead of RadionuclideTotalDose)")
    parser.add_argument(
        "--injection-time",
        metavar="TIME",
        help="injection as ISO date-time (2025-01-01T10:00:00) or HH:MM[:SS] on the scan day",
    )
    parser.add_argument("--half-life", type=float, metavar="S", help="half-life in s (instead of RadionuclideHalfLife)")
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to use when the folder holds several PET series")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)


_OVERRIDES = {
    "weight_kg": "--weight [kg]",
    "height_cm": "--height [cm]",
    "sex": "--sex",
    "dose_bq": "--dose [Bq]",
    "injection_time": "--injection-time",
    "half_life_s": "--half-life [s]",
}


def _compact(value: Any) -> str:
    """One line for a report value; per-slice lists become their range."""
    if isinstance(value, list):
        distinct = list(dict.fromkeys(value))
        if all(isinstance(v, (int, float)) for v in distinct):
            return f"{min(distinct):.6g} to {max(distinct):.6g} ({len(value)} slices)"
        return f"{distinct[0]} to {distinct[-1]} ({len(distinct)} values over {len(value)} slices)"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def report_lines(report: dict) -> List[str]:
    """The report as aligned text lines, as ``seganypet suv`` prints it."""
    rows = [
        ("SUV type", f"{report['suv_type']} = {report['suv_type_name']} [{report['suv_unit']}]"),
        ("SUV factor", _compact(report["factor"]) + "  (x rescaled pixel value)"),
        ("formula", report["formula"]),
    ]
    labels = {
        "units": "Units",
        "stored_suv_type": "stored SUV type",
        "decay_correction": "decay correction",
        "dose_bq": "dose [Bq]",
        "half_life_s": "half-life [s]",
        "injection_time": "injection",
        "injection_time_source": "injection from",
        "reference_time": "reference time",
        "reference_time_source": "reference from",
        "decay_time_s": "decay time [s]",
        "decayed_dose_bq": "decayed dose [Bq]",
    }
    rows += [(label, _compact(report[key])) for key, label in labels.items() if key in report]
    rows += [(f"body size {key[10:]}", _compact(value)) for key, value in report.items() if key.startswith("body_size_")]
    rows += [(f"given {_OVERRIDES[key]}", _compact(value)) for key, value in report["overrides"].items()]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {text}" for label, text in rows]
    lines.append("DICOM tags used:")
    tag_width = max((len(tag) for tag in report["tags"]), default=0)
    lines += [f"  {tag:<{tag_width}}  {_compact(value)}" for tag, value in report["tags"].items()]
    lines += [f"warning: {warning}" for warning in report["warnings"]]
    return lines


def run(args: argparse.Namespace) -> int:
    import math

    from ..errors import SegAnyPETError
    from ..io import ensure_writable, write_image, write_text
    from ..suv import dicom_to_suv

    for option in ("weight", "height", "dose", "half_life"):
        value = getattr(args, option)
        if value is not None and not math.isfinite(value):
            raise SegAnyPETError(f"--{option.replace('_', '-')} must be a finite number, got {value}")
    inputs = [args.dicom_dir]
    ensure_writable(args.output, args.overwrite, inputs, image=True)
    if args.json:
        if not args.json.lower().endswith(".json"):
            raise SegAnyPETError(f"--json {args.json}: the report is JSON, name it .json")
        ensure_writable(args.json, args.overwrite, inputs)
    result = dicom_to_suv(
        args.dicom_dir,
        args.suv_type,
        weight_kg=args.weight,
        height_cm=args.height,
        sex=args.sex,
        dose_bq=None if args.dose is None else args.dose * 1e6,
        injection_time=args.injection_time,
        half_life_s=args.half_life,
        series_uid=args.series,
    )
    print("\n".join(report_lines(result.report)))
    write_image(result.image, args.output, args.overwrite, inputs)
    size = " x ".join(str(v) for v in result.image.GetSize())
    spacing = " x ".join(f"{v:g}" for v in result.image.GetSpacing())
    print(f"wrote {args.output} ({size} voxels of {spacing} mm)")
    if args.json:
        write_text(args.json, json.dumps(result.report, indent=2) + "\n", args.overwrite, inputs)
        print(f"wrote {args.json}")
    return 0
