"""A Slicer slice view without the Slicer application: built from the slicer-core wheel's parts,
driven by synthetic mouse and key events, rendering offscreen to numpy arrays and PNG files.

:class:`SliceView` assembles what ``qMRMLSliceWidget`` assembles, minus Qt: a ``vtkMRMLSliceLogic``
(its slice node, composite node and reslice pipeline), an offscreen render window whose background
actor shows the slice logic's image, the displayable managers that draw segmentations
(``vtkMRMLSegmentationsDisplayableManager2D``), markups (``vtkMRMLMarkupsDisplayableManager``, with
the real markups widgets) and the crosshair, and a ``vtkMRMLSliceViewInteractorStyle`` that passes
interactor events to them. A left click in place mode therefore adds a control point through the
same widget code as in Slicer; pressing on a point and moving drags it.

Rendering is offscreen: without a display server (CI, a headless machine) the EGL render window is
chosen (OSMesa if EGL is missing), so no environment variable has to be set. Used by the tests, the
documentation pictures (``SegAnyPET/Scripts/render_docs_images.py``) and the click benchmark
(:mod:`SegAnyPETLib.slicer_bench`). Imports only ``slicer`` MRML classes, ``vtk`` and numpy.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .errors import SegAnyPETError

DISPLAYABLE_MANAGERS = (
    "vtkMRMLSegmentationsDisplayableManager2D",
    "vtkMRMLMarkupsDisplayableManager",
    "vtkMRMLCrosshairDisplayableManager",
)
_BUTTONS = {
    "left": (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonReleaseEvent),
    "right": (vtk.vtkCommand.RightButtonPressEvent, vtk.vtkCommand.RightButtonReleaseEvent),
    "middle": (vtk.vtkCommand.MiddleButtonPressEvent, vtk.vtkCommand.MiddleButtonReleaseEvent),
}


def offscreenRenderWindow():
    """A render window that draws offscreen: EGL (or OSMesa) where no display server is reachable,
    else the platform's window kept hidden."""
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless:
        import vtkmodules.vtkRenderingOpenGL2 as opengl

        for name in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow"):
            window = getattr(opengl, name, None)
            if window is not None:
                window = window()
                window.SetOffScreenRendering(1)
                return window
        raise SegAnyPETError("offscreen rendering needs VTK with EGL or OSMesa (the vtk wheel has both)")
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.ShowWindowOff()
    return window


def _applicationLogic():
    if hasattr(slicer, "app"):
        return slicer.app.applicationLogic()
    appLogic = getattr(slicer, "headlessApplicationLogic", None)
    if appLogic is None:
        raise SegAnyPETError("call SegAnyPETLib.slicer_headless.headless_slicer() before making a slice view")
    return appLogic


class SliceView:
    """An offscreen slice view on ``slicer.mrmlScene``; see the module docstring.

    Args:
        name: the slice node's layout name (``"Red"``, ``"Yellow"``, ``"Green"``).
        size: width and height in pixels.
        orientation: ``"Axial"``, ``"Sagittal"`` or ``"Coronal"``.
    """

    def __init__(self, name: str = "Red", size: Tuple[int, int] = (400, 400), orientation: str = "Axial") -> None:
        scene = slicer.mrmlScene
        appLogic = _applicationLogic()
        self.applicationLogic = appLogic
        if appLogic.GetSliceLogics() is None:
            appLogic.SetSliceLogics(vtk.vtkCollection())
        self.sliceLogic = slicer.vtkMRMLSliceLogic()
        self.sliceLogic.SetMRMLApplicationLogic(appLogic)
        self.sliceLogic.SetMRMLScene(scene)
        self.sliceNode = self.sliceLogic.AddSliceNode(name)
        appLogic.GetSliceLogics().AddItem(self.sliceLogic)

        self.renderWindow = offscreenRenderWindow()
        self.renderWindow.SetMultiSamples(0)
        self.renderer = vtk.vtkRenderer()
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        self.renderWindow.AddRenderer(self.renderer)
        self._imageMapper = vtk.vtkImageMapper()
        self._imageMapper.SetColorWindow(255)  # the slice logic's output is already RGBA 0-255
        self._imageMapper.SetColorLevel(127.5)
        self._imageActor = vtk.vtkActor2D()
        self._imageActor.SetMapper(self._imageMapper)
        self._imageActor.GetProperty().SetDisplayLocationToBackground()
        self.renderer.AddViewProp(self._imageActor)
        self.interactor = vtk.vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.renderWindow)
        self.interactor.SetInteractorStyle(vtk.vtkInteractorStyleUser())  # as qMRMLSliceView: no camera moves

        factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
        factory.SetMRMLApplicationLogic(appLogic)
        for manager in DISPLAYABLE_MANAGERS:
            if not factory.IsDisplayableManagerRegistered(manager):
                factory.RegisterDisplayableManager(manager)
        self.displayableManagers = slicer.vtkMRMLDisplayableManagerGroup()
        self.displayableManagers.Initialize(factory, self.renderer)
        self.displayableManagers.SetMRMLDisplayableNode(self.sliceNode)
        self.interactorStyle = slicer.vtkMRMLSliceViewInteractorStyle()
        self.interactorStyle.SetDisplayableManagers(self.displayableManagers)
        self.interactorStyle.SetSliceLogic(self.sliceLogic)
        self.interactorStyle.SetInteractor(self.interactor)
        self._observation = self.sliceLogic.AddObserver(vtk.vtkCommand.ModifiedEvent, self._onSliceLogicModified)

        self.sliceNode.SetOrientation(orientation)
        self.resize(*size)
        self._onSliceLogicModified()

    # ------------------------------------------------------------------ what the view shows
    def resize(self, width: int, height: int) -> None:
        self.renderWindow.SetSize(int(width), int(height))
        self.sliceLogic.ResizeSliceNode(int(width), int(height))

    @property
    def size(self) -> Tuple[int, int]:
        return tuple(self.renderWindow.GetSize())

    def setBackground(self, volumeNode, window: Optional[float] = None, level: Optional[float] = None,
                      colorNodeId: Optional[str] = None) -> None:
        """Show ``volumeNode`` (with this window/level and colour table, if given) and fit it to the view."""
        if volumeNode.GetDisplayNode() is None:
            volumeNode.CreateDefaultDisplayNodes()
        display = volumeNode.GetDisplayNode()
        if window is not None and level is not None:
            display.AutoWindowLevelOff()
            display.SetWindowLevel(window, level)
        if colorNodeId:
            display.SetAndObserveColorNodeID(colorNodeId)
        self.sliceLogic.GetSliceCompositeNode().SetBackgroundVolumeID(volumeNode.GetID())
        self.fit()

    def setOrientation(self, orientation: str) -> None:
        self.sliceNode.SetOrientation(orientation)
        self.fit()

    def fit(self) -> None:
        """Fit the background volume to the view (as the view's "fit" button)."""
        self.sliceLogic.FitSliceToBackground()
        self.sliceNode.UpdateMatrices()

    def zoom(self, factor: float, centerRas: Optional[Sequence[float]] = None) -> None:
        """Make the field of view ``factor`` times smaller (``factor`` > 1 zooms in), centred on ``centerRas``."""
        fov = self.sliceNode.GetFieldOfView()
        self.sliceNode.SetFieldOfView(fov[0] / factor, fov[1] / factor, fov[2])
        if centerRas is not None:
            self.sliceNode.SetXYZOrigin(0.0, 0.0, 0.0)
            self.sliceNode.JumpSliceByCentering(*centerRas)
        self.sliceNode.UpdateMatrices()

    def showSliceThrough(self, ras: Sequence[float]) -> None:
        """Move the slice plane (not the view's centre) so it passes through ``ras``."""
        self.sliceNode.JumpSliceByOffsetting(*[float(v) for v in ras])

    def displayPosition(self, ras: Sequence[float]) -> Tuple[int, int]:
        """The view pixel (x right, y up, as VTK's display coordinates) showing ``ras``; the slice plane must hold it."""
        rasToXy = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(self.sliceNode.GetXYToRAS(), rasToXy)
        x, y, z, _ = rasToXy.MultiplyPoint([float(v) for v in ras] + [1.0])
        if abs(z) > 0.5:
            raise SegAnyPETError(f"point {list(ras)} is {z:.1f} mm off the slice plane: call showSliceThrough first")
        width, height = self.size
        if not (0 <= round(x) < width and 0 <= round(y) < height):
            raise SegAnyPETError(f"point {list(ras)} is outside the view (pixel {x:.0f}, {y:.0f})")
        return int(round(x)), int(round(y))

    def rasAt(self, x: float, y: float) -> Tuple[float, float, float]:
        """The RAS position of display position (x, y) (where a click there places a point)."""
        return tuple(self.sliceNode.GetXYToRAS().MultiplyPoint([float(x), float(y), 0.0, 1.0])[:3])

    def setCaption(self, text: str, size: int = 14) -> None:
        """A line of text in the view's upper left corner, as Slicer's corner annotation ("" removes it)."""
        if getattr(self, "_caption", None) is None:
            self._caption = vtk.vtkTextActor()
            self._caption.GetTextProperty().SetColor(1.0, 1.0, 0.6)
            self._caption.GetTextProperty().SetVerticalJustificationToTop()
            self._caption.GetTextProperty().ShadowOn()
            self.renderer.AddViewProp(self._caption)
        self._caption.GetTextProperty().SetFontSize(size)
        self._caption.SetInput(text)
        self._caption.SetDisplayPosition(6, self.size[1] - 6)

    # ------------------------------------------------------------------ place mode (as qSlicerMarkupsPlaceWidget)
    def setPlaceMode(self, markupsNode, persistent: bool = True) -> None:
        """Place points into ``markupsNode`` with each left click, as the markups place widget sets it:
        the active list, place-mode persistence, then the Place interaction mode."""
        slicer.modules.markups.logic().SetActiveList(markupsNode)
        interaction = self.applicationLogic.GetInteractionNode()
        interaction.SetPlaceModePersistence(1 if persistent else 0)
        interaction.SetCurrentInteractionMode(interaction.Place)

    def setViewMode(self) -> None:
        """Leave place mode (clicks select and drag points again)."""
        interaction = self.applicationLogic.GetInteractionNode()
        interaction.SetCurrentInteractionMode(interaction.ViewTransform)

    # ------------------------------------------------------------------ synthetic events
    def _event(self, event: int, x: int, y: int, keySym: str = "", keyCode: int = 0, control: bool = False) -> None:
        if keySym:
            self.interactor.SetEventInformation(int(x), int(y), int(control), 0, chr(keyCode) if keyCode else "\0", 0, keySym)
        else:
            self.interactor.SetEventInformation(int(x), int(y), int(control), 0, "\0", 0)
        self.interactor.InvokeEvent(event)

    def mouseMove(self, x: int, y: int) -> None:
        self._event(vtk.vtkCommand.MouseMoveEvent, x, y)

    def click(self, ras: Sequence[float], button: str = "left") -> Tuple[int, int]:
        """Move the mouse over ``ras`` and click (press and release) there; returns the pixel."""
        x, y = self.displayPosition(ras)
        press, release = _BUTTONS[button]
        self.mouseMove(x, y)
        self._event(press, x, y)
        self._event(release, x, y)
        return x, y

    def drag(self, fromRas: Sequence[float], toRas: Sequence[float], steps: int = 5) -> None:
        """Press the left button over ``fromRas``, move in ``steps`` to ``toRas`` and release there."""
        x0, y0 = self.displayPosition(fromRas)
        x1, y1 = self.displayPosition(toRas)
        self.mouseMove(x0, y0)
        self._event(vtk.vtkCommand.LeftButtonPressEvent, x0, y0)
        for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
            self.mouseMove(round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0)))
        self._event(vtk.vtkCommand.LeftButtonReleaseEvent, x1, y1)

    def pressKey(self, keySym: str, ras: Optional[Sequence[float]] = None, keyCode: int = 0) -> None:
        """Press and release a key with the mouse over ``ras`` (e.g. ``"Delete"`` over a point deletes it)."""
        x, y = self.displayPosition(ras) if ras is not None else (self.size[0] // 2, self.size[1] // 2)
        self.mouseMove(x, y)
        self._event(vtk.vtkCommand.KeyPressEvent, x, y, keySym, keyCode)
        self._event(vtk.vtkCommand.CharEvent, x, y, keySym, keyCode)
        self._event(vtk.vtkCommand.KeyReleaseEvent, x, y, keySym, keyCode)

    # ------------------------------------------------------------------ pixels
    def render(self) -> None:
        self.renderWindow.Render()

    def capture(self) -> np.ndarray:
        """Render and return the view as an (height, width, 3) uint8 RGB array, first row at the top."""
        self.render()
        grabber = vtk.vtkWindowToImageFilter()
        grabber.SetInput(self.renderWindow)
        grabber.ReadFrontBufferOff()
        grabber.SetInputBufferTypeToRGB()
        grabber.Update()
        image = grabber.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def pixel(self, x: int, y: int, image: Optional[np.ndarray] = None) -> np.ndarray:
        """The RGB colour at display pixel (x, y) (y up), of ``image`` or of a new capture."""
        image = self.capture() if image is None else image
        return image[image.shape[0] - 1 - int(y), int(x)]

    def save(self, path, image: Optional[np.ndarray] = None) -> Path:
        """Write the view (or ``image``) as a PNG file."""
        image = self.capture() if image is None else image
        vtkImage = vtk.vtkImageData()
        vtkImage.SetDimensions(image.shape[1], image.shape[0], 1)
        vtkImage.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(image[::-1]).reshape(-1, image.shape[2]), deep=True))
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(path))
        writer.SetInputData(vtkImage)
        writer.Write()
        return Path(path)

    def cleanup(self) -> None:
        """Detach the view from the scene and release its window."""
        self.sliceLogic.RemoveObserver(self._observation)
        self.displayableManagers.SetMRMLDisplayableNode(None)
        collection = self.applicationLogic.GetSliceLogics()
        if collection is not None:
            collection.RemoveItem(self.sliceLogic)
        self.sliceLogic.SetMRMLScene(None)
        self.renderWindow.Finalize()

    def _onSliceLogicModified(self, *args) -> None:
        connection = self.sliceLogic.GetImageDataConnection()
        if connection is not None and self._imageMapper.GetInputConnection(0, 0) is not connection:
            self._imageMapper.SetInputConnection(connection)
