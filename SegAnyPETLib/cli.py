"""The ``seganypet`` command: one sub-command per module in :mod:`SegAnyPETLib.commands`."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from . import __version__
from .errors import SegAnyPETError

# Each name is a module SegAnyPETLib.commands.<name> with ``add_parser(subparsers)`` that registers
# the sub-command and sets ``func(args) -> int`` on it. Modules keep heavy imports inside ``func``.
COMMANDS = ("demo", "segment", "models", "bench", "phantom", "suv", "stats", "train", "evaluate", "calibrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seganypet",
        description="SegAnyPET: promptable segmentation and quantification of PET images.",
    )
    parser.add_argument("--version", action="version", version=f"seganypet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except SegAnyPETError as error:
        print(f"seganypet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seganypet {args.command}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
