"""MRML helpers of the SegAnyPET Slicer logic: prompt point lists, segments, volumes and their geometry.

Imports only ``slicer`` MRML classes, ``vtk``, numpy and SegAnyPETLib (never qt or ctk).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .errors import SegAnyPETError
from .labels import LABELS, color_of, display_name

PROMPTS_TAG = "SegAnyPET.prompts"
PROMPTS_VERSION = 1
ROLE_ATTRIBUTE = "SegAnyPET.promptRole"  # "<name>/positive" or "<name>/negative" on the point lists
LPS_FROM_RAS = np.array([-1.0, -1.0, 1.0])
POSITIVE_COLOR = (0.2, 0.85, 0.2)
NEGATIVE_COLOR = (0.95, 0.2, 0.2)
Prompt = Tuple[Tuple[float, float, float], int]  # (world RAS mm, label 1 positive / 0 negative)
Box = Tuple[slice, slice, slice]  # (z, y, x) slices of a volume's voxel grid


def addPromptNodes(name: str = "SegAnyPET") -> Tuple[Any, Any]:
    """Two point lists for positive (green) and negative (red) clicks, not saved with the scene.

    Lists made earlier under the same ``name`` (a module reload, a second logic) are reused, so the
    scene never holds two pairs. The prompts are saved with the segment (segment tags), so the lists
    are recreated on resume.
    """
    nodes = []
    for role, color in (("positive", POSITIVE_COLOR), ("negative", NEGATIVE_COLOR)):
        key = f"{name}/{role}"
        node = _findNode("vtkMRMLMarkupsFiducialNode", ROLE_ATTRIBUTE, key)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{name} {role}")
            node.SetAttribute(ROLE_ATTRIBUTE, key)
        node.SetSaveWithScene(False)
        node.SetMarkupLabelFormat("")
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetSelectedColor(*color)
            display.SetColor(*color)
            display.SetActiveColor(*color)
            display.SetPointLabelsVisibility(False)
        nodes.append(node)
    return nodes[0], nodes[1]


def _findNode(className: str, attribute: str, value: str):
    scene = slicer.mrmlScene
    for index in range(scene.GetNumberOfNodesByClass(className)):
        node = scene.GetNthNodeByClass(index, className)
        if node.GetAttribute(attribute) == value:
            return node
    return None


def addSegment(segmentationNode, name: str) -> str:
    """Add an empty segment named after a SegAnyPET target (``"kidney_left"``) or free text; returns its ID.

    Known targets get their display name ("kidney left") and standard colour.
    """
    name = name.strip()
    if not name:
        raise SegAnyPETError("a new segment needs a name")
    key = name.replace(" ", "_")
    title = display_name(key) if key in LABELS else name
    color = [c / 255.0 for c in color_of(key)]
    return segmentationNode.GetSegmentation().AddEmptySegment("", title, color)


def segmentLabelValue(name: str) -> Optional[int]:
    """The SegAnyPET label value of a segment named like a target ("kidney left" or "kidney_left")."""
    return LABELS.get(name.strip().replace(" ", "_"))


def volumeSuvFactor(volumeNode) -> Optional[float]:
    """1.0 when the voxels are already SUVs per Slicer's PET DICOM import, else None (unknown).

    The PET DICOM extension's real-world value mapping plugin multiplies the voxels by the RWVM
    slope and records the quantity and units (UCUM ``{SUVbw}g/ml`` ...) on the volume node.
    """
    for entry in (volumeNode.GetVoxelValueUnits(), volumeNode.GetVoxelValueQuantity()):
        if entry is None:
            continue
        text = f"{entry.GetCodeValue() or ''} {entry.GetCodeMeaning() or ''}".lower()
        if "suv" in text or "standardized uptake" in text:
            return 1.0
    return None


def addVolumeFromImage(image, name: str = "PET"):
    """A scalar volume node holding a SimpleITK image (LPS geometry converted to Slicer's RAS)."""
    import SimpleITK as sitk

    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = np.diag(LPS_FROM_RAS) @ direction @ np.diag(image.GetSpacing())
    ijk_to_ras[:3, 3] = LPS_FROM_RAS * np.asarray(image.GetOrigin(), dtype=float)
    return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), ijkToRAS=ijk_to_ras, name=name)


def volumeIjkToRas(volumeNode) -> np.ndarray:
    """The volume's IJK-to-RAS matrix as a 4 x 4 array (voxel (i, j, k) centre -> RAS mm)."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def volumeProblem(volumeNode) -> Optional[str]:
    """Why clicks cannot segment this volume (no image data yet, several components), or None."""
    if volumeNode is None:
        return "choose the input PET volume first"
    image = volumeNode.GetImageData()
    if image is None or min(image.GetDimensions()) < 1 or image.GetPointData().GetScalars() is None:
        return f"volume {volumeNode.GetName()} has no image data yet; load it or choose another volume"
    if image.GetNumberOfScalarComponents() != 1:
        return f"volume {volumeNode.GetName()} has {image.GetNumberOfScalarComponents()} components; choose a single-component PET volume"
    return None


def labelmapFromMask(mask: np.ndarray, ijkToRas: np.ndarray, box: Optional[Box] = None):
    """A binary vtkOrientedImageData (unsigned char) holding a (z, y, x) mask on a volume's grid.

    With ``box`` only that part of the grid is covered (its extent starts at the box's corner) and
    ``mask`` holds the box's voxels.
    """
    mask = np.asarray(mask)
    start = (0, 0, 0) if box is None else tuple(s.start for s in box)  # z, y, x
    image = slicer.vtkOrientedImageData()
    image.SetExtent(start[2], start[2] + mask.shape[2] - 1, start[1], start[1] + mask.shape[1] - 1,
                    start[0], start[0] + mask.shape[0] - 1)
    image.SetGeometryFromImageToWorldMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = (mask > 0).ravel()
    return image


def changedBox(before: Optional[np.ndarray], after: np.ndarray) -> Optional[Box]:
    """The smallest box holding every voxel that differs (``before`` None: the whole grid); None if none."""
    if before is None or before.shape != after.shape:
        return tuple(slice(0, n) for n in after.shape)
    changed = np.asarray(before, dtype=bool) != np.asarray(after, dtype=bool)
    if not changed.any():
        return None
    box = []
    for axis in range(3):
        present = np.flatnonzero(changed.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def worldToVolume(volumeNode) -> np.ndarray:
    """The 4 x 4 matrix from world RAS to the volume's local RAS (refuses non-linear transforms)."""
    matrix = vtk.vtkMatrix4x4()
    if not slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(None, volumeNode.GetParentTransformNode(), matrix):
        raise SegAnyPETError(f"volume {volumeNode.GetName()} is under a non-linear transform; harden it first")
    return slicer.util.arrayFromVTKMatrix(matrix)


def worldToLps(volumeNode, worldRas: Sequence[float]) -> np.ndarray:
    """World RAS millimetres -> the volume's LPS millimetres (what the session takes)."""
    local = worldToVolume(volumeNode) @ np.append(np.asarray(worldRas, dtype=float), 1.0)
    return local[:3] * LPS_FROM_RAS


def lpsToWorld(volumeNode, lps: Sequence[float]) -> Tuple[float, float, float]:
    """The volume's LPS millimetres -> world RAS millimetres."""
    local = np.append(np.asarray(lps, dtype=float) * LPS_FROM_RAS, 1.0)
    return tuple(float(v) for v in (np.linalg.inv(worldToVolume(volumeNode)) @ local)[:3])
