"""Reading, checking, reorienting and writing NIfTI images.

``load_image`` is the one entry point for every input image: it reads the file, checks it
(readable, 3-D, finite, not empty, plausible voxel sizes, consistent qform/sform) and
returns it in RAS+ canonical orientation.  Every problem raises
:class:`~spectsynth.errors.InputDataError` naming the subject, the file and what to do.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import tempfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import InputDataError

log = logging.getLogger(__name__)

VOXEL_MIN_MM = 0.2
VOXEL_MAX_MM = 10.0


def _read(path: Path, subject: str | None) -> nib.Nifti1Image:
    if not path.exists():
        raise InputDataError("file does not exist", subject=subject, path=path,
                             hint="Check the input folder and the subject list in the config")
    try:
        img = nib.load(str(path))
        # Force a full read so that truncated/corrupt gzip streams fail here, not later.
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as exc:
        raise InputDataError(
            f"unreadable, truncated or corrupt NIfTI ({type(exc).__name__}: {exc})",
            subject=subject, path=path,
            hint="Re-export or re-convert this image (e.g. with dcm2niix) and run again",
        ) from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        img = nib.Nifti1Image(data, img.affine, header=None)
    return img


def check_orientation_header(img: nib.Nifti1Image, path: Path, subject: str | None,
                             tol_mm: float = 1e-3) -> None:
    """Refuse images whose qform and sform are both set but disagree.

    Viewers and tools pick different ones, so such a file has no single meaning: the user
    must decide which is right rather than have the pipeline guess.
    """
    hdr = img.header
    qcode = int(hdr["qform_code"])
    scode = int(hdr["sform_code"])
    if qcode > 0 and scode > 0:
        q = hdr.get_qform()
        s = hdr.get_sform()
        if not np.allclose(q, s, atol=tol_mm):
            diff = float(np.abs(q - s).max())
            raise InputDataError(
                f"inconsistent qform and sform (largest difference {diff:.3g}); the orientation "
                "is ambiguous",
                subject=subject, path=path,
                hint="Fix the header (e.g. `fslorient -copysform2qform` or nibabel "
                     "set_qform(img.get_sform())) after checking which one is right",
            )
    if qcode == 0 and scode == 0:
        log.warning("%s: neither qform nor sform is set; using the voxel sizes only", path)


def load_image(path: str | Path, *, subject: str | None = None, allow_4d: bool = False,
               reorient: bool = True, check_values: bool = True,
               volume: int | None = None) -> nib.Nifti1Image:
    """Read, validate and (by default) reorient an input image to RAS+.

    Parameters
    ----------
    allow_4d:
        When True a 4-D image is reduced to its first volume with a warning; otherwise it is
        an error.
    check_values:
        Check for NaN/Inf and all-zero images.
    volume:
        Take this volume of a 4-D stack (the simulator's outputs are stacks); an index
        outside the stack is an error.
    """
    path = Path(path)
    img = _read(path, subject)
    shape = img.shape
    if volume is not None:
        n = shape[3] if len(shape) == 4 else 1
        if not 0 <= volume < n:
            raise InputDataError(f"volume {volume} requested from an image with {n} volume(s)",
                                 subject=subject, path=path,
                                 hint="The stack is shorter than its truth table: rerun the step "
                                      "that wrote it")
        img = img.slicer[..., volume] if len(shape) == 4 else img
        shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
    elif len(shape) == 4:
        if not allow_4d:
            raise InputDataError(
                f"4-D image with {shape[3]} volumes (shape {shape}); a 3-D image is expected",
                subject=subject, path=path,
                hint="Average or select one frame, or set inputs.allow_4d: true to use the "
                     "first volume",
            )
        log.warning("subject %s: %s is 4-D (%d volumes); using the first volume",
                    subject, path, shape[3])
        img = img.slicer[..., 0]
    elif len(shape) != 3:
        raise InputDataError(f"{len(shape)}-D image (shape {shape}); a 3-D image is expected",
                             subject=subject, path=path,
                             hint="Provide a single 3-D volume")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if np.any(zooms < VOXEL_MIN_MM) or np.any(zooms > VOXEL_MAX_MM):
        raise InputDataError(
            f"voxel size {tuple(np.round(zooms, 3))} mm is outside {VOXEL_MIN_MM}-{VOXEL_MAX_MM} mm",
            subject=subject, path=path,
            hint="Check the header's pixdim (the file may be in cm or have a broken header)",
        )
    check_orientation_header(img, path, subject)
    if check_values:
        data = np.asanyarray(img.dataobj)
        if data.dtype.kind == "f":
            n_bad = int(np.count_nonzero(~np.isfinite(data)))
            if n_bad:
                raise InputDataError(
                    f"{n_bad} NaN or Inf voxels", subject=subject, path=path,
                    hint="Replace them (e.g. with 0) or re-export the image",
                )
        if not np.any(data):
            raise InputDataError("image is all zeros", subject=subject, path=path,
                                 hint="The file holds no signal; re-export or remove this subject")
    if reorient:
        img = nib.as_closest_canonical(img)
    return img


def load_stack_volume(path: str | Path, volume: int, *, subject: str | None = None,
                      reorient: bool = True) -> nib.Nifti1Image:
    """Volume ``volume`` of a 4-D stack, validated like :func:`load_image`."""
    return load_image(path, subject=subject, reorient=reorient, volume=volume)


def save_image(img: nib.Nifti1Image, path: str | Path) -> Path:
    """Write a NIfTI atomically (temporary file in the same folder, then rename).

    A killed job therefore never leaves a half-written file that a later run would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".nii.gz"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(obj, path: str | Path) -> Path:
    """Write JSON atomically with sorted keys and a trailing newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def image_like(data: np.ndarray, ref: nib.Nifti1Image, dtype=None) -> nib.Nifti1Image:
    """A new NIfTI with ``data`` on the grid (affine) of ``ref``, qform = sform."""
    arr = np.asarray(data, dtype=dtype) if dtype is not None else np.asarray(data)
    out = nib.Nifti1Image(arr, ref.affine)
    out.set_qform(ref.affine, code=1)
    out.set_sform(ref.affine, code=1)
    return out
