"""Slicer's MRML scene and module logics without the Slicer application (``pip install slicer-core``).

:func:`headless_slicer` gives ``slicer.mrmlScene`` and ``slicer.modules.<name>.logic()`` for the
Colors, Volumes, Segmentations, Markups and Tables modules, registered on a
``vtkSlicerApplicationLogic`` as the application does, so ``slicer.util`` helpers and
:class:`~SegAnyPETLib.slicer_logic.SegAnyPETLogic` run in tests, batch scripts and notebooks; the
application logic also keeps the slice logics of :class:`~SegAnyPETLib.slice_view.SliceView` (an
offscreen slice view on that scene). Inside Slicer it changes nothing and returns the application's scene.
"""
from __future__ import annotations

import tempfile
import types
from pathlib import Path

from .errors import SegAnyPETError

# Module name in slicer.modules -> (name the application registers the logic under, logic class name)
MODULE_LOGICS = {
    "volumes": ("Volumes", "vtkSlicerVolumesLogic"),
    "segmentations": ("Segmentations", "vtkSlicerSegmentationsModuleLogic"),
    "markups": ("Markups", "vtkSlicerMarkupsLogic"),
    "tables": ("Tables", "vtkSlicerTablesLogic"),
}


def headless_slicer():
    """A fresh MRML scene with Slicer's module logics, installed as ``slicer.mrmlScene``; returns the scene.

    Inside the Slicer application the application's scene is returned unchanged.
    """
    try:
        import slicer
    except ImportError as error:
        raise SegAnyPETError("the Slicer logic needs 3D Slicer or the slicer-core wheel (pip install slicer-core)") from error
    if hasattr(slicer, "app"):
        return slicer.mrmlScene

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    import vtk

    app_logic.SetSliceLogics(vtk.vtkCollection())  # as the application: each slice view adds its slice logic
    # The color logic loads the default color tables from <home>/<share>/ColorFiles; the wheel has
    # none, so point it at an empty folder instead of letting it log an error on every scene.
    home = Path(tempfile.gettempdir()) / "seganypet-slicer-home"
    (home / "share" / "ColorFiles").mkdir(parents=True, exist_ok=True)
    app_logic.SetHomeDirectory(str(home))
    app_logic.SetShareDirectory("share")

    color_logic = slicer.vtkSlicerColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetColorLogic(color_logic)
    app_logic.SetModuleLogic("Colors", color_logic)
    color_logic.SetMRMLScene(scene)  # adds the built-in color tables
    logics = {"colors": color_logic}
    for module, (registered_name, class_name) in MODULE_LOGICS.items():
        logic = getattr(slicer, class_name)()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(registered_name, logic)
        logics[module] = logic

    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        **{name: types.SimpleNamespace(logic=(lambda logic=logic: logic)) for name, logic in logics.items()}
    )
    slicer.headlessApplicationLogic = app_logic  # keeps the application logic alive with the scene
    return scene
