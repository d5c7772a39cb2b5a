"""``--preset NAME`` and ``--set KEY=VALUE``: the inference options of ``segment``, ``evaluate``,
``calibrate``, ``bench`` and the Slicer batch script, read from one table
(:class:`~SegAnyPETLib.inference.config.SessionConfig`)."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Tuple


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset`` and ``--set`` to ``parser``."""
    from ..inference.config import PRESETS, option_specs

    parser.add_argument("--preset", choices=tuple(PRESETS),
                        help="inference preset (default: the model's own: official for the published weights, "
                        "bundled for the bundled model; `seganypet models presets` lists them)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="an inference option on top of the preset, repeatable: "
                        f"{', '.join(spec.name for spec in option_specs())}")


def inference_options(args: argparse.Namespace) -> Tuple[Optional[str], Dict[str, Any]]:
    """(preset, overrides) from the parsed arguments, checked now (one clear error for a bad option)."""
    from ..inference.config import SessionConfig
    from ..options import parse_assignments

    overrides = parse_assignments(args.options)
    SessionConfig().replace(**overrides)  # unknown names and bad values fail before any work
    return args.preset, overrides
