"""Reading, checking, reorienting and writing NIfTI images; the one atomic file writer.

``load_image`` is the one entry point for every input image: it reads the file, checks it
(a readable regular file, 3-D, finite, not empty, plausible voxel sizes, a finite full-rank
affine of plausible scale, consistent qform/sform) and returns it in RAS+ canonical
orientation.  Every problem raises :class:`~spectsynth.errors.InputDataError` naming the
subject, the file and what to do.

:func:`atomic_output` is the one way outputs are written (:func:`write_table`, :func:`write_csv`,
:func:`write_json`, :func:`write_text`, :func:`save_figure` and :func:`save_image` use it, and every
table, text and figure output of the package and its scripts goes through one of these writers;
``tests/test_writers.py`` checks it): a temporary file beside the
target (``.tmp-<token>-<name>``, created with the normal permissions, i.e. 0666 less the
umask), renamed onto the target only when complete.  Temporaries a killed job left for the
same target are removed when it is written again, and a full disk or quota raises
:class:`~spectsynth.errors.OutputWriteError` naming the file, the subject, the space needed
and free, and what to do.
"""

from __future__ import annotations

import csv
import errno
import glob
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import EvaluationError, InputDataError, OutputWriteError

log = logging.getLogger(__name__)

VOXEL_MIN_MM = 0.2
VOXEL_MAX_MM = 10.0
# An image whose header promises more than this is refused before its data is read.
MAX_IMAGE_BYTES = 8 * 2**30


def file_problem(path: str | Path) -> tuple[str, str] | None:
    """``(problem, what to do)`` when ``path`` cannot be an image at all, else ``None``.

    Looks only at the file system entry (no content is read), so BIDS discovery can tell a
    usable file from a missing one, a broken symbolic link, a folder, an empty or an
    unreadable file before the workflow plans its jobs.
    """
    p = Path(path)
    if p.is_symlink() and not p.exists():
        return (f"broken symbolic link (it points to {os.readlink(p)}, which does not exist)",
                "Restore the file it points to, or replace the link by the image itself")
    if not p.exists():
        return ("file does not exist", "Check the input folder and the subject list in the config")
    if not p.is_file():
        return ("not a regular file (a folder or a device)",
                "Put the image file itself at this path")
    if not os.access(p, os.R_OK):
        return ("not readable (permission denied)",
                "Give read permission to the user running the workflow (chmod a+r)")
    if p.stat().st_size == 0:
        return ("empty file (0 bytes)",
                "The file was not written or copied completely: re-export or copy it again")
    return None


def _read(path: Path, subject: str | None) -> nib.Nifti1Image:
    problem = file_problem(path)
    if problem is not None:
        raise InputDataError(problem[0], subject=subject, path=path, hint=problem[1])
    hint = "Re-export or re-convert this image (e.g. with dcm2niix) and run again"
    try:
        img = nib.load(str(path))
        nbytes = int(np.prod(img.shape, dtype=float)) * img.get_data_dtype().itemsize
    except Exception as exc:  # any failure to parse the header means the same to the user
        raise InputDataError(
            f"unreadable: not a NIfTI image, or its header is corrupt ({_reason(exc, path)})",
            subject=subject, path=path, hint=hint) from exc
    if nbytes > MAX_IMAGE_BYTES:
        raise InputDataError(
            f"the header claims shape {img.shape} ({nbytes / 2**30:.0f} GiB); the header is "
            "corrupt or this is not a single image", subject=subject, path=path, hint=hint)
    try:
        # Force a full read so that truncated/corrupt gzip streams fail here, not later.
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputDataError(
            f"unreadable, truncated or corrupt NIfTI ({_reason(exc, path)})",
            subject=subject, path=path, hint=hint) from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        img = nib.Nifti1Image(data, img.affine, header=None)
    return img


def _reason(exc: BaseException, path: Path) -> str:
    """The library's own words for a read failure, with what they usually mean."""
    text = f"{type(exc).__name__}: {exc}".replace(str(path), "").replace("''", "")
    text = " ".join(text.split())          # one line, whatever the library wrote
    if "gzip" in text.lower() and path.name.endswith(".gz"):
        text += "; the name ends in .gz but the content is not gzip-compressed"
    return text


def check_affine(img: nib.Nifti1Image, path: Path, subject: str | None) -> None:
    """Refuse an affine that is not finite, not of full rank or of implausible scale.

    The affine (sform, else qform) maps voxels to millimetres; the voxel sizes it implies
    must lie in the same range as the header's, or every later resampling goes wrong.
    """
    aff = np.asarray(img.affine, dtype=float)
    hint = ("Repair the header (sform/qform) from the scanner's export, e.g. re-convert with "
            "dcm2niix, or reset it with nibabel after checking the voxel sizes")
    if not np.all(np.isfinite(aff)):
        raise InputDataError("the affine (sform/qform) contains NaN or Inf values",
                             subject=subject, path=path, hint=hint)
    rot = aff[:3, :3]
    sizes = np.linalg.norm(rot, axis=0)
    if np.any(sizes == 0) or abs(np.linalg.det(rot)) < 1e-6 * float(np.prod(sizes)):
        raise InputDataError(
            "the affine (sform/qform) is singular: its voxel axes do not span 3-D space, so "
            "the image has no orientation", subject=subject, path=path, hint=hint)
    if np.any(sizes < VOXEL_MIN_MM) or np.any(sizes > VOXEL_MAX_MM):
        raise InputDataError(
            f"the affine (sform/qform) implies voxel sizes {tuple(np.round(sizes, 4))} mm, "
            f"outside {VOXEL_MIN_MM}-{VOXEL_MAX_MM} mm", subject=subject, path=path, hint=hint)


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
    check_affine(img, path, subject)
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


def subject_of_path(path: str | Path) -> str | None:
    """The subject label of an output path (its innermost ``sub-<label>`` folder), if any."""
    for part in reversed(Path(path).parent.parts):
        if part.startswith("sub-"):
            return part.removeprefix("sub-")
    return None


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries an interrupted write of ``path`` left behind; return them.

    Only one job writes a given output at a time (Snakemake, and the lock on the output
    folder), so any temporary of the same target found before a write is stale: what a job
    killed while writing it (SIGKILL, out of memory, wall-time limit) could not clean up.
    """
    path = Path(path)
    name = glob.escape(path.name)
    stale = [Path(p) for pattern in (f".tmp-????????-{name}", f".tmp-{name}")
             for p in glob.glob(str(Path(glob.escape(str(path.parent))) / pattern),
                                include_hidden=True)]
    for p in stale:
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            log.info("removed %s, left by an interrupted earlier write", p)
        except FileNotFoundError:
            pass
    return stale


@contextmanager
def atomic_output(path: str | Path, *, needed_bytes: int | None = None,
                  subject: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary (``.tmp-<token>-<name>``, same suffixes as ``path`` so that libraries pick
    the right format) is created empty with mode 0666 less the umask, so the output gets the
    same permissions as any file the user creates. On an exception the temporary is removed
    and ``path`` is untouched. A full disk or exceeded quota becomes an
    :class:`OutputWriteError` that names the file, the subject (``subject`` or the path's
    ``sub-<label>`` folder), the space needed (``needed_bytes``, else what was written before
    the failure) and free, and what to do.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        written = tmp.stat().st_size if tmp.is_file() else 0
        _cleanup(tmp)
        raise _disk_full(path, exc, needed_bytes or written, needed_bytes is None,
                         subject or subject_of_path(path)) from exc
    finally:
        _cleanup(tmp)


def _cleanup(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
        tmp.unlink()


def _disk_full(path: Path, exc: OSError, needed: int, lower_bound: bool,
               subject: str | None) -> OutputWriteError:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    what = "quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the device"
    need = f"{'at least ' if lower_bound else 'up to '}{_mb(needed)}"
    have = f", {_mb(free)} free in {path.parent}" if free is not None else ""
    return OutputWriteError(
        f"{what} while writing this file (it needs {need}{have})", subject=subject, path=path,
        hint="Free space there (or set output_dir to a larger disk) and run the same command "
             "again: finished outputs are kept and only the unfinished jobs rerun")


def _mb(n: int | float) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 / 10 else f"{int(n)} bytes"


def save_image(img: nib.Nifti1Image, path: str | Path, *, subject: str | None = None) -> Path:
    """Write a NIfTI atomically (see :func:`atomic_output`).

    A killed job therefore never leaves a half-written file that a later run would trust.
    """
    path = Path(path)
    needed = int(np.prod(img.shape)) * img.get_data_dtype().itemsize + 352
    with atomic_output(path, needed_bytes=needed, subject=subject) as tmp:
        if path.name.endswith(".nii.gz") and isinstance(img, nib.Nifti1Image):
            _save_gzipped(img, tmp)
        else:
            nib.save(img, tmp)
    return path


def _save_gzipped(img: nib.Nifti1Image, path: Path) -> None:
    """``nib.save`` for a ``.nii.gz``, compressed by ISA-L instead of zlib.

    The same image bytes in the same gzip format (compression level 1, as nibabel writes); ISA-L's
    level 1 compresses a scan's noisy float voxels to the same size several times faster than
    zlib's (``benchmarks/bench_io.py``). Any gzip reader reads it.
    """
    from isal import igzip

    # no file name and no time in the gzip header: the same image gives the same file
    with open(path, "wb") as raw, igzip.IGzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw,
                                                   mtime=0) as fh:
        img.to_stream(fh)


def write_json(obj, path: str | Path) -> Path:
    """Write JSON atomically with sorted keys and a trailing newline."""
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n",
                      path)


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically (see :func:`atomic_output`)."""
    path = Path(path)
    data = text.encode()
    with atomic_output(path, needed_bytes=len(data)) as tmp:
        tmp.write_bytes(data)
    return path


def write_table(table, path: str | Path, *, what: str, na_rep: str | None = None,
                float_format: str | None = None, allow_missing: bool = False) -> Path:
    """Write a pandas table as TSV (no index) atomically; by default refuse one that holds NaN.

    A missing value in a results table is a statistic that failed silently: unless missing
    values are allowed, the error names ``what`` (the table), its columns with missing values
    and the file.  Tables whose empty cells are legitimate (a truth table's parameters that do
    not apply to a volume) allow them with ``na_rep`` (how they are written, e.g. ``"n/a"``) or
    ``allow_missing=True`` (written as empty cells, pandas' default).  ``float_format`` is
    pandas' (e.g. ``"%.6g"``); ``None`` writes every float with full precision.
    """
    if not (allow_missing or na_rep is not None):
        bad = [c for c in table.columns if table[c].isna().any()]
        if bad:
            raise EvaluationError(f"{what}: columns {bad} hold missing values; refusing to write {path}",
                                  hint="Report the statistic as not computed instead of writing NaN")
    path = Path(path)
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="" if na_rep is None else na_rep,
                     float_format=float_format)
    return path


def write_csv(rows: list[dict], path: str | Path, fields) -> Path:
    """Write rows (dicts) as a comma-separated file with the header ``fields``, atomically."""
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        w.writeheader()
        w.writerows(rows)
    return path


def save_figure(fig, path: str | Path, *, dpi: int = 150, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically (see :func:`atomic_output`) and return the path.

    ``savefig_kwargs`` go to :meth:`~matplotlib.figure.Figure.savefig` as they are
    (``metadata``, ``facecolor``, ``bbox_inches``, ...); ``format`` defaults to the suffix of
    ``path`` (PNG without one), since the temporary's name must not decide it.  The figure is
    left open: closing it (``plt.close``) stays with the caller that made it.  Lives here,
    beside the other writers, so that saving a figure needs no more than matplotlib itself;
    :mod:`spectsynth.plots` re-exports it.
    """
    path = Path(path)
    savefig_kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, **savefig_kwargs)
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
