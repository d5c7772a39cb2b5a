"""Write small synthetic PET DICOM series with pydicom, for the SUV tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PositronEmissionTomographyImageStorage, generate_uid

BASE_HEADER: Dict[str, Any] = {
    "Modality": "PT",
    "Manufacturer": "Test",
    "PatientWeight": "70",
    "PatientSize": "1.75",
    "PatientSex": "M",
    "SeriesDate": "20250101",
    "SeriesTime": "110000",
    "AcquisitionDate": "20250101",
    "AcquisitionTime": "110000",
    "Units": "BQML",
    "DecayCorrection": "START",
    "CorrectedImage": ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"],
    "ActualFrameDuration": "300000",
}
BASE_RADIOPHARMACEUTICAL: Dict[str, Any] = {
    "RadiopharmaceuticalStartDateTime": "20250101100000",
    "RadiopharmaceuticalStartTime": "100000",
    "RadionuclideTotalDose": "370000000",
    "RadionuclideHalfLife": "6586.2",
}


def write_pet_series(
    folder: Path,
    values: np.ndarray,
    *,
    header: Optional[Mapping[str, Any]] = None,
    radiopharmaceutical: Optional[Mapping[str, Any]] = None,
    per_slice: Optional[Mapping[str, Sequence[Any]]] = None,
    private: Optional[Mapping[Tuple[int, int], Tuple[str, Any]]] = None,
    spacing: Tuple[float, float, float] = (4.0, 4.0, 4.0),
    origin: Tuple[float, float, float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    series_uid: Optional[str] = None,
    reverse_file_names: bool = False,
) -> np.ndarray:
    """Write ``values`` (z, y, x) as one int16 file per slice; return the per-slice RescaleSlope.

    ``header`` entries replace :data:`BASE_HEADER` ones (value None removes the tag), likewise
    ``radiopharmaceutical``; ``per_slice`` gives one value per slice; ``private`` adds
    ``(group, element): (VR, value)``. Slices are placed along the orientation's normal.
    """
    folder.mkdir(parents=True, exist_ok=True)
    values = np.asarray(values, dtype=np.float64)
    tags = {**BASE_HEADER, **(header or {})}
    drug = {**BASE_RADIOPHARMACEUTICAL, **(radiopharmaceutical or {})}
    series_uid = series_uid or generate_uid()
    row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, column)
    slopes = np.maximum(np.abs(values).reshape(len(values), -1).max(axis=1), 1e-12) / 30000.0
    count = len(values)
    for index, plane in enumerate(values):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = PositronEmissionTomographyImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = "1.2.3.4"
        ds.InstanceNumber = index + 1
        for keyword, value in tags.items():
            if value is not None:
                setattr(ds, keyword, value)
        for keyword, value_list in (per_slice or {}).items():
            setattr(ds, keyword, value_list[index])
        item = pydicom.Dataset()
        for keyword, value in drug.items():
            if value is not None:
                setattr(item, keyword, value)
        ds.RadiopharmaceuticalInformationSequence = [item]
        for tag, (vr, value) in (private or {}).items():
            ds.add_new(tag, vr, value)
        position = np.asarray(origin, float) + index * spacing[2] * normal
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
        ds.SliceThickness = f"{spacing[2]:g}"
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = f"{slopes[index]:.10g}"
        ds.RescaleIntercept = "0"
        stored = np.round(plane / float(ds.RescaleSlope)).astype(np.int16)
        ds.PixelData = stored.tobytes()
        name = count - 1 - index if reverse_file_names else index
        ds.save_as(folder / f"slice_{name:03d}.dcm", enforce_file_format=True)
    return np.array([float(f"{s:.10g}") for s in slopes])
