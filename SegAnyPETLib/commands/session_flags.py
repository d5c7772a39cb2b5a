"""The session switches shared by ``seganypet segment``, ``seganypet evaluate`` and the Slicer batch script."""
from __future__ import annotations

import argparse
from typing import Dict

# (flag, InteractiveSession keyword, the keyword's value when the flag is given, help)
SWITCHES = (
    ("--mirror", "mirror", True, "average over the 8 mirrorings of each crop (test-time mirroring: slower, smoother masks)"),
    ("--all-islands", "clicked_islands_only", False, "keep every part of the masks, also those no positive point touches"),
    ("--no-interior-crop", "interior_crop", False,
     "one crop per object at its first point, without the crop centred inside the first mask"),
    ("--no-part-check", "part_check", False,
     "keep every part of the first mask, without clicking its parts to find another object's"),
    ("--no-contrast-edge", "contrast_edge", False,
     "keep the network's edge, without moving it to 40 %% of the local PET contrast"),
)


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """Add the switches of :data:`SWITCHES` to ``parser``."""
    for flag, _, _, text in SWITCHES:
        parser.add_argument(flag, action="store_true", help=text)


def session_options(args: argparse.Namespace) -> Dict[str, bool]:
    """The :class:`~SegAnyPETLib.session.InteractiveSession` keywords the parsed switches set."""
    return {key: given if getattr(args, flag[2:].replace("-", "_")) else not given for flag, key, given, _ in SWITCHES}

