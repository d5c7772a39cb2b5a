"""``seganypet stats``: per-segment SUV statistics of a label image, as CSV (and JSON)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

DESCRIPTION = """\
One CSV row per segment of a label image: voxels, volume [mL], SUVmin, SUVmax, SUVmean, SUVsd,
SUVpeak (PERCIST 1 cm3 sphere; the definition is in the last column), TLG [g] and the SUVmax
position. The PET must be in SUV (see `seganypet suv`), or pass --suv-factor to convert it.
The segmentation must be on the PET grid.
"""

EXAMPLE = """\
example:
  seganypet stats --pet suv.nii.gz --seg organs.nii.gz -o stats.csv --json --reference-regions
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="per-segment SUV statistics (SUVmax, SUVmean, SUVpeak, volume, TLG) as CSV",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pet", required=True, metavar="PET", help="SUV image (or activity image with --suv-factor)")
    parser.add_argument("--seg", required=True, metavar="SEG", help="label image on the PET grid (0 = background)")
    parser.add_argument(
        "--labels",
        metavar="JSON",
        help="names of the label values: an nnU-Net dataset.json ({'labels': {'liver': 1}}) or {'1': 'liver'}; "
        "default: the SegAnyPET label names",
    )
    parser.add_argument("--suv-factor", type=float, default=1.0, metavar="F", help="multiply the PET values by F first")
    parser.add_argument("-o", "--output", required=True, metavar="CSV", help="CSV file to write")
    parser.add_argument(
        "--json",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write JSON (default path: the CSV path with .json)",
    )
    parser.add_argument(
        "--reference-regions",
        action="store_true",
        help="add the PERCIST liver (3 cm sphere, right lobe) and blood pool (aorta) reference rows",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)


def read_label_names(path: str | os.PathLike) -> Dict[int, str]:
    """Label value -> name from an nnU-Net dataset.json (v2 ``name: value`` or v1 ``"value": name``)."""
    from ..errors import SegAnyPETError

    path = Path(path)
    if not path.is_file():
        raise SegAnyPETError(f"labels file {path} does not exist")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise SegAnyPETError(f"labels file {path} is not JSON ({error})") from None
    labels = content.get("labels", content) if isinstance(content, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise SegAnyPETError(f"labels file {path} has no 'labels' mapping")
    names: Dict[int, str] = {}
    for key, value in labels.items():
        if isinstance(value, int) and not isinstance(value, bool):  # v2: name -> value
            names[value] = str(key)
        elif isinstance(key, str) and key.strip().lstrip("-").isdigit() and isinstance(value, str):  # v1
            names[int(key)] = value
        else:
            raise SegAnyPETError(f"labels file {path}: entry {key!r}: {value!r} is neither name: value nor 'value': name")
    names.pop(0, None)
    return names


def _print_table(rows) -> None:
    header = f"{'segment':<32} {'voxels':>9} {'volume mL':>10} {'SUVmax':>8} {'SUVmean':>8} {'SUVpeak':>8} {'TLG g':>10}"
    print(header)
    for row in rows:
        print(
            f"{row.segment[:32]:<32} {row.voxel_count:>9d} {row.volume_ml:>10.2f} {row.suv_max:>8.3f} "
            f"{row.suv_mean:>8.3f} {row.suv_peak:>8.3f} {row.tlg:>10.2f}"
        )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import SimpleITK as sitk

    from ..io import ensure_writable, read_image, write_text
    from ..stats import (
        SUVPEAK_DEFINITION,
        label_image_statistics,
        reference_regions,
        reference_statistics,
        statistics_json,
        statistics_table,
    )

    json_path: Optional[Path] = None
    if args.json is not None:
        json_path = Path(args.json) if args.json else Path(args.output).with_suffix(".json")
    ensure_writable(args.output, args.overwrite)
    if json_path is not None:
        ensure_writable(json_path, args.overwrite)
    names = read_label_names(args.labels) if args.labels else None
    pet = read_image(args.pet, "PET")
    seg = read_image(args.seg, "segmentation")
    rows = label_image_statistics(pet, seg, names, args.suv_factor)
    references: List = []
    if args.reference_regions:
        labels = sitk.GetArrayViewFromImage(seg)
        masks = {row.segment: labels == row.label for row in rows if row.segment in ("liver", "aorta")}
        references = reference_regions(masks, pet.GetSpacing(), pet.GetOrigin(), pet.GetDirection())
        suv = sitk.GetArrayViewFromImage(pet)
        rows += reference_statistics(suv, references, pet.GetSpacing(), pet.GetOrigin(), pet.GetDirection(), args.suv_factor)
    if not rows:
        print(f"{args.seg}: no segments (all voxels are 0)")
    else:
        _print_table(rows)
    print(SUVPEAK_DEFINITION)
    write_text(args.output, statistics_table(rows), args.overwrite)
    print(f"wrote {args.output}")
    if json_path is not None:
        content = statistics_json(rows)
        content["pet"], content["segmentation"], content["suv_factor"] = str(args.pet), str(args.seg), args.suv_factor
        content["reference_regions"] = [
            {
                "name": region.name,
                "description": region.description,
                "centre_ijk": list(region.centre_ijk),
                "centre_lps_mm": list(region.centre_lps),
                "voxels": int(np.count_nonzero(region.mask)),
                "warnings": region.warnings,
            }
            for region in references
        ]
        write_text(json_path, json.dumps(content, indent=2) + "\n", args.overwrite)
        print(f"wrote {json_path}")
    return 0
