"""SegAnyPET: promptable PET segmentation in 3D Slicer.

Click positive and negative points in the slice views; after each click SegAnyPET (the SAM-Med3D
network trained on PET) updates one segment. The image encoder runs once per region, in the
background; further clicks only rerun the prompt encoder and mask decoder. The computation lives
in ``SegAnyPETLib`` (``SegAnyPETLib.slicer_logic.SegAnyPETLogic`` runs headless too); this file is
the user interface and the self-test.
"""
import importlib
import importlib.util
import logging
import os
import sys
import threading

import ctk
import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.i18n import translate
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

from SegAnyPETLib import slicer_logic  # noqa: E402  (imports neither torch nor qt)
from SegAnyPETLib.errors import SegAnyPETError  # noqa: E402
from SegAnyPETLib.labels import LABELS, display_name  # noqa: E402

# Python packages SegAnyPETLib imports (module name -> pip requirement); PyTorch comes from the
# PyTorch extension, which picks the build that matches the GPU driver.
PYTHON_REQUIREMENTS = {
    "scipy": "scipy>=1.10",
    "SimpleITK": "SimpleITK>=2.2",
    "nibabel": "nibabel>=4.0",
    "huggingface_hub": "huggingface_hub>=0.20",
    "tqdm": "tqdm>=4.64",
    "pydicom": "pydicom>=2.4",
    "yaml": "PyYAML>=6.0",
    "matplotlib": "matplotlib>=3.6",
}
TORCH_REQUIREMENT = ">=2.1"

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

# Keyboard shortcuts while the module is shown: key -> widget method.
SHORTCUTS = (
    ("P", "placePositive"),
    ("N", "placeNegative"),
    ("Ctrl+Z", "onUndo"),
    ("Ctrl+Backspace", "onReset"),
    ("Return", "onFinish"),
    ("Enter", "onFinish"),
)


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
            "Shortcuts: P positive, N negative, Ctrl+Z undo, Ctrl+Backspace reset, Enter finish. "
            "Statistics gives the volume, SUVmax, SUVmean, SUVpeak and TLG of every segment."
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
# Dependencies (installed on demand, after the user agrees; never at import time)
#
def missingPackages():
    """pip requirements of the packages SegAnyPETLib needs that are not installed."""
    return [requirement for module, requirement in PYTHON_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def ensureDependencies():
    """True when PyTorch and the other packages are available, installing them if the user agrees."""
    needTorch = importlib.util.find_spec("torch") is None
    missing = missingPackages()
    if not needTorch and not missing:
        return True
    if needTorch:
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            slicer.util.errorDisplay(_("SegAnyPET needs the PyTorch extension: install it from the Extensions Manager, restart Slicer and try again."))
            return False
    packages = (["PyTorch (through the PyTorch extension)"] if needTorch else []) + missing
    if not slicer.util.confirmOkCancelDisplay(
        _("SegAnyPET needs these Python packages:\n\n{packages}\n\nDownload and install them now? This needs a network connection and may take several minutes.").format(packages="\n".join(packages)),
        _("Install Python packages"),
    ):
        return False
    with slicer.util.WaitCursor():
        if needTorch:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT)
            if torch is None:
                slicer.util.errorDisplay(_("PyTorch was not installed. Use the PyTorch Utils module to install it."))
                return False
        if missing:
            slicer.util.pip_install(missing)
    importlib.invalidate_caches()
    return True


#
# Background work: the image encoder and downloads run in a Python thread (PyTorch and the network
# release the GIL), the user interface polls for progress and the result.
#
class BackgroundRunner:
    """``runner(work, done)``: ``work()`` runs in a thread; ``done(result, error)`` runs on the main thread."""

    def __init__(self, onProgress, onStateChanged):
        self.onProgress = onProgress
        self.onStateChanged = onStateChanged
        self.cancelRequested = threading.Event()
        self._thread = None
        self._done = None
        self._outcome = (None, None)
        self._progress = None
        self._timer = qt.QTimer()
        self._timer.setInterval(50)
        self._timer.connect("timeout()", self._poll)

    @property
    def running(self):
        return self._done is not None

    def __call__(self, work, done):
        if self.running:
            raise SegAnyPETError("another computation is running")
        self.cancelRequested.clear()
        self._done = done
        self._progress = (0.0, _("Working..."))
        self._thread = threading.Thread(target=self._target, args=(work,), name="SegAnyPET", daemon=True)
        self._thread.start()
        self._timer.start()
        self.onStateChanged()

    def report(self, fraction, text):
        """Progress from any thread; shown at the next poll."""
        self._progress = (fraction, text)

    def cancel(self):
        self.cancelRequested.set()

    def wait(self):
        """Block until the work ends (scene close); its result is delivered."""
        if self._thread is not None:
            self._thread.join()
        self._poll()

    def _target(self, work):
        try:
            self._outcome = (work(), None)
        except BaseException as error:  # delivered to done() on the main thread
            self._outcome = (None, error)

    def _poll(self):
        if self._progress is not None:
            self.onProgress(*self._progress)
            self._progress = None
        if self._done is None or self._thread.is_alive():
            return
        self._timer.stop()
        done, self._done = self._done, None
        result, error = self._outcome
        self._outcome = (None, None)
        done(result, error)
        self.onStateChanged()


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
# SegAnyPETWidget
#
class SegAnyPETWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.runner = None
        self._shortcuts = []
        self._positiveNode = None
        self._negativeNode = None
        self._statisticsTable = None
        self._updatingGui = False

    # ------------------------------------------------------------------ set-up
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SegAnyPET.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SegAnyPETLogic()
        self.runner = BackgroundRunner(self._showProgress, self.updateGui)
        self.logic.runner = self.runner
        self.logic.progressCallback = self.runner.report
        self.logic.updateCallback = self._onSegmentUpdated
        self.logic.errorCallback = self._onComputationError

        for name, label in MODEL_CHOICES:
            self.ui.modelComboBox.addItem(_(label), name)
        self.ui.modelComboBox.addItem(_("Local file..."), LOCAL_MODEL)
        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.ui.modelPathLineEdit.nameFilters = [_("Checkpoints (*.pt *.pth)")]
        self.ui.modelPathLineEdit.settingKey = "SegAnyPET/ModelFile"
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
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.mirrorCheckBox.connect("toggled(bool)", self.onMirrorToggled)
        self.ui.clickedIslandsCheckBox.connect("toggled(bool)", self.onClickedIslandsToggled)
        self.ui.interiorCropCheckBox.connect("toggled(bool)", self.onInteriorCropToggled)
        self.ui.partCheckCheckBox.connect("toggled(bool)", self.onPartCheckToggled)
        self.ui.contrastEdgeCheckBox.connect("toggled(bool)", self.onContrastEdgeToggled)
        self.ui.lesionCheckBox.connect("toggled(bool)", self.onLesionToggled)
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

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self._restoreSettings()
        self.onModelChanged()
        self.onInputVolumeChanged()

    def cleanup(self):
        self._removeShortcuts()
        self.removeObservers()
        if self.runner is not None and self.runner.running:
            self.logic.cancel()
            self.runner.cancel()
            self.runner.wait()
        if self.logic is not None:
            self.logic.cleanup()

    def enter(self):
        self._ensurePromptNodes()
        self._installShortcuts()
        self.updateGui()

    def exit(self):
        self._removeShortcuts()
        for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
            placeWidget.setPlaceModeEnabled(False)

    def onSceneStartClose(self, caller, event):
        if self.runner.running:
            self.logic.cancel()
            self.runner.cancel()
            self.runner.wait()
        self.logic.setTargetSegment(None, None)
        self.logic.setPromptNodes(None, None)
        self.logic.setInputVolume(None)
        self._positiveNode = self._negativeNode = self._statisticsTable = None

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self._ensurePromptNodes()
        self.updateGui()

    # ------------------------------------------------------------------ shortcuts
    def _installShortcuts(self):
        self._removeShortcuts()
        for key, method in SHORTCUTS:
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", getattr(self, method))
            self._shortcuts.append(shortcut)

    def _removeShortcuts(self):
        for shortcut in self._shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self._shortcuts = []

    def placePositive(self):
        self.ui.positivePlaceWidget.setPlaceModeEnabled(True)

    def placeNegative(self):
        self.ui.negativePlaceWidget.setPlaceModeEnabled(True)

    # ------------------------------------------------------------------ settings
    def _restoreSettings(self):
        settings = qt.QSettings()
        model = settings.value("SegAnyPET/Model", "demo")
        index = self.ui.modelComboBox.findData(model)
        self.ui.modelComboBox.setCurrentIndex(max(index, 0))
        device = settings.value("SegAnyPET/Device", "auto")
        self.ui.deviceComboBox.setCurrentIndex(DEVICES.index(device) if device in DEVICES else 0)
        self.ui.mirrorCheckBox.checked = slicer.util.toBool(settings.value("SegAnyPET/Mirror", False))
        self.logic.setMirror(self.ui.mirrorCheckBox.checked)
        self.ui.clickedIslandsCheckBox.checked = slicer.util.toBool(settings.value("SegAnyPET/ClickedIslandsOnly", True))
        self.logic.setClickedIslandsOnly(self.ui.clickedIslandsCheckBox.checked)
        self.ui.interiorCropCheckBox.checked = slicer.util.toBool(settings.value("SegAnyPET/InteriorCrop", True))
        self.logic.setInteriorCrop(self.ui.interiorCropCheckBox.checked)
        self.ui.partCheckCheckBox.checked = slicer.util.toBool(settings.value("SegAnyPET/PartCheck", True))
        self.logic.setPartCheck(self.ui.partCheckCheckBox.checked)
        self.ui.contrastEdgeCheckBox.checked = slicer.util.toBool(settings.value("SegAnyPET/ContrastEdge", True))
        self.logic.setContrastEdge(self.ui.contrastEdgeCheckBox.checked)

    def _modelSource(self):
        choice = self.ui.modelComboBox.currentData
        return self.ui.modelPathLineEdit.currentPath if choice == LOCAL_MODEL else choice

    def _device(self):
        return DEVICES[max(self.ui.deviceComboBox.currentIndex, 0)]

    # ------------------------------------------------------------------ inputs and model
    def onInputVolumeChanged(self, node=None):
        if self.runner.running:
            return
        volume = self.ui.inputVolumeSelector.currentNode()
        self.logic.setInputVolume(volume)
        fromDicom = volume is not None and slicer_logic.volumeSuvFactor(volume) is not None
        self.ui.suvFactorSpinBox.enabled = not fromDicom
        if fromDicom:
            self.ui.suvFactorSpinBox.value = 1.0
            self.ui.suvSourceLabel.text = _("The volume holds SUVs (PET DICOM import, real-world value mapping).")
        else:
            self.ui.suvSourceLabel.text = _("SUV = voxel value x factor. Keep 1 if the volume already holds SUVs; for Bq/mL enter the factor of \"seganypet suv\".")
        self.updateGui()

    def onModelChanged(self, *args):
        if self.runner.running:
            return
        choice = self.ui.modelComboBox.currentData
        local = choice == LOCAL_MODEL
        self.ui.modelPathLabel.visible = local
        self.ui.modelPathLineEdit.visible = local
        settings = qt.QSettings()
        settings.setValue("SegAnyPET/Model", choice)
        settings.setValue("SegAnyPET/Device", self._device())
        self.logic.setModel(self._modelSource(), self._device())
        self.updateGui()

    def onMirrorToggled(self, checked):
        if self.runner.running:
            return
        qt.QSettings().setValue("SegAnyPET/Mirror", bool(checked))
        self.logic.setMirror(checked)

    def onClickedIslandsToggled(self, checked):
        if self.runner.running:
            return
        qt.QSettings().setValue("SegAnyPET/ClickedIslandsOnly", bool(checked))
        self.logic.setClickedIslandsOnly(checked)

    def onInteriorCropToggled(self, checked):
        if self.runner.running:
            return
        qt.QSettings().setValue("SegAnyPET/InteriorCrop", bool(checked))
        self.logic.setInteriorCrop(checked)

    def onPartCheckToggled(self, checked):
        if self.runner.running:
            return
        qt.QSettings().setValue("SegAnyPET/PartCheck", bool(checked))
        self.logic.setPartCheck(checked)

    def onContrastEdgeToggled(self, checked):
        if self.runner.running:
            return
        qt.QSettings().setValue("SegAnyPET/ContrastEdge", bool(checked))
        self.logic.setContrastEdge(checked)

    def onLesionToggled(self, checked):
        if self.runner.running:
            return
        self.logic.setLesion(checked)  # a choice per segment, stored with its points, not in the settings

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
        if name not in dict(MODEL_CHOICES) or not ensureDependencies():
            return
        from SegAnyPETLib.checkpoints import download

        tqdmClass = progressTqdmClass(self.runner.report, self.runner.cancelRequested)
        self.ui.statusLabel.text = _("Downloading {model}...").format(model=name)
        self.runner(lambda: download(name, tqdm_class=tqdmClass), self._onDownloaded)

    def _onDownloaded(self, path, error):
        if error is None:
            self.ui.statusLabel.text = _("Model downloaded to {path}.").format(path=path)
        elif isinstance(error, DownloadCancelled):
            self.ui.statusLabel.text = _("Download cancelled.")
        else:
            self.ui.statusLabel.text = _("Download failed: {error}").format(error=error)
            slicer.util.errorDisplay(_("The model could not be downloaded."), detailedText=str(error))

    # ------------------------------------------------------------------ target segment
    def onTargetChanged(self, *args):
        if self._updatingGui or self.runner.running:
            return
        segmentation = self.ui.segmentSelector.currentNode()
        segmentId = self.ui.segmentSelector.currentSegmentID() if segmentation is not None else None
        with slicer.util.tryWithErrorDisplay(_("Cannot use this segment."), show=True):
            self.logic.setTargetSegment(segmentation, segmentId or None)
        self.ui.lesionCheckBox.checked = self.logic.lesion  # a segment's stored points say how it was made
        self.updateGui()

    def _segmentationNode(self):
        """The selected segmentation, or a new one on the PET volume's grid."""
        segmentation = self.ui.segmentSelector.currentNode()
        if segmentation is None:
            segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", _("PET segmentation"))
            segmentation.CreateDefaultDisplayNodes()
            volume = self.ui.inputVolumeSelector.currentNode()
            if volume is not None:
                segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
            self.ui.segmentSelector.setCurrentNode(segmentation)
        return segmentation

    def onAddSegment(self):
        text = self.ui.newSegmentComboBox.currentText.strip()
        index = self.ui.newSegmentComboBox.findText(text)
        name = self.ui.newSegmentComboBox.itemData(index) if index >= 0 else text
        with slicer.util.tryWithErrorDisplay(_("Cannot add the segment."), show=True):
            segmentation = self._segmentationNode()
            segmentId = slicer_logic.addSegment(segmentation, name)
            self.ui.segmentSelector.setCurrentSegmentID(segmentId)
            self.onTargetChanged()

    # ------------------------------------------------------------------ clicks
    def _ensurePromptNodes(self):
        if self._positiveNode is None or self._positiveNode.GetScene() is None:
            self._positiveNode, self._negativeNode = slicer_logic.addPromptNodes()
            self.ui.positivePlaceWidget.setCurrentNode(self._positiveNode)
            self.ui.negativePlaceWidget.setCurrentNode(self._negativeNode)
            self.logic.setPromptNodes(self._positiveNode, self._negativeNode)

    def _onPlaceModeChanged(self, enabled):
        if enabled and not self._readyToClick():
            for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
                placeWidget.setPlaceModeEnabled(False)
        self.updateGui()

    def _readyToClick(self):
        """Before the first click: input, packages, weights and a target segment (created if needed)."""
        if self.ui.inputVolumeSelector.currentNode() is None:
            self.ui.statusLabel.text = _("Choose the PET volume first.")
            return False
        if not ensureDependencies():
            return False
        if not self._modelAvailable():
            if self.ui.modelComboBox.currentData == LOCAL_MODEL:
                self.ui.statusLabel.text = _("Choose a checkpoint file first.")
            else:
                self.ui.statusLabel.text = _("Download the model first (Download button).")
            return False
        if self.logic.targetSegmentId is None:
            self.onAddSegment()
        self._ensurePromptNodes()
        return self.logic.targetSegmentId is not None

    def onUndo(self):
        if self.logic.canUndo:
            with slicer.util.tryWithErrorDisplay(_("Undo failed."), show=True):
                self.logic.undo()
        self.updateGui()

    def onReset(self):
        if self.runner.running or self.logic.targetSegmentId is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Reset failed."), show=True):
            self.logic.reset()
        self.updateGui()

    def onFinish(self):
        if self.runner.running or self.logic.targetSegmentId is None:
            return
        for placeWidget in (self.ui.positivePlaceWidget, self.ui.negativePlaceWidget):
            placeWidget.setPlaceModeEnabled(False)
        finished = self._targetName()
        self.logic.finish()
        combo = self.ui.newSegmentComboBox
        if combo.currentText == finished and combo.currentIndex + 1 < combo.count:
            combo.setCurrentIndex(combo.currentIndex + 1)  # propose the next organ
        self._updatingGui = True
        try:
            self.ui.segmentSelector.setCurrentSegmentID("")
        finally:
            self._updatingGui = False
        self.ui.statusLabel.text = _("Segment accepted. Choose the next name and click again to start a new segment.")
        self.updateGui()

    def onCancel(self):
        self.logic.cancel()
        self.runner.cancel()

    def _showProgress(self, fraction, text):
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = text

    def _onSegmentUpdated(self, timing):
        self.ui.latencyLabel.text = _("Last change: {latency:.0f} ms (image encoder {encoder:.0f} ms, decoder and paste {click:.0f} ms, segment update {write:.0f} ms)").format(
            latency=timing.get("latency_ms", 0.0), encoder=timing.get("encoder_ms", 0.0),
            click=timing.get("click_ms", 0.0), write=timing.get("write_ms", 0.0))
        self.ui.statusLabel.text = _("{count} point(s) on segment {name}.").format(
            count=len(self.logic.prompts), name=self._targetName())
        self.updateGui()

    def _onComputationError(self, error):
        if type(error).__name__ == "Cancelled":
            self.ui.statusLabel.text = _("Cancelled: the last point was removed.")
        elif isinstance(error, SegAnyPETError):
            self.ui.statusLabel.text = _("Point removed: {error}").format(error=error)
        else:
            self.ui.statusLabel.text = _("Prediction failed; the point was removed.")
            slicer.util.errorDisplay(_("SegAnyPET could not predict the segment."), detailedText=f"{type(error).__name__}: {error}")
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
        with slicer.util.tryWithErrorDisplay(_("Statistics failed."), waitCursor=True):
            self._statisticsTable = self.logic.exportStatistics(
                segmentation, volume, csvPath or None, suvFactor=self._suvFactor(), overwrite=True, tableNode=self._statisticsTable)
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
                       self.ui.mirrorCheckBox, self.ui.clickedIslandsCheckBox, self.ui.interiorCropCheckBox,
                       self.ui.partCheckCheckBox, self.ui.contrastEdgeCheckBox, self.ui.lesionCheckBox,
                       self.ui.downloadModelButton, self.ui.segmentSelector, self.ui.addSegmentButton,
                       self.ui.computeStatisticsButton, self.ui.exportStatisticsButton):
            widget.enabled = not busy
        self.ui.positivePlaceWidget.enabled = hasVolume and not busy
        self.ui.negativePlaceWidget.enabled = hasVolume and not busy
        self.ui.undoButton.enabled = self.logic.canUndo
        self.ui.resetButton.enabled = hasTarget and not busy
        self.ui.finishButton.enabled = hasTarget and not busy
        self.ui.progressBar.visible = busy
        self.ui.cancelButton.visible = busy


#
# SegAnyPETLogic
#
class SegAnyPETLogic(ScriptedLoadableModuleLogic, slicer_logic.SegAnyPETLogic):
    """The module logic: :class:`SegAnyPETLib.slicer_logic.SegAnyPETLogic` (usable from Python and
    batch scripts without this module) with Slicer's scripted-module logic services."""

    def __init__(self, model="demo", device="auto"):
        ScriptedLoadableModuleLogic.__init__(self)
        slicer_logic.SegAnyPETLogic.__init__(self, model, device)


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
        negative.AddControlPointWorld(*positive.GetNthControlPointPositionWorld(0))
        self.assertIsNone(logic.lastError)
        logic.undo()
        self.assertEqual(negative.GetNumberOfControlPoints(), 0)
        self.assertTrue(np.array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentIds["kidney_left"], volume), kidney))
        logic.cleanup()
        self.delayDisplay("Test passed")
