"""SUV statistics of every segment of a segmentation as a ``vtkMRMLTableNode`` (and a CSV file).

The columns are those of ``seganypet stats`` (:data:`SegAnyPETLib.stats.COLUMNS`). Imports only
``slicer`` MRML classes, ``vtk``, numpy and SegAnyPETLib.
"""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import numpy as np
import slicer
import vtk

from .errors import SegAnyPETError
from .slicer_nodes import segmentLabelValue, volumeIjkToRas, volumeSuvFactor

logger = logging.getLogger(__name__)


def exportStatistics(segmentationNode, volumeNode, csvPath: Optional[str] = None, suvFactor: Optional[float] = None,
                     overwrite: bool = False, tableNode=None):
    """SUV statistics of every segment as a ``vtkMRMLTableNode`` (and a CSV file when ``csvPath``).

    Columns are those of ``seganypet stats`` (``segment``, ``volume [mL]``, ``SUVmax [g/mL]``,
    ``SUVmean [g/mL]``, ``SUVpeak [g/mL]`` ...). The voxels are multiplied by ``suvFactor``; without
    it, 1.0 (the voxels are SUVs, as after Slicer's PET DICOM import with real-world value mapping,
    :func:`~SegAnyPETLib.slicer_nodes.volumeSuvFactor`). ``tableNode``: a table to fill again.
    """
    from .stats import COLUMNS, geometry_from_ijk_to_ras, segment_statistics, write_statistics_csv

    factor, source = suvFactorFor(volumeNode, suvFactor)
    segmentation = segmentationNode.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise SegAnyPETError(f"segmentation {segmentationNode.GetName()} has no segments")
    names = [segmentation.GetSegment(i).GetName() for i in ids]
    if len(set(names)) != len(names):
        raise SegAnyPETError(f"segmentation {segmentationNode.GetName()} has several segments with the same name; rename them")
    masks = {name: slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, i, volumeNode) for i, name in zip(ids, names)}
    labels = {name: value for name in names if (value := segmentLabelValue(name)) is not None}
    spacing, origin, direction = geometry_from_ijk_to_ras(volumeIjkToRas(volumeNode))
    rows = segment_statistics(slicer.util.arrayFromVolume(volumeNode), masks, spacing, origin, direction, factor, labels)
    if tableNode is None or tableNode.GetScene() is None:
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"{segmentationNode.GetName()} SUV statistics")
    table = tableNode.GetTable()
    table.Initialize()
    values = [row.as_row() for row in rows]
    for column in COLUMNS:
        cells = [v[column] for v in values]
        if column in ("segment", "SUVpeak definition"):
            array = vtk.vtkStringArray()
            for cell in cells:
                array.InsertNextValue("" if cell is None else str(cell))
        else:
            array = vtk.vtkDoubleArray()
            for cell in cells:
                array.InsertNextValue(np.nan if cell is None else float(cell))
        array.SetName(column)
        table.AddColumn(array)
    tableNode.SetUseColumnNameAsColumnHeader(True)
    tableNode.SetAttribute("SegAnyPET.suvFactor", repr(factor))
    tableNode.SetAttribute("SegAnyPET.suvFactorSource", source)
    tableNode.Modified()
    if csvPath:
        write_statistics_csv(rows, csvPath, overwrite)
    return tableNode


def suvFactorFor(volumeNode, suvFactor: Optional[float] = None) -> Tuple[float, str]:
    """The factor from voxels to SUV and where it came from (user, DICOM import, or assumed)."""
    if suvFactor is not None:
        if not np.isfinite(suvFactor) or suvFactor <= 0:
            raise SegAnyPETError(f"the SUV factor must be a positive number, got {suvFactor}")
        return float(suvFactor), "user"
    if volumeSuvFactor(volumeNode) is not None:
        return 1.0, "DICOM real-world value mapping"
    logger.info("volume %s has no SUV units: its voxels are taken as SUVs", volumeNode.GetName())
    return 1.0, "assumed (voxels are SUVs)"
