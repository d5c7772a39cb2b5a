"""The Slicer module without Slicer (desktop Slicer is not installable here, so the widget is checked
statically): its .ui file holds every widget the code uses, the module compiles, its shortcuts and
slots exist, the version gate, the parameter node, the deferred place-mode check, one message per
error, one source of requirements, and the extension's CMake files and icons are complete. What the
widget decides is decided in Qt-free code that Testing/test_slicer_checks.py runs."""
from __future__ import annotations

import ast
import py_compile
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "SegAnyPET" / "SegAnyPET.py"
UI_FILE = REPO / "SegAnyPET" / "Resources" / "UI" / "SegAnyPET.ui"


@pytest.fixture(scope="module")
def ui():
    return ElementTree.parse(UI_FILE).getroot()


@pytest.fixture(scope="module")
def source():
    return MODULE.read_text()


@pytest.fixture(scope="module")
def tree(source):
    return ast.parse(source)


def widget_names(ui) -> dict:
    return {widget.get("name"): widget.get("class") for widget in ui.iter("widget")}


def module_constant(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not defined in {MODULE.name}")


def widget_class(tree) -> ast.ClassDef:
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SegAnyPETWidget")


def test_every_widget_the_code_uses_is_in_the_ui_file(ui, source):
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    names = widget_names(ui)
    assert used, "the widget code uses no self.ui.<name>"
    assert sorted(used - set(names)) == []
    # and the widgets with a role in the code are of the expected kind
    assert names["inputVolumeSelector"] == "qMRMLNodeComboBox"
    assert names["segmentSelector"] == "qMRMLSegmentSelectorWidget"
    assert names["positivePlaceWidget"] == names["negativePlaceWidget"] == "qSlicerMarkupsPlaceWidget"
    assert names["statisticsTableView"] == "qMRMLTableView"
    assert names["progressBar"] == "QProgressBar"
    assert names["overwriteComboBox"] == "QComboBox"


def test_the_ui_file_is_a_complete_designer_file(ui):
    assert ui.tag == "ui" and ui.find("class").text == "SegAnyPET"
    root = ui.find("widget")
    assert root.get("class") == "qMRMLWidget" and root.get("name") == "SegAnyPET"
    names = widget_names(ui)
    assert len(names) == len(list(ui.iter("widget"))), "widget names must be unique"
    declared = {custom.find("class").text: custom for custom in ui.iter("customwidget")}
    for name, cls in names.items():
        if not cls.startswith("Q"):
            assert cls in declared, f"{name}: custom class {cls} has no <customwidget> entry"
            assert declared[cls].find("header").text == f"{cls}.h"
    # every MRML-aware widget gets the scene through a connection
    receivers = {c.find("receiver").text for c in ui.iter("connection") if c.find("slot").text == "setMRMLScene(vtkMRMLScene*)"}
    mrml = {n for n, c in names.items() if c in ("qMRMLNodeComboBox", "qMRMLSegmentSelectorWidget", "qSlicerMarkupsPlaceWidget", "qMRMLTableView")}
    assert mrml and mrml <= receivers
    assert receivers <= set(names)


def test_the_module_compiles_without_qt(tmp_path):
    py_compile.compile(str(MODULE), cfile=str(tmp_path / "module.pyc"), doraise=True)
    import sys

    assert "qt" not in sys.modules


def method(tree, name) -> ast.FunctionDef:
    return next(node for node in widget_class(tree).body if isinstance(node, ast.FunctionDef) and node.name == name)


def calls(node) -> set:
    """Names of the functions and methods called in ``node``."""
    found = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            found.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return found


def test_shortcuts_and_connected_slots_exist(tree, source):
    methods = {node.name for node in widget_class(tree).body if isinstance(node, ast.FunctionDef)}
    shortcuts = module_constant(tree, "SHORTCUTS")
    assert {key for key, _ in shortcuts} >= {"P", "N", "Ctrl+Z", "Ctrl+Backspace", "Return"}
    assert {method for _, method in shortcuts} <= methods
    widget_source = ast.get_source_segment(source, widget_class(tree))
    connected = set(re.findall(r'connect\("[^"]+", self\.(\w+)\)', widget_source))
    assert connected and connected <= methods


def test_shortcuts_leave_text_fields_alone(tree, source):
    # installed with a focus watcher that turns them off while a text field has the focus
    install = ast.get_source_segment(source, method(tree, "_installShortcuts"))
    assert 'connect("focusChanged(QWidget*,QWidget*)", self._onFocusChanged)' in install
    assert "shortcutsAllowed" in calls(method(tree, "_onFocusChanged"))
    assert "focusChanged(QWidget*,QWidget*)" in ast.get_source_segment(source, method(tree, "_removeShortcuts"))


def test_the_version_gate_comes_first_in_setup(tree):
    setup = method(tree, "setup")
    order = [c.func.attr for c in ast.walk(setup) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)]
    assert "slicerVersionProblem" in order and "loadUI" in order
    assert order.index("slicerVersionProblem") < order.index("loadUI")
    assert any(isinstance(node, ast.Return) for node in ast.walk(setup))  # and stops there


def test_no_error_display_that_reraises(source):
    assert "tryWithErrorDisplay" not in source  # it shows a dialog and raises again: a second dialog, a traceback
    assert "userMessage" in source


def test_place_mode_check_runs_after_the_place_widget_signal(tree):
    handler = method(tree, "_onPlaceModeChanged")
    assert "singleShot" in calls(handler)
    assert not calls(handler) & {"_readyToClick", "ensureDependencies", "errorDisplay", "confirmOkCancelDisplay"}
    assert "_readyToClick" in calls(method(tree, "_checkPlaceMode"))
    assert "setPlaceModeEnabled" in calls(method(tree, "_checkPlaceMode"))  # place mode and its button follow


def test_parameter_node_holds_what_a_scene_reopens_with(tree, source):
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SegAnyPETParameterNode")
    assert any(getattr(d, "id", None) == "parameterNodeWrapper" for d in wrapper.decorator_list)
    fields = {node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)}
    assert {"inputVolume", "model", "modelFile", "device", "preset", "options", "targetSegmentation",
            "targetSegmentId", "lesion", "overwriteMode"} <= fields
    assert "SegAnyPETParameterNode(super().getParameterNode())" in source
    # the remembered device is written only when the user changes the device
    assert '_remember("device"' in ast.get_source_segment(source, method(tree, "onDeviceChanged"))
    assert source.count('_remember("device"') == 1


def test_inference_options_come_from_the_library_table(ui, tree, source):
    """A preset combo box and an Advanced section whose controls are built at run time from the
    options of SessionConfig: no option has a widget of its own in the .ui file or a setter."""
    from SegAnyPETLib.inference.config import option_specs
    from SegAnyPETLib.slicer_options import CONTROL_KINDS

    names = widget_names(ui)
    assert names["presetComboBox"] == "QComboBox" and names["advancedCollapsibleButton"] == "ctkCollapsibleButton"
    advanced = next(w for w in ui.iter("widget") if w.get("name") == "advancedCollapsibleButton")
    assert advanced.find("layout").get("class") == "QFormLayout"  # the rows the widget adds go here
    assert any(p.get("name") == "collapsed" and p.find("bool").text == "true" for p in advanced.findall("property"))
    assert [n for n, c in names.items() if c == "QCheckBox"] == ["lesionCheckBox"]  # lesion is per segment
    text = UI_FILE.read_text() + source
    for spec in option_specs():  # no option is spelled out in the widget or the .ui file
        camel = spec.name.split("_")[0] + "".join(w.capitalize() for w in spec.name.split("_")[1:])
        assert camel + "CheckBox" not in text and f'"{spec.name}"' not in source, spec.name
    for legacy in ("OPTION_SETTERS", "setMirror", "setInteriorCrop", "setPartCheck", "setClickedIslandsOnly",
                   "setContrastEdge", "onOptionToggled"):
        assert legacy not in source, legacy
    # one Qt control per kind of control the library names, each with the signal the code connects
    widgets = module_constant(tree, "OPTION_WIDGETS")
    assert set(widgets) == set(CONTROL_KINDS)
    assert all(cls.startswith("Q") and signal.endswith(")") for cls, signal in widgets.values())
    assert {"optionControls", "presetItems", "addRow", "_createOptionWidget"} <= calls(method(tree, "_setUpOptions"))
    create = ast.get_source_segment(source, method(tree, "_createOptionWidget"))
    assert "OPTION_WIDGETS[control.kind]" in create and "connect(signal, self.onAdvancedOptionChanged)" in create
    # the widget forwards: the library turns values into overrides and back, and the logic checks them
    assert "setControlValues" in calls(method(tree, "onAdvancedOptionChanged"))
    assert "controlValues" in calls(method(tree, "_refreshOptions"))
    assert "choosePreset" in calls(method(tree, "onPresetChanged"))
    assert "setOptions" in calls(method(tree, "_applyOptions"))
    assert "_applyOptions" in calls(method(tree, "_applyParameterNode"))
    assert "baseConfig" in calls(method(tree, "_optionsBase"))
    # the preset and the overrides are what the parameter node holds and what a new scene starts from
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SegAnyPETParameterNode")
    fields = {node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)}
    assert not fields & {"mirror", "clickedIslandsOnly", "interiorCrop", "partCheck", "contrastEdge"}
    remembered = module_constant(tree, "REMEMBERED")
    assert remembered["preset"] == "" and remembered["options"] == "{}"
    assert set(remembered) <= fields


def test_requirements_come_from_one_source(tree, source):
    names = {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
             if isinstance(target, ast.Name)}
    assert not names & {"PYTHON_REQUIREMENTS", "TORCH_REQUIREMENT"}  # no second list in the widget
    assert "requirements.check()" in source and "installPlan" in source and "installFailure" in source


def test_model_choices_are_registry_models(tree):
    from SegAnyPETLib.checkpoints import REGISTRY

    choices = [name for name, _ in module_constant(tree, "MODEL_CHOICES")]
    assert choices == list(REGISTRY)


def test_extension_cmake_files_and_icons():
    top = (REPO / "CMakeLists.txt").read_text()
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf'set\({variable} "[^"]+"\)', top), variable
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in top and 'set(EXTENSION_DEPENDS "PyTorch")' in top
    assert "add_subdirectory(SegAnyPET)" in top
    module = (REPO / "SegAnyPET" / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule(" in module and "WITH_GENERIC_TESTS" in module
    assert "SegAnyPETLib/*.py" in module and "Resources/Models/seganypet_demo_tiny.pt" in module
    # the batch script and the requirements are installed with the extension
    assert "Scripts/batch_evaluate.py" in module and "SegAnyPETScripts/batch_evaluate.py)" in module
    assert "pyproject.toml ${SEGANYPET_MODULE_BUILD_DIR}/SegAnyPETLib/pyproject.toml" in module
    screenshot = re.search(r'set\(EXTENSION_SCREENSHOTURLS "[^"]*/main/([^"]+)"\)', top).group(1)
    assert (REPO / screenshot).is_file() and screenshot == "docs/images/slicer_screenshot.png"
    resources = re.search(r"set\(MODULE_PYTHON_RESOURCES(.*?)\)", module, re.S).group(1).split()
    for resource in resources:
        assert (REPO / "SegAnyPET" / resource.replace("${MODULE_NAME}", "SegAnyPET")).is_file(), resource

    from PIL import Image

    for icon in (REPO / "SegAnyPET.png", REPO / "SegAnyPET" / "Resources" / "Icons" / "SegAnyPET.png"):
        with Image.open(icon) as image:
            assert image.format == "PNG" and image.size == (128, 128)
