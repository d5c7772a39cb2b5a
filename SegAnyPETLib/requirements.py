"""The Python packages SegAnyPETLib needs, with their versions, from one source, and which are unmet.

The source is the project's own declaration, ``[project] dependencies`` of ``pyproject.toml``:
read from that file where it sits next to this code (the repository, and the Slicer extension,
which installs it beside the library), else from the installed package's metadata
(``importlib.metadata.requires("seganypet")``, built from the same file). The Slicer module checks
these before the network is needed; nothing here installs anything.
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from .errors import SegAnyPETError

DISTRIBUTION = "seganypet"
_LIBRARY = Path(__file__).resolve().parent
_OPERATORS = ("~=", "==", "!=", "<=", ">=", "<", ">")


@dataclass(frozen=True)
class Requirement:
    """One requirement: distribution name and version clauses (``[(">=", "2.1")]``)."""

    name: str
    clauses: Tuple[Tuple[str, str], ...] = ()

    @property
    def specifier(self) -> str:
        return ",".join(op + version for op, version in self.clauses)

    @property
    def text(self) -> str:
        """As pip takes it: ``torch>=2.1``."""
        return self.name + self.specifier

    def satisfiedBy(self, version: Optional[str]) -> bool:
        """Whether an installed ``version`` (None: not installed) meets every clause."""
        if version is None:
            return False
        have = _release(version)
        for op, wanted in self.clauses:
            want = _release(wanted)
            width = max(len(have), len(want))
            a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
            ok = {"==": a == b, "!=": a != b, "<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b,
                  "~=": a >= b and a[: len(want) - 1] == b[: len(want) - 1]}[op]
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Status:
    """A requirement and the installed version (None: not installed)."""

    requirement: Requirement
    installed: Optional[str]

    @property
    def met(self) -> bool:
        return self.requirement.satisfiedBy(self.installed)

    def describe(self) -> str:
        """``scipy (not installed)`` or ``huggingface_hub 0.20.3 (needs >=1.1)``."""
        if self.installed is None:
            return f"{self.requirement.name} (not installed)"
        return f"{self.requirement.name} {self.installed} (needs {self.requirement.specifier})"


def parseRequirement(text: str) -> Optional[Requirement]:
    """A requirement from a PEP 508 line; None for one that applies only with an extra or elsewhere."""
    text, _, marker = text.partition(";")
    if marker.strip() and ("extra" in marker or not _markerHolds(marker)):
        return None
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*\(?([^)]*)\)?\s*$", text)
    if match is None:
        raise SegAnyPETError(f"cannot read the requirement {text!r}")
    clauses = []
    for clause in filter(None, (c.strip() for c in match.group(3).split(","))):
        op = next((op for op in _OPERATORS if clause.startswith(op)), None)
        if op is None or not re.fullmatch(r"\s*\d[\w.+*!-]*", clause[len(op):]):
            raise SegAnyPETError(f"cannot read the version clause {clause!r} of requirement {text!r}")
        clauses.append((op, clause[len(op):].strip()))
    return Requirement(match.group(1), tuple(clauses))


def requirements(source: Optional[Path] = None) -> List[Requirement]:
    """SegAnyPETLib's requirements; see the module docstring (``source``: a pyproject.toml to read instead)."""
    for path in ([source] if source else [_LIBRARY / "pyproject.toml", _LIBRARY.parent / "pyproject.toml"]):
        lines = _pyprojectDependencies(path)
        if lines is not None:
            break
    else:
        try:
            lines = importlib.metadata.requires(DISTRIBUTION) or []
        except importlib.metadata.PackageNotFoundError:
            raise SegAnyPETError("SegAnyPET's requirements are unknown: neither pyproject.toml nor the seganypet "
                                 "package metadata was found; reinstall SegAnyPET") from None
    return [r for r in map(parseRequirement, lines) if r is not None]


def installedVersion(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check(names: Optional[Iterable[str]] = None) -> List[Status]:
    """The status of every requirement (or of those named), in declaration order."""
    wanted = None if names is None else {n.lower() for n in names}
    return [Status(r, installedVersion(r.name)) for r in requirements() if wanted is None or r.name.lower() in wanted]


def unmet(statuses: Sequence[Status]) -> List[Status]:
    return [status for status in statuses if not status.met]


# ----------------------------------------------------------------------------------------- helpers
def _release(version: str) -> Tuple[int, ...]:
    """The numeric release of a version: ``2.4.1+cu121`` -> (2, 4, 1), ``1.1.0rc1`` -> (1, 1, 0)."""
    numbers = []
    for part in version.split("+")[0].split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() < len(part):
            break
    return tuple(numbers)


def _markerHolds(marker: str) -> bool:
    """Environment markers beyond extras (python_version ...): evaluated with packaging when present."""
    try:
        from packaging.markers import Marker
    except ImportError:
        return True
    return Marker(marker.strip()).evaluate()


def _pyprojectDependencies(path: Path) -> Optional[List[str]]:
    """``[project] dependencies`` of a pyproject.toml of this distribution, or None if it is not one."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the two keys, read plainly
        name = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M)
        block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.M | re.S)
        if name is None or name.group(1) != DISTRIBUTION or block is None:
            return None
        return re.findall(r'"([^"]+)"', block.group(1))
    project = tomllib.loads(text).get("project", {})
    if project.get("name") != DISTRIBUTION:
        return None
    return list(project.get("dependencies", []))
