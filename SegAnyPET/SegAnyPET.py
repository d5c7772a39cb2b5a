"""SegAnyPET: promptable PET segmentation in 3D Slicer.

Click positive and negative points in the slice views; after each click SegAnyPET (the SAM-Med3D
network trained on PET) updates one segment. The image encoder runs once per region, in a
background thread; further clicks only rerun the prompt encoder and mask decoder, at once. The
computation and every rule (click order, undo, what happens to other segments, error messages,
package checks) live in ``SegAnyPETLib`` and run headless in the tests; this file is the user
interface, its parameter node and the self-test.
"""
import importlib
import logging
import os
import sys
from typing import Annotated

import ctk
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Developer mode: the library sits beside this module's folder in the repository. (In the installed
# extension it is copied next to this file, which is on sys.path already.)
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPOSITORY, "SegAnyPETLib")) and _REPOSITORY not in sys.path:
    sys.path.insert(0, _REPOSITORY)

from SegAnyPETLib import requirements, slicer_checks, slicer_logic  # noqa: E402  (import neither torch nor qt)
from SegAnyPETLib.errors import Cancelled, SegAnyPETError  # noqa: E402
from SegAnyPETLib.labels import LABELS, display_name  # noqa: E402
from SegAnyPETLib.slicer_runner import ThreadRunner  # noqa: E402
from SegAnyPETLib.slicer_segment_writer import OVERWRITE_MODES  # noqa: E402

# Model choices shown to the user: registry name (SegAnyPETLib.checkpoints.REGISTRY) -> label.
MODEL_CHOICES = (
    ("demo", "Bundled demo model (offline)"),
    ("seganypet-v1", "SegAnyPET v1 (paper)"),
    ("seganypet-v2", "SegAnyPET v2"),
    ("seganypet-lesion", "SegAnyPET lesion"),
    ("sam-med3d-turbo", "SAM-Med3D-turbo"),
)
LOCAL_MODEL = "local file"
DEVICES = ("auto", "cpu", "cuda")  # order of the device combobox items
OVERWRITE_LABELS = {  # order of the overwrite combobox items: OVERWRITE_MODES
    "none": "Not modified (overlap allowed)",
    "visible": "Overwrite visible segments",
    "all": "Overwrite all segments",
}
POLL_MS = 10  # the runner waits up to 40 ms per poll, so the worker thread gets most of the time

# Keyboard shortcuts while the module is shown: key -> widget method. They are off while a text
# field has the keyboard focus (slicer_checks.shortcutsAllowed), so typing there is not taken.
SHORTCUTS = (
    ("P", "placePositive"),
    ("N", "placeNegative"),
    ("Ctrl+Z", "onUndo"),
    ("Ctrl+Backspace", "onReset"),
    ("Return", "onFinish"),
    ("Enter", "onFinish"),
)
# Choices remembered across scenes (QSettings) and used for a new scene's parameter node.
REMEMBERED = {"model": "demo", "modelFile": "", "device": "auto", "preset": "", "options": "{}", "overwriteMode": "none"}
# The Advanced section's control for each kind of SegAnyPETLib.slicer_options.optionControls():
# (Qt class, the signal that says the user changed it).
OPTION_WIDGETS = {
    "checkbox": ("QCheckBox", "toggled(bool)"),
    "spinbox": ("QSpinBox", "valueChanged(int)"),
    "doublespinbox": ("QDoubleSpinBox", "valueChanged(double)"),
    "combobox": ("QComboBox", "currentIndexChanged(int)"),
    "lineedit": ("QLineEdit", "editingFinished()"),
}


#
# SegAnyPET
#
class SegAnyPET(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SegAnyPET")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []  # the PyTorch extension is checked when the network is needed
        self.parent.contributors = ["SegAnyPET contributors"]
        self.parent.helpText = _(
            "Promptable segmentation of PET images: click inside an organ or lesion (positive points) and "
            "where the result leaks (negative points); the target segment follows every click. "
            "Shortcuts (not while typing in a text field): P positive, N negative, Ctrl+Z undo, "
            "Ctrl+Backspace reset, Enter finish. Statistics gives the volume, SUVmax, SUVmean, SUVpeak and TLG "
            "of every segment. Needs 3D Slicer 5.10 or later."
            "<br><br>If you use SegAnyPET, please cite: Y. Zhang et al., <i>SegAnyPET: Universal Promptable "
            "Segmentation from Positron Emission Tomography Images</i>, ICCV 2025; and for the network, "
            "H. Wang et al., <i>SAM-Med3D: Towards General-purpose Segmentation Models for Volumetric "
            "Medical Images</i>, arXiv:2310.15161."
        )
        self.parent.acknowledgementText = _(
            "The network and the published weights are those of SegAnyPET (Zhang et al.) and SAM-Med3D "
            "(Wang et al.). PyTorch is installed through the PyTorch extension (Perez-Garcia, Lasso)."
        )


#
# Dependencies (checked when the network is first needed; installed only after the user agrees)
#
def ensureDependencies():
    """True when PyTorch and the other packages meet SegAnyPET's requirements (read from its package
    metadata / pyproject.toml), installing them if the user agrees; else one message, False."""
    try:
        plan = slicer_checks.installPlan(requirements.check())
    except SegAnyPETError as error:
        slicer.util.errorDisplay(str(error))
        return False
    if not plan.needed:
        return True
    if plan.blocking:
        slicer.util.errorDisplay("\n".join(plan.blocking))
        return False
    if plan.torch is not None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            slicer.util.errorDisplay(_("SegAnyPET needs the PyTorch extension: install it from the Extensions Manager, restart Slicer and try again."))
            return False
    if not slicer.util.confirmOkCancelDisplay(
        _("SegAnyPET needs these Python packages:\n\n{packages}\n\nDownload and install them now? This needs a network connection and may take several minutes.").format(packages="\n".join(plan.described)),
        _("Install Python packages"),
    ):
        return False
    with slicer.util.WaitCursor():
        if plan.torch is not None:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=plan.torch)
            if torch is None:
                slicer.util.errorDisplay(_("PyTorch was not installed. Use the PyTorch Utils module to install it."))
                return False
        if plan.pip:
            try:
                slicer.util.pip_install(plan.pip)
            except Exception as error:  # one message: what failed and where pip's output is
                text, details = slicer_checks.installFailure(plan.pip, error)
                slicer.util.errorDisplay(text, detailedText=details)
                return False
    importlib.invalidate_caches()
    remaining = slicer_checks.installPlan(requirements.check())
    if remaining.needed:
        slicer.util.errorDisplay(_("These packages still do not meet SegAnyPET's requirements:\n\n{packages}\n\nRestart Slicer and try again.").format(packages="\n".join(remaining.described)))
        return False
    return True


class DownloadCancelled(Exception):
    """The user cancelled a model download."""


def progressTqdmClass(report, cancelRequested):
    """A tqdm class for huggingface_hub downloads that reports to ``report`` and honours cancel."""
    from tqdm import tqdm

    class ProgressTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def display(self, *args, **kwargs):  # no console output: the progress bar shows it
            return True

        def update(self, n=1):
            if cancelRequested.is_set():
                raise DownloadCancelled("download cancelled")
            result = super().update(n)
            if self.total:
                report(self.n / self.total, _("Downloading {name}: {done:.0f} of {total:.0f} MB").format(
                    name=self.desc or "model", done=self.n / 1e6, total=self.total / 1e6))
            return result

    return ProgressTqdm


#
# SegAnyPETParameterNode: what a saved scene reopens with
#
@parameterNodeWrapper
class SegAnyPETParameterNode:
    """The module's choices in the scene (saved with it).

    inputVolume: the PET volume; model, modelFile, device: the network; preset (empty: the model's
    own) and options (JSON of option: value, the options that differ from the preset's): the
    inference options; targetSegmentation, targetSegmentId: the segment the clicks change; lesion:
    the target is a lesion; overwriteMode: what clicks do to other segments.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    model: str = "demo"
    modelFile: str = ""
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    preset: str = ""
    options: str = "{}"
    targetSegmentation: vtkMRMLSegmentationNode
    targetSegmentId: str = ""
    lesion: bool = False
    overwriteMode: Annotated[str, Choice(list(OVERWRITE_MODES))] = "none"


#
# SegAnyPETWidget
#
class SegAnyPETWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.runner = None
        self._parameterNode = None
        self._shortcuts = []
        self._positiveNode = None
        self._negativeNode = None
        self._statisticsTable = None
        self._updatingGui = False
        self._applying = False
        self._placeCheckPending = False
        self._optionWidgets = None  # option name -> (OptionControl, widget), once built

    # ------------------------------------------------------------------ set-up
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        problem = slicer_checks.slicerVersionProblem(int(slicer.app.majorVersion), int(slicer.app.minorVersion),
                                                     hasattr(slicer, "vtkSlicerSegmentEditorLogic"))
        if problem:  # the version gate: say so now, before anything is installed or downloaded
            label = qt.QLabel(problem)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegAnyPET.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegAnyPETLogic()
        self.runner = ThreadRunner(self._showProgress, self._onRunnerStateChanged)
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_MS)
        self._pollTimer.connect("timeout()", self._pollRunner)
        self.logic.runner = self.runner
        self.logic.progressCallback = self.runner.report
        self.logic.updateCallback = self._onSegmentUpdated
        self.logic.errorCallback = self._onComputationError

        for name, label in MODEL_CHOICES:
            self.ui.modelComboBox.addItem(_(label), name)
        self.ui.modelComboBox.addItem(_("Local file..."), LOCAL_MODEL)
        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.ui.modelPathLineEdit.nameFilters = [_("Checkpoints (*.pt *.pth)")]
        for mode in OVERWRITE_MODES:
            self.ui.overwriteComboBox.addItem(_(OVERWRITE_LABELS[mode]), mode)
        for name in LABELS:
            self.ui.newSegmentComboBox.addItem(display_name(name), name)
        for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
            placeWidget.buttonsVisible = False
            placeWidget.placeButton().show()
            placeWidget.deleteButton().show()
            placeWidget.placeMultipleMarkups = placeWidget.ForcePlaceMultipleMarkups
            placeWidget.connect("activeMarkupsPlaceModeChanged(bool)", self._onPlaceModeChanged)
        self.ui.progressBar.hide()
        self.ui.cancelButton.hide()

        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputVolumeChanged)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.presetComboBox.connect("currentIndexChanged(int)", self.onPresetChanged)
        self.ui.advancedCollapsibleButton.connect("contentsCollapsed(bool)", self.onAdvancedCollapsed)
        self.ui.resetOptionsButton.connect("clicked(bool)", self.onResetOptions)
        self.ui.lesionCheckBox.connect("toggled(bool)", self.onLesionToggled)
        self.ui.overwriteComboBox.connect("currentIndexChanged(int)", self.onOverwriteChanged)
        self.ui.downloadModelButton.connect("clicked(bool)", self.onDownloadModel)
        self.ui.segmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onTargetChanged)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onTargetChanged)
        self.ui.addSegmentButton.connect("clicked(bool)", self.onAddSegment)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.resetButton.connect("clicked(bool)", self.onReset)
        self.ui.finishButton.connect("clicked(bool)", self.onFinish)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.computeStatisticsButton.connect("clicked()", self.onComputeStatistics)
        self.ui.exportStatisticsButton.connect("clicked(bool)", self.onExportStatistics)

        self._setUpOptions()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.initializeParameterNode()

    def cleanup(self):
        """Module reload or application exit: stop the work, drop the observers (the prompt lists are
        reused by the next widget, so a reload leaves no second pair)."""
        self._removeShortcuts()
        self.removeObservers()
        if self.logic is None:
            return
        self._stopWork()
        self._pollTimer.stop()
        self.logic.cleanup()

    def enter(self):
        if self.logic is None:
            return
        self.initializeParameterNode()
        self._ensurePromptNodes()
        self._installShortcuts()
        self.updateGui()

    def exit(self):
        self._removeShortcuts()
        if self.logic is None:
            return
        for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
            placeWidget.setPlaceModeEnabled(False)

    def onSceneStartClose(self, caller, event):
        self._stopWork()
        self.setParameterNode(None)
        self.logic.setTargetSegment(None, None)
        self.logic.setPromptNodes(None, None)
        self.logic.setInputVolume(None)
        self._positiveNode = self._negativeNode = self._statisticsTable = None

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()
            self._ensurePromptNodes()
        self.updateGui()

    def onSceneEndImport(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def _stopWork(self):
        if self.runner is not None and self.runner.running:
            self.logic.cancel()
            self.runner.cancel()
            self.runner.wait()

    # ------------------------------------------------------------------ parameter node
    def initializeParameterNode(self):
        """The scene's parameter node; a new one starts from the choices remembered in the settings."""
        node = self.logic.getParameterNode()
        if node.parameterNode.GetAttribute("SegAnyPET.fromSettings") is None:  # new: start from the remembered choices
            node.parameterNode.SetAttribute("SegAnyPET.fromSettings", "1")
            settings = qt.QSettings()
            with slicer.util.NodeModify(node.parameterNode):
                for name, default in REMEMBERED.items():
                    value = settings.value(f"SegAnyPET/{name}", default)
                    value = slicer.util.toBool(value) if isinstance(default, bool) else str(value)
                    if name == "device" and value not in DEVICES or name == "overwriteMode" and value not in OVERWRITE_MODES:
                        value = default
                    setattr(node, name, value)
                options = self._optionsLibrary()
                if options is not None:  # remembered options the config refuses now: the model's own
                    node.preset, node.options = options.OptionsForm.remembered(node.preset, node.options).toNode()
        if not node.inputVolume:
            node.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        self.setParameterNode(node)

    def setParameterNode(self, node):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = node
        if node is not None:
            self.addObserver(node.parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, *args):
        self._updateGuiFromParameterNode()
        self._applyParameterNode()
        self._refreshOptions()
        self.updateGui()

    def _updateGuiFromParameterNode(self):
        node = self._parameterNode
        if node is None:
            return
        self._updatingGui = True
        try:
            self.ui.inputVolumeSelector.setCurrentNode(node.inputVolume)
            index = self.ui.modelComboBox.findData(node.model)
            self.ui.modelComboBox.setCurrentIndex(max(index, 0))
            self.ui.modelPathLineEdit.currentPath = node.modelFile
            local = node.model == LOCAL_MODEL
            self.ui.modelPathLabel.visible = local
            self.ui.modelPathLineEdit.visible = local
            self.ui.deviceComboBox.setCurrentIndex(DEVICES.index(node.device) if node.device in DEVICES else 0)
            self.ui.presetComboBox.setCurrentIndex(max(self.ui.presetComboBox.findData(node.preset), 0))
            self.ui.lesionCheckBox.checked = node.lesion
            self.ui.overwriteComboBox.setCurrentIndex(max(self.ui.overwriteComboBox.findData(node.overwriteMode), 0))
            self.ui.segmentSelector.setCurrentNode(node.targetSegmentation)
            self.ui.segmentSelector.setCurrentSegmentID(node.targetSegmentId)
        finally:
            self._updatingGui = False

    def _applyParameterNode(self):
        """Bring the logic in line with the parameter node (after the running work, if any)."""
        node = self._parameterNode
        if node is None or self._applying or self.runner.running:
            return
        self._applying = True
        try:
            logic = self.logic
            logic.setInputVolume(node.inputVolume)
            logic.setModel(self._modelSource(), node.device)
            self._applyOptions()
            logic.setOverwriteMode(node.overwriteMode)
            segmentId = node.targetSegmentId if node.targetSegmentation else ""
            segmentation = node.targetSegmentation
            if segmentation is not None and segmentId and segmentation.GetSegmentation().GetSegment(segmentId) is None:
                node.targetSegmentId = segmentId = ""  # the segment was deleted
            previous = (logic.targetSegmentation, logic.targetSegmentId)
            logic.setTargetSegment(segmentation, segmentId or None)
            if (logic.targetSegmentation, logic.targetSegmentId) != previous and logic.targetSegmentId is not None:
                node.lesion = logic.lesion  # a new target: its stored points say how it was made
            try:
                logic.setLesion(node.lesion)
            except SegAnyPETError:  # options without lesion refiners: the box unticks, the message says why
                node.lesion = False
                raise
        except SegAnyPETError as error:
            self._showError(error)
        finally:
            self._applying = False
        self.ui.writingLabel.text = self.logic.describeWriting()

    def _remember(self, name, value):
        qt.QSettings().setValue(f"SegAnyPET/{name}", value)

    # ------------------------------------------------------------------ shortcuts
    def _installShortcuts(self):
        self._removeShortcuts()
        for key, method in SHORTCUTS:
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", getattr(self, method))
            self._shortcuts.append(shortcut)
        slicer.app.connect("focusChanged(QWidget*,QWidget*)", self._onFocusChanged)
        self._onFocusChanged(None, slicer.app.focusWidget())

    def _removeShortcuts(self):
        if self._shortcuts:
            slicer.app.disconnect("focusChanged(QWidget*,QWidget*)", self._onFocusChanged)
        for shortcut in self._shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self._shortcuts = []

    def _onFocusChanged(self, old, new):
        """Shortcuts are off while a text field (here or anywhere, the Python console too) has the focus."""
        classes = []
        meta = new.metaObject() if new is not None else None
        while meta is not None:
            classes.append(meta.className())
            meta = meta.superClass()
        editable = bool(new is not None and isinstance(new, qt.QComboBox) and new.editable)
        allowed = slicer_checks.shortcutsAllowed(classes, editable)
        for shortcut in self._shortcuts:
            shortcut.enabled = allowed

    def placePositive(self):
        self.ui.positivePlaceWidget.setPlaceModeEnabled(True)

    def placeNegative(self):
        self.ui.negativePlaceWidget.setPlaceModeEnabled(True)

    # ------------------------------------------------------------------ inputs and model
    def _modelSource(self):
        node = self._parameterNode
        return node.modelFile if node.model == LOCAL_MODEL else node.model

    def onInputVolumeChanged(self, volume=None):
        if self._updatingGui or self._parameterNode is None:
            return
        volume = self.ui.inputVolumeSelector.currentNode()
        self._parameterNode.inputVolume = volume  # the logic takes any volume, with image data or not
        fromDicom = volume is not None and slicer_logic.volumeSuvFactor(volume) is not None
        self.ui.suvFactorSpinBox.enabled = not fromDicom
        if fromDicom:
            self.ui.suvFactorSpinBox.value = 1.0
            self.ui.suvSourceLabel.text = _("The volume holds SUVs (PET DICOM import, real-world value mapping).")
        else:
            self.ui.suvSourceLabel.text = _("SUV = voxel value x factor. Keep 1 if the volume already holds SUVs; for Bq/mL enter the factor of \"seganypet suv\".")

    def onModelChanged(self, *args):
        if self._updatingGui or self._parameterNode is None:
            return
        model, path = self.ui.modelComboBox.currentData, self.ui.modelPathLineEdit.currentPath
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            self._parameterNode.model = model
            self._parameterNode.modelFile = path
        self._remember("model", model)
        self._remember("modelFile", path)

    def onDeviceChanged(self, index):
        if self._updatingGui or self._parameterNode is None:
            return
        device = DEVICES[max(index, 0)]
        self._parameterNode.device = device
        self._remember("device", device)

    # ------------------------------------------------------------------ inference options
    # The preset combo box and the Advanced section: the controls are built from the library's table
    # of options (SegAnyPETLib.slicer_options), which also turns their values into the overrides the
    # parameter node stores and back; here they are only shown and forwarded.
    def _optionsLibrary(self):
        """SegAnyPETLib.slicer_options, or None until SegAnyPET's Python packages are installed."""
        try:
            from SegAnyPETLib import slicer_options
        except ImportError:
            return None
        return slicer_options

    def _setUpOptions(self):
        """Fill the preset combo box and build the Advanced controls (once); False while the packages
        they need are missing (the first click installs them)."""
        if self._optionWidgets is not None:
            return True
        options = self._optionsLibrary()
        if options is None:
            self.ui.advancedHintLabel.text = _("The options are shown once SegAnyPET's Python packages are installed (the first click asks).")
            return False
        self._updatingGui = True
        try:
            self.ui.presetComboBox.clear()
            for value, label in options.presetItems():
                self.ui.presetComboBox.addItem(_(label) if not value else label, value)
            layout = self.ui.advancedCollapsibleButton.layout()
            self._optionWidgets = {}
            for control in options.optionControls():
                widget = self._createOptionWidget(control)
                layout.addRow(control.label + ":", widget)
                self._optionWidgets[control.name] = (control, widget)
        finally:
            self._updatingGui = False
        return True

    def _createOptionWidget(self, control):
        """The Qt control for one option (OPTION_WIDGETS[control.kind]), connected to onAdvancedOptionChanged."""
        className, signal = OPTION_WIDGETS[control.kind]
        widget = getattr(qt, className)()
        widget.objectName = control.name + "OptionWidget"
        widget.toolTip = control.toolTip
        if control.kind in ("spinbox", "doublespinbox"):
            if control.kind == "doublespinbox":  # decimals first: they round the range
                widget.decimals = self._optionsLibrary().DECIMALS
                widget.singleStep = 0.05 if control.maximum <= 1 else 0.5
            widget.minimum, widget.maximum = control.minimum, control.maximum
            if control.optional:
                widget.specialValueText = _(self._optionsLibrary().NOT_SET)
        elif control.kind == "combobox":
            for choice in control.choices:
                widget.addItem(choice)
        elif control.kind == "lineedit":
            widget.placeholderText = ", ".join(control.choices) if control.choices else ""
        widget.connect(signal, self.onAdvancedOptionChanged)
        return widget

    def _shownOptionValue(self, control, widget):
        if control.kind == "checkbox":
            return bool(widget.checked)
        if control.kind in ("spinbox", "doublespinbox"):
            return widget.value
        if control.kind == "combobox":
            return widget.currentText
        return widget.text

    def _showOptionValue(self, control, widget, value):
        if control.kind == "checkbox":
            widget.checked = value
        elif control.kind in ("spinbox", "doublespinbox"):
            widget.value = value
        elif control.kind == "combobox":
            widget.setCurrentIndex(max(widget.findText(value), 0))
        else:
            widget.text = value

    def _optionsForm(self):
        """The parameter node's preset and options (SegAnyPETLib.slicer_options.OptionsForm)."""
        return self._optionsLibrary().OptionsForm.fromNode(self._parameterNode.preset, self._parameterNode.options)

    def _optionsBase(self, preset):
        """(config of ``preset`` before overrides, None) or (None, why it is not known yet): a local
        checkpoint's own options need the model, which is loaded here once it is on this machine."""
        logic = self.logic
        if self.runner.running:
            return None, _("The options can be changed when the computation has finished.")
        if not preset and not logic.modelLoaded and not logic.registryModel:
            if logic.modelSource != self._modelSource() or not self._modelAvailable():
                return None, _("The model's own options are shown once the model is on this machine (Download, or choose a preset).")
        try:
            with slicer.util.WaitCursor():
                return logic.baseConfig(preset), None
        except SegAnyPETError as error:  # e.g. a checkpoint that cannot be read: said here, not in a dialog each time
            return None, slicer_checks.userMessage(error, _("The model's options could not be read")).text

    def _applyOptions(self):
        """Give the logic the parameter node's preset and options (once the packages are installed)."""
        if self._optionsLibrary() is None:
            return
        try:
            form = self._optionsForm()
            self.logic.setOptions(form.preset or None, **form.overrides)
        except SegAnyPETError as error:  # e.g. a scene saved with an option this version does not know
            self._showError(error, _("Inference options not applied"))

    def _refreshOptions(self):
        """Show the parameter node's options in the Advanced controls (while the section is open)."""
        if self._parameterNode is None or not self._setUpOptions() or self.ui.advancedCollapsibleButton.collapsed:
            return
        try:
            form = self._optionsForm()
        except SegAnyPETError as error:
            self.ui.advancedHintLabel.text = str(error)
            return
        base, problem = self._optionsBase(form.preset)
        for _control, widget in self._optionWidgets.values():
            widget.enabled = base is not None
        self.ui.resetOptionsButton.enabled = base is not None
        if base is None:
            self.ui.advancedHintLabel.text = problem
            return
        self.ui.advancedHintLabel.text = form.summary()
        self._updatingGui = True
        try:
            for name, value in form.controlValues(base).items():
                control, widget = self._optionWidgets[name]
                self._showOptionValue(control, widget, value)
        finally:
            self._updatingGui = False

    def _storeOptions(self, form):
        preset, options = form.toNode()
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            self._parameterNode.preset = preset
            self._parameterNode.options = options
        self._remember("preset", preset)
        self._remember("options", options)

    def onPresetChanged(self, index):
        """Another preset: the Advanced controls start again from its values."""
        if self._updatingGui or self._parameterNode is None or self._optionsLibrary() is None:
            return
        form = self._optionsLibrary().OptionsForm()
        form.choosePreset(self.ui.presetComboBox.currentData or "")
        self._storeOptions(form)

    def onResetOptions(self):
        if self._parameterNode is None or self._optionsLibrary() is None:
            return
        form = self._optionsLibrary().OptionsForm()
        form.choosePreset(self._parameterNode.preset)
        self._storeOptions(form)

    def onAdvancedCollapsed(self, collapsed):
        if not collapsed:
            self._refreshOptions()

    def onAdvancedOptionChanged(self, *args):
        """A control changed: the overrides become the options that differ from the preset."""
        if self._updatingGui or self._parameterNode is None or self._optionWidgets is None:
            return
        try:
            form = self._optionsForm()
            base, problem = self._optionsBase(form.preset)
            if base is None:
                self.ui.statusLabel.text = problem
                return
            form.setControlValues(base, {name: self._shownOptionValue(control, widget)
                                         for name, (control, widget) in self._optionWidgets.items()})
        except SegAnyPETError as error:  # a value the config refuses: the controls go back, the section says why
            self._refreshOptions()
            self.ui.advancedHintLabel.text = slicer_checks.userMessage(error, _("Option not changed")).text
            return
        self._storeOptions(form)

    def onLesionToggled(self, checked):
        if self._updatingGui or self._parameterNode is None:
            return
        self._parameterNode.lesion = bool(checked)  # a choice per segment, stored with its points

    def onOverwriteChanged(self, index):
        if self._updatingGui or self._parameterNode is None:
            return
        mode = self.ui.overwriteComboBox.currentData
        self._parameterNode.overwriteMode = mode
        self._remember("overwriteMode", mode)

    def _modelAvailable(self):
        """True when the chosen weights are on this machine (no download needed)."""
        source = self._modelSource()
        if not source:
            return False
        if source not in dict(MODEL_CHOICES):
            return os.path.isfile(source)
        try:
            from SegAnyPETLib.checkpoints import cached_path
        except ImportError:  # PyTorch or huggingface_hub not installed yet
            return False
        return cached_path(source) is not None

    def onDownloadModel(self):
        name = self._modelSource()
        if name not in dict(MODEL_CHOICES) or self.runner.running or not ensureDependencies():
            return
        from SegAnyPETLib.checkpoints import download

        tqdmClass = progressTqdmClass(self.runner.report, self.runner.cancelRequested)
        self.ui.statusLabel.text = _("Downloading {model}...").format(model=name)
        self.runner(lambda: download(name, tqdm_class=tqdmClass), self._onDownloaded)

    def _onDownloaded(self, path, error):
        if error is None:
            self.ui.statusLabel.text = _("Model downloaded to {path}.").format(path=path)
        elif isinstance(error, (DownloadCancelled, Cancelled)):
            self.ui.statusLabel.text = _("Download cancelled.")
        else:
            self._showError(error, _("The model could not be downloaded"))

    # ------------------------------------------------------------------ target segment
    def onTargetChanged(self, *args):
        if self._updatingGui or self._parameterNode is None:
            return
        segmentation = self.ui.segmentSelector.currentNode()
        segmentId = self.ui.segmentSelector.currentSegmentID() if segmentation is not None else ""
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            self._parameterNode.targetSegmentation = segmentation
            self._parameterNode.targetSegmentId = segmentId or ""

    def _segmentationNode(self):
        """The selected segmentation, or a new one on the PET volume's grid."""
        segmentation = self.ui.segmentSelector.currentNode()
        if segmentation is None:
            segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", _("PET segmentation"))
            segmentation.CreateDefaultDisplayNodes()
            volume = self.ui.inputVolumeSelector.currentNode()
            if volume is not None:
                segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        return segmentation

    def onAddSegment(self):
        if self.runner.running:
            return
        text = self.ui.newSegmentComboBox.currentText.strip()
        index = self.ui.newSegmentComboBox.findText(text)
        name = self.ui.newSegmentComboBox.itemData(index) if index >= 0 else text
        try:
            segmentation = self._segmentationNode()
            segmentId = slicer_logic.addSegment(segmentation, name)
        except SegAnyPETError as error:
            self._showError(error, _("Cannot add the segment"))
            return
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            self._parameterNode.targetSegmentation = segmentation
            self._parameterNode.targetSegmentId = segmentId

    # ------------------------------------------------------------------ clicks
    def _ensurePromptNodes(self):
        if self._positiveNode is None or self._positiveNode.GetScene() is None:
            self._positiveNode, self._negativeNode = slicer_logic.addPromptNodes()  # reused when they exist
            self.ui.positivePlaceWidget.setCurrentNode(self._positiveNode)
            self.ui.negativePlaceWidget.setCurrentNode(self._negativeNode)
            self.logic.setPromptNodes(self._positiveNode, self._negativeNode)

    def _onPlaceModeChanged(self, enabled):
        """Inside the place widget's signal nothing is checked and no dialog opens: the check runs
        next, from the event loop, and turns place mode off again (button included) when not ready."""
        if enabled and not self._placeCheckPending:
            self._placeCheckPending = True
            qt.QTimer.singleShot(0, self._checkPlaceMode)
        self.updateGui()

    def _checkPlaceMode(self):
        self._placeCheckPending = False
        placing = any(w.placeModeEnabled for w in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget))
        if placing and not self._readyToClick():
            for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
                placeWidget.setPlaceModeEnabled(False)
        self.updateGui()

    def _readyToClick(self):
        """Before the first click: volume, packages, weights and a target segment (created if needed)."""
        problem = slicer_logic.volumeProblem(self.ui.inputVolumeSelector.currentNode())
        if problem:
            self.ui.statusLabel.text = problem[:1].upper() + problem[1:] + "."
            return False
        if not ensureDependencies():
            return False
        if self._setUpOptions():  # the packages the options need may have come just now
            self._applyOptions()
        if not self._modelAvailable():
            if self._parameterNode.model == LOCAL_MODEL:
                self.ui.statusLabel.text = _("Choose a checkpoint file first.")
            else:
                self.ui.statusLabel.text = _("Download the model first (Download button).")
            return False
        if self.logic.targetSegmentId is None:
            self.onAddSegment()
        self._ensurePromptNodes()
        problem = self.logic.clickProblem()
        if problem:
            self.ui.statusLabel.text = problem[:1].upper() + problem[1:] + "."
            return False
        return True

    def onUndo(self):
        if not self.logic.canUndo:
            return
        self._run(self.logic.undo, _("Undo failed"))

    def onReset(self):
        if self.runner.running or self.logic.targetSegmentId is None:
            return
        self._run(self.logic.reset, _("Reset failed"))

    def onFinish(self):
        if self.runner.running or self.logic.targetSegmentId is None:
            return
        for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
            placeWidget.setPlaceModeEnabled(False)
        finished = self._targetName()
        combo = self.ui.newSegmentComboBox
        if combo.currentText == finished and combo.currentIndex + 1 < combo.count:
            combo.setCurrentIndex(combo.currentIndex + 1)  # propose the next organ
        self._parameterNode.targetSegmentId = ""  # the logic finishes the segment (its points stay stored)
        self.ui.statusLabel.text = _("Segment accepted. Choose the next name and click again to start a new segment.")

    def onCancel(self):
        self.logic.cancel()
        self.runner.cancel()

    def _run(self, action, failure):
        """Run a logic action; a failure is one message (no traceback)."""
        try:
            action()
        except Exception as error:
            self._showError(error, failure)
        self.updateGui()

    def _showError(self, error, action=""):
        message = slicer_checks.userMessage(error, action)
        self.ui.statusLabel.text = message.text
        if not isinstance(error, SegAnyPETError) and message.details:
            logging.error("SegAnyPET: %s", message.details, exc_info=(type(error), error, error.__traceback__))
        if message.dialog:
            slicer.util.errorDisplay(message.text, detailedText=message.details)

    # ------------------------------------------------------------------ background work
    def _pollRunner(self):
        self.runner.poll()

    def _onRunnerStateChanged(self):
        if self.runner.running:
            self._pollTimer.start()
        else:
            self._pollTimer.stop()
            self._applyParameterNode()  # choices made while it ran
            self._refreshOptions()
        self.updateGui()

    def _showProgress(self, fraction, text):
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = text

    def _onSegmentUpdated(self, timing):
        self.ui.latencyLabel.text = _("Last change: {latency:.0f} ms (image encoder {encoder:.0f} ms, decoder and refinement {click:.0f} ms, segment update {write:.0f} ms)").format(
            latency=timing.get("latency_ms", 0.0), encoder=timing.get("encoder_ms", 0.0),
            click=timing.get("click_ms", 0.0), write=timing.get("write_ms", 0.0))
        status = _("{count} point(s) on segment {name}.").format(count=len(self.logic.prompts), name=self._targetName())
        self.ui.statusLabel.text = " ".join([status] + self.logic.warnings)
        self.updateGui()

    def _onComputationError(self, error):
        self._showError(error, _("Prediction failed; the new point(s) were removed"))
        self.updateGui()

    def _targetName(self):
        segmentation, segmentId = self.logic.targetSegmentation, self.logic.targetSegmentId
        segment = segmentation.GetSegmentation().GetSegment(segmentId) if segmentation and segmentId else None
        return segment.GetName() if segment is not None else ""

    # ------------------------------------------------------------------ statistics
    def _suvFactor(self):
        """None when the volume's units say SUV (the logic takes 1), else the user's factor."""
        return None if not self.ui.suvFactorSpinBox.enabled else self.ui.suvFactorSpinBox.value

    def onComputeStatistics(self, csvPath=None):
        segmentation = self.ui.segmentSelector.currentNode()
        volume = self.ui.inputVolumeSelector.currentNode()
        if segmentation is None or volume is None:
            self.ui.statusLabel.text = _("Statistics need a PET volume and a segmentation.")
            return
        if not ensureDependencies():
            return
        if self._statisticsTable is not None and self._statisticsTable.GetScene() is None:
            self._statisticsTable = None
        try:
            with slicer.util.WaitCursor():
                self._statisticsTable = self.logic.exportStatistics(
                    segmentation, volume, csvPath or None, suvFactor=self._suvFactor(), overwrite=True, tableNode=self._statisticsTable)
        except Exception as error:
            self._showError(error, _("Statistics failed"))
            return
        self.ui.statisticsTableView.setMRMLTableNode(self._statisticsTable)
        self.ui.statusLabel.text = _("Statistics of {count} segment(s){saved}.").format(
            count=self._statisticsTable.GetNumberOfRows(), saved=_(" saved to {path}").format(path=csvPath) if csvPath else "")

    def onExportStatistics(self):
        segmentation = self.ui.segmentSelector.currentNode()
        name = (segmentation.GetName() if segmentation else "segmentation") + "_statistics.csv"
        path = qt.QFileDialog.getSaveFileName(self.parent, _("Export statistics"), os.path.join(os.path.expanduser("~"), name), _("CSV files (*.csv)"))
        if path:
            self.onComputeStatistics(path)  # the dialog has asked before replacing a file

    # ------------------------------------------------------------------ state
    def updateGui(self, *args):
        if self.logic is None:
            return
        busy = self.runner.running
        hasVolume = self.ui.inputVolumeSelector.currentNode() is not None
        hasTarget = self.logic.targetSegmentId is not None
        remote = self.ui.modelComboBox.currentData not in (LOCAL_MODEL, "demo")
        self.ui.downloadModelButton.visible = remote and not self._modelAvailable()
        for widget in (self.ui.inputVolumeSelector, self.ui.modelComboBox, self.ui.modelPathLineEdit, self.ui.deviceComboBox,
                       self.ui.presetComboBox, self.ui.advancedCollapsibleButton, self.ui.lesionCheckBox,
                       self.ui.overwriteComboBox, self.ui.downloadModelButton, self.ui.segmentSelector,
                       self.ui.addSegmentButton, self.ui.computeStatisticsButton, self.ui.exportStatisticsButton):
            widget.enabled = not busy
        self.ui.positivePlaceWidget.enabled = hasVolume
        self.ui.negativePlaceWidget.enabled = hasVolume
        self.ui.undoButton.enabled = self.logic.canUndo
        self.ui.resetButton.enabled = hasTarget and not busy
        self.ui.finishButton.enabled = hasTarget and not busy
        self.ui.progressBar.visible = busy
        self.ui.cancelButton.visible = busy
        self.ui.writingLabel.text = self.logic.describeWriting()


#
# SegAnyPETLogic
#
class SegAnyPETLogic(ScriptedLoadableModuleLogic, slicer_logic.SegAnyPETLogic):
    """The module logic: :class:`SegAnyPETLib.slicer_logic.SegAnyPETLogic` (usable from Python and
    batch scripts without this module) with Slicer's scripted-module logic services."""

    def __init__(self, model="demo", device="auto"):
        ScriptedLoadableModuleLogic.__init__(self)
        slicer_logic.SegAnyPETLogic.__init__(self, model, device)

    def getParameterNode(self):
        return SegAnyPETParameterNode(super().getParameterNode())


#
# SegAnyPETTest
#
class SegAnyPETTest(ScriptedLoadableModuleTest):
    """The full flow on a synthetic PET phantom with the bundled model."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ClicksOnPhantom()

    def test_ClicksOnPhantom(self):
        self.assertTrue(ensureDependencies(), "SegAnyPET's Python packages are missing")
        import numpy as np
        import SimpleITK as sitk
        from scipy import ndimage

        from SegAnyPETLib.metrics import dice
        from SegAnyPETLib.phantom.generate import generate_case

        self.delayDisplay("Generating a synthetic FDG-PET phantom")
        case = generate_case(3)
        volume = slicer_logic.addVolumeFromImage(case.image, "Phantom PET")
        label = sitk.GetArrayFromImage(case.label)
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Phantom segmentation")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        positive, negative = slicer_logic.addPromptNodes()
        logic = SegAnyPETLogic("demo", "auto")
        logic.setInputVolume(volume)
        logic.setPromptNodes(positive, negative)
        ijkToRas = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijkToRas)

        segmentIds = {}
        for organ in ("liver", "kidney_left"):
            self.delayDisplay(f"Clicking the {display_name(organ)}")
            segmentIds[organ] = slicer_logic.addSegment(segmentation, organ)
            logic.setTargetSegment(segmentation, segmentIds[organ])
            truth = label == LABELS[organ]
            depth = ndimage.distance_transform_edt(truth)
            k, j, i = np.unravel_index(int(np.argmax(depth)), truth.shape)
            positive.AddControlPointWorld(*ijkToRas.MultiplyPoint([i, j, k, 1.0])[:3])
            self.assertIsNone(logic.lastError)
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentIds[organ], volume) > 0
            score = dice(mask, truth)
            logging.info("SegAnyPET self-test: %s Dice %.3f after one click (%.0f ms)", organ, score, logic.timing["latency_ms"])
            self.assertGreater(score, 0.5, f"implausible {organ} segment (Dice {score:.2f})")
            logic.finish()

        self.delayDisplay("Statistics")
        table = logic.exportStatistics(segmentation, volume)
        self.assertEqual(table.GetNumberOfRows(), 2)
        self.assertEqual(table.GetColumnName(0), "segment")

        self.delayDisplay("Undo")
        logic.setTargetSegment(segmentation, segmentIds["kidney_left"])  # its stored point comes back
        self.assertEqual(positive.GetNumberOfControlPoints(), 1)
        kidney = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentIds["kidney_left"], volume)
        liver = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentIds["liver"], volume)
        negative.AddControlPointWorld(*positive.GetNthControlPointPositionWorld(0))
        logic.undo()
        self.assertEqual(negative.GetNumberOfControlPoints(), 0)
        self.assertTrue(np.array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentIds["kidney_left"], volume), kidney))
        self.assertTrue(np.array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentIds["liver"], volume), liver))
        logic.cleanup()
        self.delayDisplay("Test passed")
