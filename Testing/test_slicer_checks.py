"""What the Slicer module decides without Qt (SegAnyPETLib.slicer_checks, SegAnyPETLib.requirements):
the version gate, one message per error, the requirements from one source with their versions,
how unmet ones are installed, and when the keyboard shortcuts may act."""
from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from SegAnyPETLib import requirements
from SegAnyPETLib.errors import Cancelled, SegAnyPETError
from SegAnyPETLib.requirements import Requirement, Status, parseRequirement
from SegAnyPETLib.slicer_checks import (
    installFailure,
    installPlan,
    shortcutsAllowed,
    slicerVersionProblem,
    userMessage,
)

REPO = Path(__file__).resolve().parents[1]


def test_slicer_older_than_5_10_is_refused_with_a_clear_message():
    assert "needs 3D Slicer 5.10 or later" in slicerVersionProblem(5, 8)
    assert "this is Slicer 5.8" in slicerVersionProblem(5, 8)
    assert slicerVersionProblem(5, 10) is None and slicerVersionProblem(6, 0) is None
    assert slicerVersionProblem(5, 10, hasSegmentEditorLogic=False) is not None


def test_one_message_per_error_without_a_traceback():
    bad = userMessage(SegAnyPETError("click [1, 2, 3] (ras) is outside the volume"), "Prediction failed")
    assert bad.text == "Prediction failed: Click [1, 2, 3] (ras) is outside the volume." and bad.details is None
    assert bad.dialog
    cancelled = userMessage(Cancelled("encoder cancelled"))
    assert not cancelled.dialog and cancelled.text.startswith("Cancelled")
    bug = userMessage(KeyError("x"), "Undo failed")
    assert bug.text == "Undo failed: unexpected error (KeyError)." and bug.details == "KeyError: 'x'"
    assert "Traceback" not in bug.text + bug.details


def test_requirements_are_the_pyproject_dependencies_with_versions():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    found = requirements.requirements()
    assert [r.text for r in found] == [d.replace(" ", "") for d in declared]
    torch = next(r for r in found if r.name == "torch")
    assert torch.clauses and torch.clauses[0][0] == ">="
    hub = next(r for r in found if r.name == "huggingface_hub")
    assert not hub.satisfiedBy("0.20.3") and hub.satisfiedBy("1.1.0")  # checkpoints.py needs tqdm_class (1.1)


def test_without_pyproject_the_package_metadata_is_read(monkeypatch, tmp_path):
    import importlib.metadata

    try:
        importlib.metadata.requires("seganypet")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the test environment installs seganypet (pip install -e .)")
    monkeypatch.setattr(requirements, "_LIBRARY", tmp_path / "SegAnyPETLib")  # no pyproject.toml next to the code
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [r.name for r in requirements.requirements()] == [parseRequirement(d).name for d in declared]


def test_requirement_parsing_and_versions():
    assert parseRequirement("torch>=2.1") == Requirement("torch", ((">=", "2.1"),))
    assert parseRequirement("pytest>=7; extra == 'test'") is None  # extras are not the library's
    assert parseRequirement("numpy >=1.23, <3").clauses == ((">=", "1.23"), ("<", "3"))
    torch = parseRequirement("torch>=2.1")
    assert torch.satisfiedBy("2.4.1+cu121") and torch.satisfiedBy("2.1") and not torch.satisfiedBy("2.0.1")
    assert not torch.satisfiedBy(None)
    assert parseRequirement("scipy~=1.10").satisfiedBy("1.13.0") and not parseRequirement("scipy~=1.10").satisfiedBy("2.0")
    with pytest.raises(SegAnyPETError, match="cannot read"):
        parseRequirement("scipy>>1")


def test_the_installed_packages_meet_the_requirements():
    statuses = requirements.check()
    assert statuses and all(status.met for status in statuses), [s.describe() for s in statuses if not s.met]


def test_install_plan_torch_through_its_extension_numpy_never():
    statuses = [Status(parseRequirement("torch>=2.1"), None), Status(parseRequirement("numpy>=1.23"), "1.20.0"),
                Status(parseRequirement("scipy>=1.10"), "1.9.0"), Status(parseRequirement("tqdm>=4.64"), "4.66.0"),
                Status(parseRequirement("huggingface_hub>=1.1"), None)]
    plan = installPlan(statuses)
    assert plan.torch == ">=2.1"  # the PyTorch extension picks the build for the GPU
    assert plan.pip == ["scipy>=1.10", "huggingface_hub>=1.1"]
    assert plan.blocking and "numpy is 1.20.0" in plan.blocking[0]  # part of Slicer: not pip-installed
    assert plan.described == ["torch (not installed)", "numpy 1.20.0 (needs >=1.23)", "scipy 1.9.0 (needs >=1.10)",
                              "huggingface_hub (not installed)"]
    assert not installPlan([Status(parseRequirement("tqdm>=4.64"), "4.66.0")]).needed


def test_a_failed_pip_install_is_one_clear_message():
    error = subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install", "scipy>=1.10"])
    text, details = installFailure(["scipy>=1.10"], error)
    assert text.startswith("Installing scipy>=1.10 failed") and "Python console" in text
    assert "returned non-zero exit status 1" in details


@pytest.mark.parametrize("classes, editable, allowed", [
    (["qMRMLSliceView", "ctkVTKSliceView", "QWidget"], False, True),  # a slice view has the focus
    (["QPushButton", "QAbstractButton", "QWidget"], False, True),
    (["QLineEdit", "QWidget"], False, False),  # e.g. the model file
    (["ctkDoubleSpinBox", "QWidget"], False, True),  # the ctk wrapper: its inner QDoubleSpinBox takes the focus
    (["QDoubleSpinBox", "QAbstractSpinBox", "QWidget"], False, False),
    (["ctkConsoleTextEdit", "QTextEdit", "QAbstractScrollArea"], False, False),  # the Python console
    (["QComboBox", "QWidget"], True, False),  # the editable "New segment" box: Return stays there
    (["QComboBox", "QWidget"], False, True),
])
def test_shortcuts_are_off_while_a_text_field_has_the_focus(classes, editable, allowed):
    assert shortcutsAllowed(classes, editable) is allowed
