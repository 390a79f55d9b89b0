"""2-D slice datasets of the four studies: extraction, subject splits, shards, augmentation.

Slices
------
Volumes come in RAS+ orientation (x: left -> right, y: posterior -> anterior, z: inferior ->
superior).  An *axial slice* is ``volume[:, :, z]``; it is stored as a 2-D image whose rows
run anterior -> posterior (row 0 = anterior) and whose columns run from the subject's left to
right (RAS x ascending), i.e. the neurological convention nilearn shows.  So the subject's
left hemisphere is ``image[:, :W // 2]`` (:data:`LEFT_HALF`), "anterior-posterior" shifts move
rows, and a "horizontal flip" mirrors columns.

Each slice is zero-padded to a square (centred) and resized to ``size`` px with
``skimage.transform.resize(order=1, anti_aliasing=True)``: bilinear interpolation after a
Gaussian anti-aliasing filter when shrinking, which keeps mean counts (S1's MC) unbiased.

Normalisation (one affine map per slice and channel, ``x_norm = x * gain + bias``; gain and
bias go into the index table so raw values can be recovered):

* ``max`` (S1): divided by the slice maximum -> [0, 1];
* ``minmax_pm1`` (S2): min..max -> (-1, 1);
* ``max_pm1`` (S3): 0..max -> (-1, 1), keeping zero at -1 so CBF ratios survive;
* ``background`` (S0): the damaged and original slice are both divided by the brain
  background of the *damaged* slice (median of its voxels above 10 % of its maximum), so
  background ~ 1 and striatum ~ 1 + binding ratio in both, and the scale is computable from
  the input alone (as at inference on a patient).

Storage
-------
HDF5 (h5py): one shard per split (``train.h5``, ``val.h5``, ``test.h5``) with ``images``
(N, C, H, W) float32 stored in one chunk per slice (LZF-compressed), ``level`` / ``pattern``
codes and the index-table ``row`` of each slice, plus one ``index.tsv`` for the whole dataset.
HDF5 rather than npz or zarr because a shard is one file (cluster file systems handle
thousands of small zarr chunk files badly), rows are read at random without loading the
shard (npz must be loaded whole unless uncompressed), it is typed and self-describing
(channel names, normalisation and a content hash travel as attributes), h5py is already a
dependency, and it is readable from any language.  Small shards are read into memory once.

Splits and designs
------------------
By subject, deterministic (seeded shuffle of the sorted subject list), cut by explicit subject
numbers (``method: counts``, checked against the cohort size), by fractions, or by explicit
lists.  Which records and how many slices each split holds is the study's published design,
decided by :func:`spectsynth.design.dataset_design` from the configuration alone (S0: the
simulator's main / validation degradation sets; S1: Table 1's slices per level x pattern; S2,
S3: ``n_slices`` per subject); :func:`build_dataset` builds it and stops when the result
differs, and ``spectsynth plan`` prints it.  :func:`check_split_leak` stops the run when a
subject appears in two splits (or, with S0's ``val_within_train``, when a source slice does).

Augmentation
------------
Drawn from ``numpy.random.default_rng([seed, epoch, index])``: every epoch and slice has its
own stream, independent of worker processes and of where a run was resumed, so a resumed
run sees exactly the data an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .design import NORMALISATIONS, check_built, dataset_design, dataset_spec, sample_cells  # noqa: F401
from .errors import ConfigError, InputDataError
from .io import atomic_output, write_table
from .labels import LEVELS, PATTERNS
from .splits import SPLITS, assign_splits, check_split_leak, participant, study_split_seed  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LEFT_HALF = "image[..., :W // 2] is the subject's left hemisphere (neurological convention)"

# Layout of the shards and index tables this code writes. The workflow passes it to
# build_dataset as a param, so raising it (when a column or a shard field is added or changes
# meaning) makes Snakemake rebuild existing datasets and rerun what reads them.
# 2: S0 index columns sbr_<region> / orig_sbr_<region> (known SBR of damaged slice and original).
# 3: the published designs (spectsynth.design): S0 splits by degradation set, S1 sampled to
#    datasets.s1.counts, S2 reads the brain-extracted T1w.
# 4: S2 and S3 store the T1w brain mask as channel ``brain`` and choose their slices from it.
INDEX_VERSION = 4



# --------------------------------------------------------------------------- config


# --------------------------------------------------------------------------- slices


def axial_slice(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice ``z`` of a RAS volume as an image (rows anterior->posterior, cols left->right)."""
    return np.ascontiguousarray(volume[:, :, z].T[::-1, :])


def shard_to_ras(images: np.ndarray) -> np.ndarray:
    """Stored slices ``(..., H, W)`` (row 0 anterior, columns left -> right) -> RAS ``(..., x, y)``."""
    arr = np.asarray(images)
    return np.ascontiguousarray(np.swapaxes(arr[..., ::-1, :], -1, -2))


def pad_square(image: np.ndarray) -> np.ndarray:
    """Zero-pad a 2-D image to a square, centred."""
    h, w = image.shape
    n = max(h, w)
    top, left = (n - h) // 2, (n - w) // 2
    out = np.zeros((n, n), dtype=np.float32)
    out[top:top + h, left:left + w] = image
    return out


def resize_slice(image: np.ndarray, size: int) -> np.ndarray:
    """Pad to square and resize to ``size`` x ``size`` (bilinear, anti-aliased when shrinking)."""
    from skimage.transform import resize  # imported here: the Snakefile imports this module

    sq = pad_square(np.asarray(image, dtype=np.float32))
    if sq.shape[0] == size:
        return sq
    return resize(sq, (size, size), order=1, anti_aliasing=sq.shape[0] > size,
                  preserve_range=True, mode="constant").astype(np.float32)


def background_level(image: np.ndarray, fraction: float = 0.1) -> float:
    """Brain background of a DaT slice: median of the voxels above ``fraction`` of the maximum."""
    mx = float(image.max())
    if mx <= 0:
        return 0.0
    return float(np.median(image[image > fraction * mx]))


def normalise_gain_bias(image: np.ndarray, method: str, *, reference: float | None = None
                        ) -> tuple[float, float]:
    """Affine normalisation ``x * gain + bias`` of one slice (see the module docstring).

    A slice with no signal (max <= 0, or max == min) gets gain 0 and the lower bound of the
    range as bias, so it stays finite.
    """
    mx = float(image.max())
    mn = float(image.min())
    if method == "max":
        return (1.0 / mx, 0.0) if mx > 0 else (0.0, 0.0)
    if method == "max_pm1":
        return (2.0 / mx, -1.0) if mx > 0 else (0.0, -1.0)
    if method == "minmax_pm1":
        if mx > mn:
            return 2.0 / (mx - mn), -1.0 - 2.0 * mn / (mx - mn)
        return 0.0, -1.0
    if method == "background":
        bkg = background_level(image) if reference is None else reference
        return (1.0 / bkg, 0.0) if bkg > 0 else (0.0, 0.0)
    raise ValueError(f"unknown normalisation {method!r}")


def _load(value: Any) -> np.ndarray:
    arr = value() if callable(value) else value
    return np.asarray(arr, dtype=np.float32)


def _volumes(rec: Mapping, roles: Sequence[str], dataset: str) -> dict[str, np.ndarray]:
    subject = str(rec.get("subject"))
    vols = rec.get("volumes") or {}
    missing = [r for r in roles if r not in vols]
    if missing:
        raise InputDataError(f"record for dataset {dataset} lacks the volume(s) {missing} "
                             f"(has {sorted(vols)})", subject=subject, path=_source_of(rec, missing[0]),
                             hint="Check that the simulation wrote every image this study needs")
    out = {r: _load(vols[r]) for r in roles}
    shapes = {r: v.shape for r, v in out.items()}
    if any(v.ndim != 3 for v in out.values()) or len(set(shapes.values())) != 1:
        raise InputDataError(f"volumes of dataset {dataset} must be 3-D and on one grid, got {shapes}",
                             subject=subject, path=_source_of(rec, roles[0]),
                             hint="Resample them to one grid (the simulator writes them so)")
    for r, v in out.items():
        if not np.all(np.isfinite(v)):
            raise InputDataError(f"volume {r!r} has NaN/Inf values", subject=subject,
                                 path=_source_of(rec, r), hint="Re-run the simulation of this subject")
    return out


def _source_of(rec: Mapping, role: str) -> str:
    src = rec.get("source")
    if isinstance(src, Mapping):
        return str(src.get(role, ""))
    return str(src or "")


def evenly(lo: int, hi: int, n: int) -> list[int]:
    """``n`` evenly spaced integers in [lo, hi] (fewer if the range is shorter)."""
    if hi < lo:
        return []
    if n <= 1:
        return [int(round((lo + hi) / 2))]
    return sorted({int(round(v)) for v in np.linspace(lo, hi, n)})


def level_range(rec: Mapping, level: str, nz: int, dataset: str) -> tuple[int, int]:
    levels = rec.get("levels") or {}
    if level not in levels:
        raise InputDataError(f"no {level} level in the levels table (has {sorted(levels)})",
                             subject=str(rec.get("subject")), path=_source_of(rec, "levels"),
                             hint=f"Dataset {dataset} needs z ranges for {', '.join(LEVELS)}")
    z0, z1 = (int(v) for v in levels[level])
    if not (0 <= z0 < z1 <= nz):
        raise InputDataError(f"{level} level z range [{z0}, {z1}) is empty or outside 0..{nz}",
                             subject=str(rec.get("subject")), path=_source_of(rec, "levels"),
                             hint="Fix the levels table (z_start < z_stop, half-open)")
    return z0, z1


def _extent(volume: np.ndarray, threshold: float) -> tuple[int, int]:
    prof = volume.reshape(-1, volume.shape[2]).max(axis=0)
    mx = float(prof.max())
    idx = np.flatnonzero(prof > threshold * mx) if mx > 0 else np.array([], int)
    return (int(idx[0]), int(idx[-1])) if idx.size else (0, -1)


def _params_of(rec: Mapping) -> dict[str, Any]:
    return {str(k): v for k, v in (rec.get("params") or {}).items()}


def extract_slices(study, records: Iterable[Mapping], spec: Mapping) -> tuple[np.ndarray, list[dict]]:
    """Cut, resize and normalise the slices of one dataset.

    Returns ``images`` (N, C, size, size) float32 with the study's ``channels`` and one metadata
    dict per slice (subject, level, pattern, params, source, slice index, gain and bias per
    channel). How slices are cut from a record is the study's (:meth:`Study.extract`; S2 and S3
    use :func:`paired_slices`).  ``study``: the dataset's :class:`~spectsynth.studies.base.Study`.
    """
    st = study
    size = int(spec["size"])
    name = spec.get("name", study.key)
    images: list[np.ndarray] = []
    rows: list[dict] = []
    for rec_i, rec in enumerate(records):
        subject = str(rec.get("subject", ""))
        if not subject:
            raise InputDataError(f"record {rec_i} of dataset {name} has no subject id",
                                 hint="Give every record a 'subject' key")
        if not st.keeps_record(rec, spec):
            continue
        vols = _volumes(rec, st.roles, name)
        nz = next(iter(vols.values())).shape[2]
        base = {"subject": subject, "record": rec_i, "pattern": rec.get("pattern") or "",
                "level": "", "space": rec.get("space") or spec.get("space") or "",
                "source": _source_of(rec, target_role(st)), "n_z": nz, **_params_of(rec)}
        for image, row in st.extract(rec, vols, base, spec):
            images.append(image)
            rows.append(row)
    n_ch = len(st.channels)
    arr = np.stack(images).astype(np.float32) if images else np.zeros((0, n_ch, size, size), np.float32)
    return arr, rows


BRAIN_CHANNEL = "brain"   # a paired study's T1w brain mask: chooses slices, masks metrics, never a model input


def target_role(study) -> str:
    """The target role of a paired study: its last role that is not the brain mask."""
    return [r for r in study.roles if r != BRAIN_CHANNEL][-1]


def brain_profile(mask: np.ndarray) -> np.ndarray:
    """Brain cross-section of every axial slice of a 3-D mask, as a fraction of the slice's pixels."""
    m = np.asarray(mask, dtype=np.float64) > 0.5
    return m.reshape(-1, m.shape[2]).mean(axis=0)


def input_slice_range(vols: Mapping[str, np.ndarray], inputs: Sequence[str], threshold: float) -> tuple[int, int]:
    """The z range from which a paired dataset draws its slices, chosen from the input side only.

    With a brain mask (:data:`BRAIN_CHANNEL`): the slices whose brain cross-section is at least
    ``threshold`` of the largest one; without one: the slices where every input channel's
    maximum exceeds ``threshold`` of that channel's volume maximum.  The target never takes
    part, so a model is never scored on slices picked by what it must predict.
    """
    if BRAIN_CHANNEL in vols:
        prof = brain_profile(vols[BRAIN_CHANNEL])
        mx = float(prof.max())
        idx = np.flatnonzero(prof >= threshold * mx) if mx > 0 else np.array([], int)
        return (int(idx[0]), int(idx[-1])) if idx.size else (0, -1)
    ranges = [_extent(vols[r], threshold) for r in inputs]
    return max(r[0] for r in ranges), min(r[1] for r in ranges)


def paired_slices(study, rec: Mapping, vols: Mapping[str, np.ndarray], base: Mapping, spec: Mapping):
    """Slices of a paired record (input and target volumes on one grid): ``n_slices`` axial slices
    evenly spaced over the input's brain extent (:func:`input_slice_range`), every image channel
    normalised on its own; the brain mask channel, when the study has one, is stored as its
    resized mask (0..1, gain 1, bias 0)."""
    size, method, name = int(spec["size"]), spec["normalise"], spec.get("name", study.key)
    target = target_role(study)
    inputs = [r for r in study.roles if r not in (target, BRAIN_CHANNEL)]
    threshold = float(spec["extent_threshold"])
    lo, hi = input_slice_range(vols, inputs, threshold)
    zs = evenly(lo, hi, int(spec["n_slices"]))
    if len(zs) < int(spec["n_slices"]):
        raise InputDataError(
            f"dataset {name}: {len(zs)} axial slices hold enough brain (at least {threshold:g} of the "
            f"largest cross-section of the input side), fewer than the {int(spec['n_slices'])} of "
            f"datasets.{spec['key']}.n_slices", subject=base["subject"],
            path=base["source"], hint=f"Lower datasets.{spec['key']}.n_slices or extent_threshold, or "
                                      "check this subject's images")
    for z in zs:
        chans, gains = [], []
        for role in study.roles:
            sl = resize_slice(axial_slice(vols[role], z), size)
            g, b = (1.0, 0.0) if role == BRAIN_CHANNEL else normalise_gain_bias(sl, method)
            chans.append(sl * g + b)
            gains.append((g, b))
        yield np.stack(chans), {**base, "slice_index": z, **gain_columns(study.channels, gains)}


def gain_columns(channels: Sequence[str], gains: Sequence[tuple[float, float]]) -> dict[str, float]:
    out = {}
    for ch, (g, b) in zip(channels, gains):
        out[f"gain_{ch}"] = float(g)
        out[f"bias_{ch}"] = float(b)
    return out


# --------------------------------------------------------------------------- build


def build_dataset(study, name: str, records: Iterable[Mapping], cfg: Mapping, out_dir: str | Path
                  ) -> pd.DataFrame:
    """Extract, split, check and write one of ``study``'s datasets as its design says; returns its
    index table (:func:`spectsynth.studies.build_dataset` finds the study of a dataset name).

    ``records`` is an iterable of dicts ``{subject, volumes: {role: array (x, y, z) RAS or a
    zero-argument callable returning one}, source: {role: path} | path, pattern, params,
    levels: {level: (z_start, z_stop) half-open, or None when the scan has no slice at that
    level}, space}`` (roles: the study's ``roles``; S0's ``params`` carry the
    simulator's ``design_set``).  ``cfg`` is the whole workflow config (``datasets:`` and, for
    S0 and S1, ``simulate:`` are read).  The split of every subject and the number of slices
    per split and condition come from :func:`spectsynth.design.dataset_design` (what
    ``spectsynth plan`` prints); a result that differs from it stops the run.  Writes
    ``out_dir/{train,val,test}.h5`` and ``out_dir/index.tsv``.
    """
    spec = dataset_spec(study, cfg, name)
    records = list(records)
    for rec_i, rec in enumerate(records):
        if not str(rec.get("subject", "")):
            raise InputDataError(f"record {rec_i} of dataset {name} has no subject id",
                                 hint="Give every record a 'subject' key")
    records = [r for r in records if study.keeps_record(r, spec)]
    if not records:
        raise InputDataError(f"dataset {name}: no records"
                             f"{' for space ' + str(spec.get('space')) if spec.get('space') else ''}",
                             hint="Check the subject list and that the simulation ran")
    design = dataset_design(study, cfg, name, sorted({str(r["subject"]) for r in records}))
    chosen = [(r, design.record_split(r)) for r in records]
    chosen = [(r, sp) for r, sp in chosen if sp is not None]
    images, rows = extract_slices(study, [r for r, _ in chosen], spec)
    for r in rows:
        r["split"] = chosen[r["record"]][1]
    if design.cell_targets:
        keep = sample_cells(rows, design, int(spec["split"].get("seed", 0)))
        images, rows = images[keep], [rows[i] for i in keep]
    if not rows:
        raise InputDataError(f"dataset {name}: no slices were extracted",
                             hint="Check the subject list, the design and that the simulation ran")
    within = bool(spec["split"].get("val_within_train"))
    table = pd.DataFrame(rows)
    table.insert(0, "dataset", name)
    table.insert(1, "study", study.name)
    check_split_leak(table, dataset=name, val_within_train=within)
    check_built(design, table)
    _check_nonempty(table, spec)
    study.check_dataset(table, spec)
    return write_shards(name, images, table, spec, out_dir, channels=study.channels)


def required_conditions(spec: Mapping) -> list[tuple[str, str]]:
    """(level, pattern) pairs a dataset of conditioned slices must hold in its training split."""
    excl = {tuple(c) for c in spec.get("exclude_conditions") or []}
    return [(lv, p) for lv in spec["levels"] for p in PATTERNS if (lv, p) not in excl]


def _check_nonempty(table: pd.DataFrame, spec: Mapping) -> None:
    name = spec["name"]
    for split in ("train", "val"):
        if not (table["split"] == split).any():
            raise ConfigError(
                f"dataset {name}: the {split} split is empty ({table['subject'].nunique()} subjects in all); "
                "add subjects or change datasets." f"{spec['key']}.split (fractions or lists)")
    if not (table["split"] == "test").any():
        log.warning("dataset %s: the test split is empty; evaluation will have no unseen subjects", name)


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def write_shards(name: str, images: np.ndarray, table: pd.DataFrame, spec: Mapping,
                 out_dir: str | Path, *, channels: Sequence[str]) -> pd.DataFrame:
    """Write ``{split}.h5`` and ``index.tsv`` atomically; return the index with shard columns.

    ``channels``: the names of the images' channels (the study's ``channels``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table.reset_index(drop=True).copy()
    table.insert(0, "row", np.arange(len(table)))
    table["shard"] = ""
    table["shard_row"] = -1
    channels = list(channels)
    for split in SPLITS:
        sel = np.flatnonzero(table["split"].to_numpy() == split)
        table.loc[sel, "shard"] = f"{split}.h5"
        table.loc[sel, "shard_row"] = np.arange(len(sel))
        imgs = images[sel]
        path = out_dir / f"{split}.h5"
        with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
            chunks = (1,) + imgs.shape[1:] if len(sel) else None
            f.create_dataset("images", data=imgs, chunks=chunks, compression="lzf" if len(sel) else None)
            f.create_dataset("level", data=np.array([LEVELS.index(v) if v in LEVELS else -1
                                                     for v in table.loc[sel, "level"]], dtype=np.int8))
            f.create_dataset("pattern", data=np.array([PATTERNS.index(v) if v in PATTERNS else -1
                                                       for v in table.loc[sel, "pattern"]], dtype=np.int8))
            f.create_dataset("row", data=table.loc[sel, "row"].to_numpy(np.int64))
            f.attrs.update({"format_version": FORMAT_VERSION, "dataset": name, "study": spec["study"],
                            "split": split, "channels": json.dumps(channels), "size": int(spec["size"]),
                            "normalise": spec["normalise"], "content_sha256": _sha256(imgs),
                            "orientation": "rows anterior->posterior, columns subject left->right"})
    front = ["row", "dataset", "study", "subject", "split", "shard", "shard_row", "level", "pattern",
             "space", "source", "slice_index", "n_z", "record"]
    cols = front + [c for c in table.columns if c not in front]
    table = table[cols]
    write_table(table, out_dir / "index.tsv", what=f"dataset {name}'s slice index", float_format="%.8g",
                allow_missing=True)
    counts = table.groupby("split").size().to_dict()
    log.info("dataset %s: %d slices (%s) from %d subjects -> %s", name, len(table),
             ", ".join(f"{k} {v}" for k, v in counts.items()), table["subject"].nunique(), out_dir)
    return table


# --------------------------------------------------------------------------- file glue


def read_levels_table(path: str | Path, *, subject: str | None = None
                      ) -> dict[str, tuple[int, int] | None]:
    """``sub-XX_levels.tsv`` (columns level, z_start, z_stop; stop exclusive) ->
    {level: (z_start, z_stop)}; an empty z_start/z_stop means the scan has no slice there (None)."""
    try:
        t = pd.read_csv(path, sep="\t")
        return {str(r.level): (None if pd.isna(r.z_start) or pd.isna(r.z_stop) else (int(r.z_start), int(r.z_stop)))
                for r in t.itertuples()}
    except (OSError, ValueError, AttributeError, pd.errors.ParserError) as exc:
        raise InputDataError(f"unreadable levels table ({exc})", subject=subject, path=path,
                             hint="It needs the columns level, z_start, z_stop") from exc


def _describe(file: str | Mapping) -> str:
    """``path`` or ``path[k]`` (volume k of a 4-D stack), as written in the index table."""
    return f"{file['path']}[{int(file['volume'])}]" if isinstance(file, Mapping) else str(file)


def records_from_files(entries: Iterable[Mapping]) -> list[dict]:
    """Records for :func:`build_dataset` from file paths (the workflow's glue).

    Each entry is ``{subject, files: {role: NIfTI path}, levels: path of a _levels.tsv or a
    mapping or None, pattern, params, space}``; volumes are loaded lazily (validated and
    reoriented to RAS by :func:`spectsynth.io.load_image`) when their slices are cut, so only
    one record's volumes are in memory at a time.  The levels' z ranges must refer to the
    grid of the record's volumes.
    """
    out = []
    for e in entries:
        subject = str(e["subject"])
        files = {str(k): (dict(v) if isinstance(v, Mapping) else str(v))
                 for k, v in (e.get("files") or {}).items()}
        levels = e.get("levels")
        if isinstance(levels, (str, Path)):
            src_levels = str(levels)
            levels = read_levels_table(levels, subject=subject)
        else:
            src_levels = ""
        out.append({"subject": subject, "volumes": {k: lazy_volume(v, subject) for k, v in files.items()},
                    "source": {**{k: _describe(v) for k, v in files.items()}, "levels": src_levels},
                    "levels": levels or {},
                    "pattern": e.get("pattern"), "params": dict(e.get("params") or {}), "space": e.get("space")})
    return out


def lazy_volume(path: str | Path | Mapping, subject: str | None = None) -> Callable[[], np.ndarray]:
    """A zero-argument loader of a NIfTI volume (validated, RAS) for a record's ``volumes``.

    ``path`` is a file path, or ``{"path": ..., "volume": k}`` for volume ``k`` of a 4-D stack
    (the simulator stores a subject's images of one tracer as one stack).
    """
    volume = None
    if isinstance(path, Mapping):
        volume = int(path["volume"])
        path = path["path"]

    def load() -> np.ndarray:
        from .io import load_image, load_stack_volume
        if volume is None:
            return np.asarray(load_image(path, subject=subject).get_fdata(dtype=np.float32))
        return np.asarray(load_stack_volume(path, volume, subject=subject).get_fdata(dtype=np.float32))
    return load


# --------------------------------------------------------------------------- reading


class SliceShard:
    """One HDF5 shard: images (N, C, H, W), channel names, level/pattern codes, index rows.

    Shards up to ``preload_max_mb`` are read into memory; larger ones are read row by row
    (the file is opened lazily in each DataLoader worker).
    """

    def __init__(self, path: str | Path, *, preload_max_mb: float = 2048.0):
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                self.channels: list[str] = json.loads(f.attrs["channels"])
                self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
                self.shape = tuple(f["images"].shape)
                self.level = f["level"][()].astype(np.int64)
                self.pattern = f["pattern"][()].astype(np.int64)
                self.rows = f["row"][()]
                nbytes = int(np.prod(self.shape)) * 4
                self._images = f["images"][()] if nbytes <= preload_max_mb * 2 ** 20 else None
        except (OSError, KeyError) as exc:
            raise InputDataError(f"unreadable or incomplete dataset shard ({exc})", path=self.path,
                                 hint="Delete it and rerun the build_dataset rule") from exc
        self._file: h5py.File | None = None
        self._file_pid: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def fingerprint(self) -> str:
        return str(self.attrs.get("content_sha256", ""))

    def channel_index(self, names: Sequence[str]) -> list[int]:
        bad = [n for n in names if n not in self.channels]
        if bad:
            raise ConfigError(f"{self.path}: channel(s) {bad} not in this dataset (has {self.channels})")
        return [self.channels.index(n) for n in names]

    def images(self, i: int) -> np.ndarray:
        if self._images is not None:
            return self._images[i]
        # A handle opened in another process (a DataLoader worker forked after the main process
        # read a row) is never used: HDF5 handles are not safe across fork.
        if self._file is None or self._file_pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._file_pid = os.getpid()
        return self._file["images"][i]

    def all_images(self) -> np.ndarray:
        if self._images is not None:
            return self._images
        with h5py.File(self.path, "r") as f:
            return f["images"][()]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_file_pid"] = None
        return state


def shift_rows(img: np.ndarray, t: int) -> np.ndarray:
    """Shift (…, H, W) by ``t`` rows (positive = towards posterior), zero fill."""
    if t == 0:
        return img
    out = np.zeros_like(img)
    if t > 0:
        out[..., t:, :] = img[..., :-t, :]
    else:
        out[..., :t, :] = img[..., -t:, :]
    return out


def shift_cols(img: np.ndarray, t: int) -> np.ndarray:
    if t == 0:
        return img
    out = np.zeros_like(img)
    if t > 0:
        out[..., :, t:] = img[..., :, :-t]
    else:
        out[..., :, :t] = img[..., :, -t:]
    return out


def paired_augment(inp: np.ndarray, target: np.ndarray, rng: np.random.Generator, *,
                   shift_px: int = 0, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The same random shift (rows and columns, zero fill in normalised units of the lower
    bound) and horizontal flip applied to input and target."""
    both = np.concatenate([inp, target], 0)
    lo = both.reshape(both.shape[0], -1).min(1)[:, None, None]
    if shift_px:
        tr, tc = (int(v) for v in rng.integers(-shift_px, shift_px + 1, size=2))
        both = shift_cols(shift_rows(both - lo, tr), tc) + lo
    if flip and rng.random() < 0.5:
        both = both[..., ::-1]
    both = np.ascontiguousarray(both, dtype=np.float32)
    return both[:inp.shape[0]], both[inp.shape[0]:]


def item_index(key) -> tuple[int, int | None]:
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), None


class PairedSliceDataset:
    """Input/target slices (S0, S2, S3): items ``input`` (Cin, H, W), ``target`` (Cout, H, W), ``index``.

    ``ds[(i, epoch)]`` applies :func:`paired_augment` (the same transform to both), ``ds[i]``
    returns the stored slices.
    """

    def __init__(self, shard: SliceShard, input_channels: Sequence[str], target_channels: Sequence[str],
                 *, augment: Mapping | None = None, seed: int = 0):
        self.shard = shard
        self.cin = shard.channel_index(input_channels)
        self.cout = shard.channel_index(target_channels)
        self.augment = {k: v for k, v in (augment or {}).items() if k in ("shift_px", "flip")}
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.shard)

    def __getitem__(self, key) -> dict[str, Any]:
        i, epoch = item_index(key)
        stack = self.shard.images(i)
        inp = stack[self.cin].astype(np.float32)
        tgt = stack[self.cout].astype(np.float32)
        if epoch is not None and (self.augment.get("shift_px") or self.augment.get("flip")):
            inp, tgt = paired_augment(inp, tgt, np.random.default_rng([self.seed, epoch, i]), **self.augment)
        return {"input": inp, "target": tgt, "index": i}


class EpochSampler:
    """Deterministic order: a permutation of ``range(n)`` from ``default_rng([seed, epoch])``.

    Yields ``(index, epoch)`` keys so the dataset can draw the epoch's augmentation.
    ``start`` skips the first items (resuming in the middle of an epoch).
    """

    def __init__(self, n: int, seed: int, *, shuffle: bool = True):
        self.n, self.seed, self.shuffle = int(n), int(seed), shuffle
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self):
        for i in self.order(self.epoch)[self.start:]:
            yield (int(i), self.epoch)

    def __len__(self) -> int:
        return self.n - self.start
