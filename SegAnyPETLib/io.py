"""File input and output: clear errors on bad files, atomic writes, no silent overwrites."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from .errors import SegAnyPETError


def ensure_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path; refuse an existing file unless ``overwrite`` is set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SegAnyPETError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    if path.is_dir():
        raise SegAnyPETError(f"{path} is a folder, expected a file name")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary name keeps the suffixes (``.nii.gz``, ``.pt``), so writers that pick the format
    from the extension work unchanged. A reader never sees a half-written file.
    """
    path = ensure_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """Write a text file atomically."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_image(path: str | os.PathLike, what: str = "image") -> sitk.Image:
    """Read a NIfTI/NRRD/MHA (anything SimpleITK reads) with one clear error on failure."""
    path = Path(path)
    if not path.exists():
        raise SegAnyPETError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise SegAnyPETError(f"{what} {path} is a folder; for a DICOM series use `seganypet suv` first")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise SegAnyPETError(f"cannot read {what} {path}: not an image SimpleITK can read ({first_line})") from error
    if path.name.lower().endswith((".nii", ".nii.gz")) and image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        image = _restore_non_finite(image, path)
    return image


def _restore_non_finite(image: sitk.Image, path: Path) -> sitk.Image:
    """Put back the NaN and infinite voxels that ITK 5's NIfTI reader silently turns into 0
    (fixed in ITK 6), so that the image checks see them instead of a valid intensity of 0."""
    import nibabel

    stored = np.asanyarray(nibabel.load(str(path)).dataobj)
    non_finite = ~np.isfinite(stored)
    if not non_finite.any():
        return image
    array = sitk.GetArrayFromImage(image)
    array[non_finite.T] = stored.T[non_finite.T]  # nibabel indexes (x, y, z), SimpleITK arrays (z, y, x)
    restored = sitk.GetImageFromArray(array)
    restored.CopyInformation(image)
    return restored


def write_image(image: sitk.Image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write an image atomically, compressed where the format allows."""
    with atomic_path(path, overwrite) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return Path(path)
