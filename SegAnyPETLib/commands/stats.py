"""``seganypet stats``: per-segment SUV statistics of a label image, as CSV (and JSON)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Tuple

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


def _print_table(rows) -> None:
    header = f"{'segment':<32} {'voxels':>9} {'volume mL':>10} {'SUVmax':>8} {'SUVmean':>8} {'SUVpeak':>8} {'TLG g':>10}"
    print(header)
    for row in rows:
        print(
            f"{row.segment[:32]:<32} {row.voxel_count:>9d} {row.volume_ml:>10.2f} {row.suv_max:>8.3f} "
            f"{row.suv_mean:>8.3f} {row.suv_peak:>8.3f} {row.tlg:>10.2f}"
        )


CSV_SUFFIXES = (".csv", ".txt")


def _output_paths(args: argparse.Namespace) -> Tuple[Path, Optional[Path]]:
    """The CSV and JSON paths, each refused unless its extension is the format written there (so
    ``-o X.json --json`` cannot write the CSV and then replace it with the JSON)."""
    from ..errors import SegAnyPETError

    output = Path(args.output)
    if not output.name.lower().endswith(CSV_SUFFIXES):
        hint = "; for JSON use --json PATH" if output.name.lower().endswith(".json") else ""
        raise SegAnyPETError(f"-o {output}: stats writes CSV there, name it .csv{hint}")
    if args.json is None:
        return output, None
    json_path = Path(args.json) if args.json else output.with_suffix(".json")
    if not json_path.name.lower().endswith(".json"):
        raise SegAnyPETError(f"--json {json_path}: stats writes JSON there, name it .json")
    return output, json_path


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import SimpleITK as sitk

    from ..io import ensure_writable, read_image, write_text
    from ..labels import read_label_names
    from ..percist import reference_regions, reference_statistics
    from ..stats import SUVPEAK_DEFINITION, check_suv_factor, label_image_statistics, statistics_json, statistics_table

    output, json_path = _output_paths(args)
    inputs = [args.pet, args.seg] + ([args.labels] if args.labels else [])
    ensure_writable(output, args.overwrite, inputs)
    if json_path is not None:
        ensure_writable(json_path, args.overwrite, inputs)
    check_suv_factor(args.suv_factor)
    names = read_label_names(args.labels) if args.labels else None
    pet = read_image(args.pet, "PET")
    seg = read_image(args.seg, "segmentation")
    rows = label_image_statistics(pet, seg, names, args.suv_factor, pet_name=f"PET {args.pet}", seg_name=f"segmentation {args.seg}")
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
    write_text(output, statistics_table(rows), args.overwrite, inputs)
    print(f"wrote {output}")
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
        write_text(json_path, json.dumps(content, indent=2) + "\n", args.overwrite, inputs)
        print(f"wrote {json_path}")
    return 0
