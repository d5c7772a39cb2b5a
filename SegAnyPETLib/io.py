"""File input and output: clear errors on bad files, checked atomic writes, no silent overwrites.

Writes (:func:`atomic_path`, :func:`write_text`, :func:`write_image`) go to a temporary file beside
the target (``.tmp-<random>-<name>``) that is flushed, fsynced and checked (its size; an image is
read back) before it is renamed over the target. Any failure (full disk, file-size limit, no
permission, read-only file system, a parent that is a file) is one :class:`SegAnyPETError`
``cannot write PATH: CAUSE`` and leaves neither a partial file nor the temporary one.
:func:`ensure_writable` refuses, before any work, what a command must not replace.

Reads (:func:`read_image`) refuse an image that ends early or fails its gzip check: ITK reads a
cut NIfTI file without a word, the missing part as zeros.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import re
import stat
import threading
import uuid
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from .errors import SegAnyPETError

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"  # temporary files of atomic writes: TEMP_PREFIX + 12 hex digits + "-" + name
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # formats write_image writes, one file each
PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------ writes
def ensure_writable(path: PathLike, overwrite: bool = False, inputs: Iterable[PathLike] = (), image: bool = False) -> Path:
    """Return ``path`` as a Path if an output may be written there, else raise one clear error.

    Refused whatever ``overwrite`` says: a folder, anything that is not a regular file (a device,
    fifo or socket), any of ``inputs`` (the same file under any name, :func:`os.path.samefile`),
    a path under a file, a folder that cannot be written, and with ``image`` an extension that
    :func:`write_image` does not write. An existing regular file is refused unless ``overwrite``.
    """
    path = Path(path)
    if image:
        check_image_suffix(path)
    try:
        status = path.stat()
    except OSError:  # absent (or under a file: reported below)
        status = None
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            raise SegAnyPETError(f"{path} is a folder, expected a file name")
        if not stat.S_ISREG(status.st_mode):
            raise SegAnyPETError(f"{path} is {_file_kind(status.st_mode)}, not a regular file; outputs replace only regular files")
        for source in inputs:
            if _same_file(path, source):
                raise SegAnyPETError(f"{path} is an input of this command ({source}); write the result to another file")
        if not overwrite:
            raise SegAnyPETError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    _check_folder(path)
    return path


def ensure_writable_folder(folder: PathLike) -> Path:
    """Return ``folder`` as a Path if outputs can be written in it (it need not exist yet), else
    raise one clear error: it is a file, lies under a file, or cannot be written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SegAnyPETError(f"cannot write in {folder}: it is a file, not a folder")
    _check_folder(folder / "output", folder)
    return folder


def check_image_suffix(path: PathLike) -> str:
    """The image format of ``path`` from its extension, or one clear error when write_image has none."""
    name = Path(path).name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    found = "".join(Path(name).suffixes[-2:]) or "no extension"
    raise SegAnyPETError(f"cannot write image {path}: unknown image format ({found}); use {', '.join(IMAGE_SUFFIXES)}")


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _same_file(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_folder(path: Path, shown: Optional[Path] = None) -> None:
    """Refuse a path whose nearest existing ancestor is a file or a folder this user cannot write;
    messages name ``shown`` (default: ``path``)."""
    shown = path if shown is None else shown
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SegAnyPETError(f"cannot write {shown}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
        reason = "is on a read-only file system" if read_only else "is read-only for this user (permission denied)"
        raise SegAnyPETError(f"cannot write {shown}: the folder {folder} {reason}")


def cause_of(error: BaseException) -> str:
    """``strerror (ENAME)`` of an OSError, else the first line of the error."""
    if isinstance(error, OSError) and error.errno:
        return f"{error.strerror or os.strerror(error.errno)} ({errno.errorcode.get(error.errno, error.errno)})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _probe(tmp: Path) -> Optional[OSError]:
    """Why a writer stopped: writing on where it stopped meets the same full disk or size limit."""
    try:
        with open(tmp, "ab") as handle:
            handle.write(b"\0" * (1 << 16))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return error
    return None


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the system can (not on Windows, not every file system)."""
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def atomic_path(
    path: PathLike,
    overwrite: bool = False,
    inputs: Iterable[PathLike] = (),
    check: Optional[Callable[[Path], None]] = None,
) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the block to write; then fsync it, run ``check``
    on it (raise to refuse it) and rename it over ``path``.

    The temporary name keeps the suffixes (``.nii.gz``, ``.pt``), so writers that pick the format
    from the extension work unchanged; a reader never sees a half-written file. An OSError, or a
    writer's RuntimeError, in the block or after it becomes ``SegAnyPETError("cannot write PATH:
    CAUSE")`` (for a writer that hides the OSError, the cause is found by writing on where it
    stopped); the temporary file is always removed. See :func:`ensure_writable` for what is refused.
    """
    path = ensure_writable(path, overwrite, inputs)
    tmp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if not tmp.exists():
            raise SegAnyPETError(f"cannot write {path}: the writer produced no file")
        _fsync(tmp)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as error:
        raise SegAnyPETError(f"cannot write {path}: {cause_of(error)}") from error
    except (RuntimeError, SegAnyPETError) as error:
        if isinstance(error, SegAnyPETError) and not tmp.exists():
            raise  # refused before anything was written
        found = _probe(tmp)
        detail = cause_of(found) if found is not None else cause_of(error)
        raise SegAnyPETError(f"cannot write {path}: {detail}") from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_text(path: PathLike, text: str, overwrite: bool = False, inputs: Iterable[PathLike] = ()) -> Path:
    """Write a UTF-8 text file atomically and checked (see :func:`atomic_path`)."""
    data = text.encode("utf-8")

    def complete(tmp: Path) -> None:
        if tmp.stat().st_size != len(data):
            raise SegAnyPETError(f"{tmp.stat().st_size} of {len(data)} bytes written")

    with atomic_path(path, overwrite, inputs, check=complete) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
    return Path(path)


def write_image(image: sitk.Image, path: PathLike, overwrite: bool = False, inputs: Iterable[PathLike] = ()) -> Path:
    """Write an image atomically, compressed where the format allows, and read it back.

    The format comes from the extension, one of :data:`IMAGE_SUFFIXES`; the file written must be
    complete (:func:`check_complete`) and hold an image of the same size and number of components.
    """
    check_image_suffix(path)

    def same_image(tmp: Path) -> None:
        check_complete(tmp, "image")
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(tmp))
        with native_stderr_to_log():
            reader.ReadImageInformation()
        if reader.GetSize() != image.GetSize() or reader.GetNumberOfComponents() != image.GetNumberOfComponentsPerPixel():
            raise SegAnyPETError(f"the file read back holds an image of size {reader.GetSize()}, not {image.GetSize()}")

    with atomic_path(path, overwrite, inputs, check=same_image) as tmp:
        with native_stderr_to_log():
            sitk.WriteImage(image, str(tmp), useCompression=True)
    return Path(path)


def remove_stale_temporaries(folder: PathLike) -> List[Path]:
    """Delete the temporary files (of :func:`atomic_path`) that killed writers left in ``folder``;
    return their paths."""
    removed = []
    for path in Path(folder).glob(f"{TEMP_PREFIX}*"):
        if path.is_file() and re.fullmatch(rf"{re.escape(TEMP_PREFIX)}[0-9a-f]{{12}}-.+", path.name):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    if removed:
        logger.info("removed %d temporary file(s) of an interrupted write in %s", len(removed), folder)
    return removed


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Send what C/C++ libraries (ITK, NIfTI, teem) print on stderr during the block to the debug
    log, so that a failure reaches the user as one line (Python's own writes to descriptor 2 during
    the block, which these calls make none of, would go there too)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor (e.g. a GUI process)
        yield
        return
    read_end, write_end = os.pipe()
    chunks: list = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")), daemon=True)
    reader.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees the end
        os.close(saved)
        reader.join(timeout=5)
        os.close(read_end)
        text = b"".join(chunks).decode("utf-8", "replace").strip()
        if text:
            logger.debug("native library messages: %s", text)


# ------------------------------------------------------------------------------------------ reads
def check_complete(path: PathLike, what: str = "image") -> None:
    """Refuse an image file that ends early or fails its gzip check (one clear error).

    gzip files are decompressed to their end (the CRC and length checks); NIfTI files must hold
    the bytes their header announces, MetaImage (.mha) files the bytes of their header's size.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    size = _gunzipped_size(path, what) if compressed else path.stat().st_size
    name = path.name.lower()
    expected = None
    if name.endswith((".nii", ".nii.gz")):
        if size < 348:  # the NIfTI-1 header alone
            raise SegAnyPETError(f"{what} {path} ends early: {size} bytes, less than a NIfTI header")
        expected = _nifti_bytes(path)
    elif name.endswith(".mha") and not compressed:
        expected = _metaimage_bytes(path)
    if expected is not None and size < expected:
        raise SegAnyPETError(
            f"{what} {path} ends early: {size} of the {expected} bytes its header announces (a cut copy or download?)"
        )


def _gunzipped_size(path: Path, what: str) -> int:
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                size += len(chunk)
    except EOFError:
        raise SegAnyPETError(f"{what} {path} ends early: its gzip stream is cut off (a cut copy or download?)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise SegAnyPETError(f"{what} {path} fails its gzip check ({cause_of(error)}): the file is corrupt") from None
    return size


def _nifti_bytes(path: Path) -> Optional[int]:
    """Header + voxel bytes announced by a NIfTI header (None when nibabel cannot parse it)."""
    import nibabel

    try:
        proxy = nibabel.load(str(path)).dataobj  # the header's vox_offset, shape and data type
        return int(proxy.offset) + int(np.prod(proxy.shape)) * np.dtype(proxy.dtype).itemsize
    except Exception:  # not a NIfTI file nibabel knows: SimpleITK's reader decides
        return None


_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _metaimage_bytes(path: Path) -> Optional[int]:
    """Header + data bytes of a one-file MetaImage (None when its header is not the usual one)."""
    fields, offset = {}, 0
    with open(path, "rb") as handle:
        for line in iter(handle.readline, b""):
            offset += len(line)
            key, _, value = line.decode("latin-1").partition("=")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile" or offset > 65536:
                break
    if fields.get("ElementDataFile") != "LOCAL":
        return None
    if fields.get("CompressedData", "False") == "True":
        return offset + int(fields["CompressedDataSize"]) if fields.get("CompressedDataSize", "").isdigit() else None
    try:
        count = int(np.prod([int(v) for v in fields["DimSize"].split()]))
        return offset + count * int(fields.get("ElementNumberOfChannels", "1")) * _META_TYPES[fields["ElementType"]]
    except (KeyError, ValueError):
        return None


def read_image(path: PathLike, what: str = "image") -> sitk.Image:
    """Read a NIfTI/NRRD/MHA (anything SimpleITK reads) with one clear error on failure.

    Refuses a missing file, a folder, and a file that ends early or fails its gzip check
    (:func:`check_complete`); NaN and infinite voxels of NIfTI files are kept (see below).
    """
    path = Path(path)
    if not path.exists():
        raise SegAnyPETError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise SegAnyPETError(f"{what} {path} is a folder; for a DICOM series use `seganypet suv` first")
    try:
        check_complete(path, what)
        with native_stderr_to_log():
            image = sitk.ReadImage(str(path))
    except OSError as error:
        raise SegAnyPETError(f"cannot read {what} {path}: {cause_of(error)}") from error
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = lines[-1] if lines else "unknown error"
        if "expected" in reason and "bytes" in reason:  # teem (NRRD): "expected N bytes but received M"
            raise SegAnyPETError(f"{what} {path} ends early ({reason})") from error
        raise SegAnyPETError(f"cannot read {what} {path}: not an image SimpleITK can read ({reason})") from error
    if path.name.lower().endswith((".nii", ".nii.gz")) and image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        image = _restore_non_finite(image, path)
    return image


def check_volume(image: sitk.Image, what: str = "image") -> None:
    """Refuse anything but a 3D image with one value per voxel (2D, 4D, colour or vector images)."""
    if image.GetDimension() == 4:
        raise SegAnyPETError(f"{what} is 4D (size {image.GetSize()}); pick one frame of the dynamic series")
    if image.GetDimension() != 3:
        raise SegAnyPETError(f"{what} is {image.GetDimension()}D (size {image.GetSize()}); a 3D volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SegAnyPETError(
            f"{what} has {image.GetNumberOfComponentsPerPixel()} components per voxel (a colour or vector image); "
            "one value per voxel is needed"
        )


def _restore_non_finite(image: sitk.Image, path: Path) -> sitk.Image:
    """Put back the NaN and infinite voxels that ITK 5's NIfTI reader silently turns into 0
    (fixed in ITK 6), so that the image checks see them instead of a valid intensity of 0."""
    import nibabel

    try:
        stored = np.asanyarray(nibabel.load(str(path)).dataobj)
    except Exception as error:  # nibabel refuses what ITK read: keep ITK's reading
        logger.debug("%s: nibabel cannot read it (%s); NaN voxels are not restored", path, error)
        return image
    non_finite = ~np.isfinite(stored)
    if not non_finite.any():
        return image
    array = sitk.GetArrayFromImage(image)
    array[non_finite.T] = stored.T[non_finite.T]  # nibabel indexes (x, y, z), SimpleITK arrays (z, y, x)
    restored = sitk.GetImageFromArray(array)
    restored.CopyInformation(image)
    return restored
