"""Content checksums of a results folder, to show that two runs produced the same results.

A byte checksum (``sha256sum``) of two identical runs differs: gzip headers can carry a
modification time, HDF5 stores object timestamps, PNG files name the software that
wrote them, tables hold timings and absolute paths. :func:`content_digest` therefore hashes
what a file *means*:

========================  ==============================================================
``.nii`` / ``.nii.gz``    shape, on-disk dtype, affine, voxel sizes and the voxel data
``.h5``                   every group and dataset (name, dtype, shape, data) and their
                          attributes, in name order; timing attributes left out
``.pt``                   ``torch.load(weights_only=True)``: every nested tensor (path,
                          dtype, shape, values) in key order, plus the plain values beside
                          them; left out: timing entries (e.g. the checkpoints' ``history``
                          columns ``epoch_seconds``, ``images_per_second``,
                          ``data_wait_share`` and ``data_wait``), ``integrity`` (a SHA-256
                          over everything, timings included) and ``torch_version``
``.tsv`` / ``.csv``       the text, minus the columns whose names say they are timings
                          (``seconds``, ``epoch_seconds``, ``images_per_second``,
                          ``data_wait_share``, ``*_time``, ``duration``, ``*_per_s``, ...:
                          see :data:`TIMING_NAME`)
``.png``                  the decoded pixels (mode, size, bytes); metadata left out
``.json``                 the parsed object, minus keys that are timings or name the
                          machine (``seconds``, ``seconds_total``, ``written_at``, ``host``,
                          ``hostname``, ...), keys sorted
other ``.gz``             the decompressed bytes (the gzip header holds a time stamp)
anything else             the bytes
========================  ==============================================================

In every text value, the results folder's own path (where it stands as a path, not inside a
longer name) is replaced by ``<results>``, so two runs written to different folders compare
equal (tables record the images they came from by absolute path).

:func:`tree_digests` walks a folder and skips what records *how* a run went rather than what
it produced (:data:`DEFAULT_EXCLUDE`): ``logs/``, ``benchmarks/``, ``provenance/`` and
``provenance.json`` (software versions, git commit, machine), ``.snakemake/``,
``tensorboard/`` (event files carry wall-clock times; the same scalars are in
``history.csv``), ``report.html`` (holds the run's date and job times) and hidden files
(the temporary ``.tmp-*`` names of writes in progress).

    spectsynth checksum results -o run1.tsv
    spectsynth checksum other-results --compare run1.tsv
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import TENSORBOARD
from .errors import InputDataError
from .io import write_text

log = logging.getLogger(__name__)

__all__ = ["TIMING_NAME", "DEFAULT_EXCLUDE", "is_timing_name", "content_digest", "digest_method",
           "tree_digests", "write_digests", "read_digests", "compare_digests"]

#: Column, attribute and key names that hold timings (or the machine) by nature.
TIMING_NAME = re.compile(
    r"(^|_)(seconds?|secs?|time|times|timing|timestamp|duration|elapsed|wall|walltime|wallclock|runtime"
    r"|date|datetime|host|hostname)($|_)"
    r"|(^|_)(per_s|per_sec|per_second)$|_at$|^data_wait|^cpu_|^images_per_|^img_per_|^it_per_",
    re.IGNORECASE)

#: Left out of :func:`tree_digests` by default (fnmatch patterns matched against every part
#: of a path relative to the root): records of how a run went, not of what it produced.
DEFAULT_EXCLUDE: tuple[str, ...] = ("logs", "benchmarks", "provenance", "provenance.json", ".snakemake",
                                    TENSORBOARD, "report.html", ".*")

# Entries of a torch checkpoint left out besides the timing ones.
_PT_SKIP = {"integrity", "torch_version"}
_TEXT_SUFFIXES = {".tsv", ".csv", ".json", ".yaml", ".yml", ".txt", ".tfm", ".md", ".rst", ".html", ".log"}
ROOT_TOKEN = "<results>"


def is_timing_name(name: str) -> bool:
    """True when a column, attribute or key name says it holds a timing (see :data:`TIMING_NAME`)."""
    return bool(TIMING_NAME.search(str(name)))


def digest_method(path: str | Path) -> str:
    """How :func:`content_digest` reads this file: nifti, h5, torch, table, png, json, gzip or bytes."""
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    if name.endswith((".pt", ".pth")):
        return "torch"
    if name.endswith((".tsv", ".csv")):
        return "table"
    if name.endswith(".png"):
        return "png"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".gz"):
        return "gzip"
    return "bytes"


class _Roots:
    """Replaces the results folder's path (as given, absolute and resolved) in text by a token,
    where it stands as a path of its own (not inside a longer name)."""

    def __init__(self, root: str | Path | None):
        forms: set[str] = set()
        if root is not None:
            for p in (str(root), os.path.abspath(root), str(Path(root).resolve())):
                p = p.rstrip("/")
                if p and p != ".":
                    forms.add(p)
        # a path with a slash stands alone or starts a longer path; a bare name ("results")
        # only counts where it starts a path ("results/sub-01/..."), not as a word in prose
        parts = [rf"{re.escape(f)}(?=[/\s,;:\"'()\[\]{{}}]|$)" if "/" in f else rf"{re.escape(f)}(?=/)"
                 for f in sorted(forms, key=len, reverse=True)]
        pattern = rf"(?<![\w.\-/])(?:{'|'.join(parts)})"
        self._text = re.compile(pattern) if forms else None
        self._data = re.compile(pattern.encode()) if forms else None

    def text(self, s: str) -> str:
        return self._text.sub(ROOT_TOKEN, s) if self._text is not None else s

    def data(self, b: bytes) -> bytes:
        return self._data.sub(ROOT_TOKEN.encode(), b) if self._data is not None else b


def _update_array(h: Any, a: np.ndarray) -> None:
    a = np.asarray(a)
    h.update(f"{a.dtype.str}{list(a.shape)}".encode())
    if a.dtype.kind == "O":
        h.update(json.dumps([_plain(x) for x in a.reshape(-1)], default=repr).encode())
    else:
        h.update(np.ascontiguousarray(a).tobytes())


def _plain(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, np.generic):
        return x.item()
    return x


def _nifti(path: Path, h: Any) -> None:
    import nibabel as nib

    img = nib.load(str(path))
    hdr = img.header
    h.update(json.dumps({"shape": list(img.shape), "dtype": np.dtype(hdr.get_data_dtype()).str,
                         "zooms": [float(z) for z in hdr.get_zooms()]}).encode())
    h.update(np.asarray(img.affine, dtype=np.float64).tobytes())
    _update_array(h, np.asanyarray(img.dataobj))


def _h5(path: Path, h: Any, roots: _Roots) -> None:
    import h5py

    def attrs(obj) -> None:
        for k in sorted(obj.attrs):
            if is_timing_name(k):
                continue
            v = obj.attrs[k]
            h.update(f"@{k}=".encode())
            if isinstance(v, (str, bytes)):
                h.update(roots.text(_plain(v)).encode())
            else:
                arr = np.asarray(v)
                if arr.dtype.kind in "OSU":
                    h.update(roots.text(json.dumps([_plain(x) for x in arr.reshape(-1)], default=repr)).encode())
                else:
                    _update_array(h, arr)

    def visit(group) -> None:
        attrs(group)
        for name in sorted(group):
            obj = group[name]
            h.update(f"/{obj.name}".encode())
            if isinstance(obj, h5py.Group):
                visit(obj)
            else:
                data = obj[()]
                if isinstance(data, (bytes, str)):
                    h.update(roots.text(_plain(data)).encode())
                else:
                    _update_array(h, np.asarray(data))
                attrs(obj)

    with h5py.File(path, "r") as f:
        visit(f)


def _torch(path: Path, h: Any, roots: _Roots) -> None:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)

    def walk(o: Any, where: str) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"{where}:{t.dtype}{list(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, Mapping):
            for k in sorted(o, key=str):
                if str(k) in _PT_SKIP or is_timing_name(str(k)):
                    continue
                walk(o[k], f"{where}/{k}")
        elif isinstance(o, (list, tuple)):
            h.update(f"{where}:{type(o).__name__}{len(o)}".encode())
            for i, v in enumerate(o):
                walk(v, f"{where}/{i}")
        else:
            if isinstance(o, str):
                o = roots.text(o)
            h.update(f"{where}={json.dumps(_plain(o), default=repr)}".encode())

    walk(obj, "")


def _table(path: Path, h: Any, roots: _Roots) -> None:
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    text = roots.text(path.read_text(encoding="utf-8", errors="surrogateescape"))
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows:
        return
    keep = [i for i, name in enumerate(rows[0]) if not is_timing_name(name)]
    for row in rows:
        h.update(("\x1f".join(row[i] for i in keep if i < len(row)) + "\n").encode("utf-8", "surrogateescape"))


def _png(path: Path, h: Any) -> None:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        h.update(f"{im.mode}{list(im.size)}".encode())
        h.update(im.tobytes())


def _json(path: Path, h: Any, roots: _Roots) -> None:
    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items() if not is_timing_name(k)}
        if isinstance(o, list):
            return [clean(v) for v in o]
        if isinstance(o, str):
            return roots.text(o)
        if isinstance(o, float) and not math.isfinite(o):
            return repr(o)
        return o

    obj = json.loads(path.read_text(encoding="utf-8"))
    h.update(json.dumps(clean(obj), sort_keys=True).encode())


def content_digest(path: str | Path, *, root: str | Path | None = None) -> str:
    """SHA-256 (hex) of what the file holds, not of its bytes (see the module docstring).

    Parameters
    ----------
    path:
        The file.
    root:
        The results folder it belongs to: its path in text values is replaced by
        ``<results>`` so that the same results in two folders give the same digest.

    Raises
    ------
    InputDataError
        When the file cannot be read as what its name says (a truncated ``.nii.gz``, a
        corrupt checkpoint, ...).
    """
    path = Path(path)
    roots = _Roots(root)
    method = digest_method(path)
    h = hashlib.sha256(f"{method}\n".encode())
    try:
        if method == "nifti":
            _nifti(path, h)
        elif method == "h5":
            _h5(path, h, roots)
        elif method == "torch":
            _torch(path, h, roots)
        elif method == "table":
            _table(path, h, roots)
        elif method == "png":
            _png(path, h)
        elif method == "json":
            _json(path, h, roots)
        elif method == "gzip":
            with gzip.open(path, "rb") as fh:
                h.update(roots.data(fh.read()))
        else:
            data = path.read_bytes()
            h.update(roots.data(data) if path.suffix.lower() in _TEXT_SUFFIXES else data)
    except OSError as exc:
        if not path.exists():
            raise
        raise InputDataError(f"unreadable as {method} ({type(exc).__name__}: {str(exc)[:160]})", path=path,
                             hint="It is probably truncated or corrupt; delete it and rerun the job that "
                                  "writes it") from exc
    except Exception as exc:  # parsers raise many types (EOFError, UnpicklingError, ValueError, ...)
        raise InputDataError(f"unreadable as {method} ({type(exc).__name__}: {str(exc)[:160]})", path=path,
                             hint="It is probably truncated or corrupt; delete it and rerun the job that "
                                  "writes it") from exc
    return h.hexdigest()


def _excluded(rel: Path, patterns: Iterable[str]) -> bool:
    parts = rel.parts
    for pat in patterns:
        if fnmatch.fnmatchcase(rel.as_posix(), pat) or any(fnmatch.fnmatchcase(p, pat) for p in parts):
            return True
    return False


def tree_digests(root: str | Path, *, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                 files: Iterable[str] | None = None) -> dict[str, str]:
    """``{relative path: content digest}`` of every file under ``root``, in path order.

    Parameters
    ----------
    root:
        A results folder (``output_dir``).
    exclude:
        fnmatch patterns; a file is skipped when its relative path or any part of it matches
        one (default :data:`DEFAULT_EXCLUDE`; pass ``()`` to hash everything).
    files:
        Only these relative paths (default: every file found).

    A file that cannot be read as what its name says gets ``unreadable:<SHA-256 of its
    bytes>``, so that a comparison reports it instead of stopping.
    """
    root = Path(root)
    patterns = tuple(exclude)
    if files is None:
        rels = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() or p.is_symlink())
    else:
        rels = sorted(Path(f) for f in files)
    out: dict[str, str] = {}
    for rel in rels:
        if _excluded(rel, patterns):
            continue
        path = root / rel
        if not path.is_file():
            continue
        try:
            out[rel.as_posix()] = content_digest(path, root=root)
        except InputDataError as exc:
            log.warning("%s", exc)
            out[rel.as_posix()] = "unreadable:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def write_digests(digests: Mapping[str, str], path: str | Path) -> Path:
    """Write ``path<TAB>method<TAB>digest`` lines (with a header) atomically."""
    lines = ["path\tmethod\tdigest"] + [f"{k}\t{digest_method(k)}\t{v}" for k, v in sorted(digests.items())]
    return write_text("\n".join(lines) + "\n", path)


def read_digests(path: str | Path) -> dict[str, str]:
    """Read a table written by :func:`write_digests` (or by ``spectsynth checksum -o``)."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.open(newline=""), delimiter="\t"))
    except OSError as exc:
        raise InputDataError(f"cannot read the checksum table ({exc.strerror})", path=path,
                             hint="Write one with: spectsynth checksum RESULTS_DIR -o FILE") from exc
    if rows and not {"path", "digest"} <= set(rows[0]):
        raise InputDataError("not a checksum table (columns path and digest expected)", path=path,
                             hint="Write one with: spectsynth checksum RESULTS_DIR -o FILE")
    return {r["path"]: r["digest"] for r in rows}


def compare_digests(a: Mapping[str, str], b: Mapping[str, str]) -> dict[str, list[str]]:
    """``{"differ": [...], "only_a": [...], "only_b": [...], "same": [...]}`` (sorted paths)."""
    return {"differ": sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
            "only_a": sorted(a.keys() - b.keys()),
            "only_b": sorted(b.keys() - a.keys()),
            "same": sorted(k for k in a.keys() & b.keys() if a[k] == b[k])}
