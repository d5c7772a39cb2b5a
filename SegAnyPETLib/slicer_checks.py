"""What the Slicer module tells the user, decided without Qt: the Slicer version gate, the message
for an error, and which Python packages to install how.

The module's widget only shows these; the tests run them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from .errors import Cancelled, SegAnyPETError
from .requirements import Status

MINIMUM_SLICER = (5, 10)  # vtkSlicerSegmentEditorLogic, used to write segments, exists from 5.10
SLICER_NUMPY = "numpy"  # part of Slicer: never installed by the module
TORCH = "torch"  # installed through the PyTorch extension (PyTorchUtils), which picks the build for the GPU


def slicerVersionProblem(major: int, minor: int, hasSegmentEditorLogic: bool = True) -> Optional[str]:
    """Why this Slicer cannot run the module (too old), or None."""
    if (major, minor) < MINIMUM_SLICER or not hasSegmentEditorLogic:
        return (f"SegAnyPET needs 3D Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or later (it writes segments with "
                f"the segment editor logic of Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]}); this is Slicer "
                f"{major}.{minor}. Install a newer Slicer from download.slicer.org.")
    return None


@dataclass
class UserMessage:
    """One message for the user: ``text`` (status line and dialog), ``details`` for the dialog's
    details (unexpected errors only), and whether a dialog is needed at all."""

    text: str
    details: Optional[str] = None
    dialog: bool = True


def userMessage(error: BaseException, action: str = "") -> UserMessage:
    """The one message for ``error`` (never a traceback): a :class:`SegAnyPETError` says what to do,
    a cancel is only noted, anything else is named with its type in the details."""
    prefix = f"{action}: " if action else ""
    if isinstance(error, Cancelled) or type(error).__name__ == "Cancelled":
        return UserMessage("Cancelled: the points placed since the last result were removed.", dialog=False)
    if isinstance(error, SegAnyPETError):
        text = str(error)
        return UserMessage(prefix + text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."))
    return UserMessage(f"{prefix}unexpected error ({type(error).__name__}).", f"{type(error).__name__}: {error}")


@dataclass
class InstallPlan:
    """How to meet the unmet requirements: PyTorch through the PyTorch extension (with this version
    specifier), the rest with pip; ``blocking`` ones (Slicer's numpy) the module cannot install."""

    torch: Optional[str] = None  # version specifier for PyTorchUtils, e.g. ">=2.1"
    pip: List[str] = field(default_factory=list)
    blocking: List[str] = field(default_factory=list)
    described: List[str] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        return bool(self.torch is not None or self.pip or self.blocking)


def installPlan(statuses: Sequence[Status]) -> InstallPlan:
    """The plan for the unmet ones among ``statuses`` (:func:`SegAnyPETLib.requirements.check`)."""
    plan = InstallPlan()
    for status in statuses:
        if status.met:
            continue
        name = status.requirement.name.lower()
        plan.described.append(status.describe())
        if name == TORCH:
            plan.torch = status.requirement.specifier or ""
        elif name == SLICER_NUMPY:
            plan.blocking.append(f"Slicer's numpy is {status.installed or 'missing'}, SegAnyPET needs "
                                 f"{status.requirement.specifier}: use a newer Slicer")
        else:
            plan.pip.append(status.requirement.text)
    return plan


def installFailure(packages: Sequence[str], error: BaseException) -> Tuple[str, str]:
    """The message and details when pip could not install ``packages`` (Slicer prints pip's output
    to the Python console as it runs; its exception holds only the exit status)."""
    output = getattr(error, "output", None)
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    details = output.strip() if isinstance(output, str) and output.strip() else f"{type(error).__name__}: {error}"
    text = (f"Installing {', '.join(packages)} failed; pip's messages are in the Python console. Check the network "
            "connection, or install the packages with Slicer's Python (PythonSlicer -m pip install ...), and try again.")
    return text, details


TEXT_ENTRY_CLASSES = ("QLineEdit", "QAbstractSpinBox", "QTextEdit", "QPlainTextEdit", "QKeySequenceEdit")


def shortcutsAllowed(focusClasses: Sequence[str], editableComboBox: bool = False) -> bool:
    """Whether the module's keyboard shortcuts may act, given the focused widget's class and its base
    classes: not while a text field has the focus (a line edit, spin box, text edit, the Python
    console, an editable combo box), so P, N, Return or Ctrl+Backspace typed there go to the field."""
    return not editableComboBox and not any(name in TEXT_ENTRY_CLASSES for name in focusClasses)
