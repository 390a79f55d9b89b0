"""The simulator's view of one subject's anatomy: label and tissue maps on one grid.

The anatomy stage writes, per subject and on the subject's native grid (RAS+):
``desc-brain_mask``, ``desc-striatum_dseg`` (``labels.STRIATUM``), ``desc-reference_dseg``
(``labels.REFERENCE``), ``desc-territories_dseg`` (``labels.TERRITORIES``),
``label-{GM,WM,CSF}_probseg`` and ``_levels.tsv`` (``level``, ``z_start``, ``z_stop``: voxel
indices along the third, inferior-to-superior axis, stop exclusive; empty when the scan
has no slice at that level).  :func:`load_anatomy`
reads them into an :class:`Anatomy`; :mod:`.phantom` builds the same object from shipped
atlases for development, tests and users without MRI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import InputDataError
from ..io import load_image
from ..labels import LEVELS, REFERENCE, STRIATUM

# Keys of the paths mapping :func:`load_anatomy` expects.
ANATOMY_KEYS = ("brain", "striatum", "reference", "territories", "gm", "wm", "csf", "levels")


@dataclass
class Anatomy:
    """Label and tissue maps of one subject on one voxel grid (RAS+ world, mm).

    Attributes
    ----------
    subject: subject label (without ``sub-``).
    affine: 4x4 voxel-to-world matrix shared by every map.
    brain: boolean brain mask.
    striatum, reference, territories: integer label images (tables in :mod:`spectsynth.labels`).
    gm, wm, csf: tissue probability maps in [0, 1].
    levels: ``{"CER"|"BG"|"COR": (z_start, z_stop)}`` voxel indices along axis 2, stop exclusive.
    t1: optional T1w intensities on the same grid (figures only).
    """

    subject: str
    affine: np.ndarray
    brain: np.ndarray
    striatum: np.ndarray
    reference: np.ndarray
    territories: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    levels: dict[str, tuple[int, int]] = field(default_factory=dict)
    t1: np.ndarray | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # GM/WM/CSF core masks, computed on first use (spectsynth.simulate.grid.tissue_cores)
    tissue_cores: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.brain.shape)  # type: ignore[return-value]

    @property
    def voxel_mm(self) -> np.ndarray:
        return np.sqrt((np.asarray(self.affine)[:3, :3] ** 2).sum(axis=0))

    def level_z_mm(self) -> dict[str, tuple[float, float]]:
        """World z range (mm, lower and upper edge) of every level."""
        out = {}
        for name, (z0, z1) in self.levels.items():
            c = (np.asarray(self.shape) - 1) / 2.0
            lo = self.affine @ np.array([c[0], c[1], z0 - 0.5, 1.0])
            hi = self.affine @ np.array([c[0], c[1], z1 - 0.5, 1.0])
            out[name] = (float(min(lo[2], hi[2])), float(max(lo[2], hi[2])))
        return out

    def validate(self) -> Anatomy:
        """Check shapes, label contents and levels; raise :class:`InputDataError` on a problem."""
        shape = self.shape
        if len(shape) != 3:
            raise InputDataError(f"anatomy maps must be 3-D, got shape {shape}", subject=self.subject,
                                 path=self.sources.get("brain"))
        for key in ("striatum", "reference", "territories", "gm", "wm", "csf"):
            arr = getattr(self, key)
            if tuple(arr.shape) != shape:
                raise InputDataError(
                    f"{key} map has shape {tuple(arr.shape)} but the brain mask has {shape}",
                    subject=self.subject, path=self.sources.get(key),
                    hint="All anatomy maps of a subject must share one grid; rerun the anatomy stage")
        if self.t1 is not None and tuple(self.t1.shape) != shape:
            raise InputDataError(f"T1w has shape {tuple(self.t1.shape)} but the anatomy maps have {shape}",
                                 subject=self.subject, path=self.sources.get("t1"),
                                 hint="Pass the T1w resampled to the anatomy grid")
        if not self.brain.any():
            raise InputDataError("brain mask is empty", subject=self.subject, path=self.sources.get("brain"))
        for key, table, needed in (("striatum", STRIATUM, ("caudate_L", "caudate_R", "putamen_L", "putamen_R")),
                                   ("reference", REFERENCE, ("occipital",))):
            present = set(np.unique(getattr(self, key)).tolist())
            for name in needed:
                idx = [k for k, v in table.items() if v == name][0]
                if idx not in present:
                    raise InputDataError(
                        f"label {idx} ({name}) is missing from the {key} label image",
                        subject=self.subject, path=self.sources.get(key),
                        hint="Check the atlas registration of this subject (anatomy stage QC figure)")
        for name, (z0, z1) in self.levels.items():
            if name not in LEVELS:
                raise InputDataError(f"unknown level {name!r} (known: {', '.join(LEVELS)})",
                                     subject=self.subject, path=self.sources.get("levels"))
            if not (0 <= z0 < z1 <= shape[2]):
                raise InputDataError(f"level {name} has z range [{z0}, {z1}) outside 0..{shape[2]}",
                                     subject=self.subject, path=self.sources.get("levels"))
        for key in ("gm", "wm", "csf"):
            arr = getattr(self, key)
            if not np.all(np.isfinite(arr)) or arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
                raise InputDataError(f"{key.upper()} probability map has values outside [0, 1]",
                                     subject=self.subject, path=self.sources.get(key),
                                     hint="Tissue maps must be probabilities (label-*_probseg)")
        return self


def _read_array(path: Path, subject: str, *, labels: bool, ref_affine: np.ndarray | None,
                check_values: bool = True) -> tuple[np.ndarray, np.ndarray]:
    img = load_image(path, subject=subject, check_values=check_values)
    if ref_affine is not None and not np.allclose(img.affine, ref_affine, atol=1e-3):
        raise InputDataError("grid (affine) differs from the subject's brain mask", subject=subject, path=path,
                             hint="All anatomy maps of a subject must share one grid; rerun the anatomy stage")
    data = np.asanyarray(img.dataobj)
    if labels:
        data = np.rint(data).astype(np.int16)
    else:
        data = np.clip(np.asarray(data, dtype=np.float32), 0.0, 1.0)
    return data, img.affine


def read_levels(path: str | Path, subject: str) -> dict[str, tuple[int, int]]:
    """Read a ``_levels.tsv`` table (columns ``level``, ``z_start``, ``z_stop``)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"unreadable levels table ({exc})", subject=subject, path=path,
                             hint="Rerun the anatomy stage for this subject") from exc
    missing = {"level", "z_start", "z_stop"} - set(table.columns)
    if missing:
        raise InputDataError(f"levels table lacks the column(s) {sorted(missing)}", subject=subject, path=path,
                             hint="Expected columns: level, z_start, z_stop")
    # An empty z_start/z_stop means the scan has no slice at that level: the level is left out.
    return {str(r.level): (int(r.z_start), int(r.z_stop)) for r in table.itertuples()
            if not (pd.isna(r.z_start) or pd.isna(r.z_stop))}


def load_anatomy(paths: Mapping[str, str | Path], subject: str, *, t1: str | Path | None = None) -> Anatomy:
    """Read the anatomy stage's files of one subject into a validated :class:`Anatomy`.

    ``paths`` maps each of :data:`ANATOMY_KEYS` to a file; ``t1`` (optional) is a T1w on
    the same grid, used for figures only.
    """
    missing = [k for k in ANATOMY_KEYS if k not in paths]
    if missing:
        raise InputDataError(f"anatomy file(s) not given: {', '.join(missing)}", subject=subject,
                             hint=f"Pass a path for each of {', '.join(ANATOMY_KEYS)}")
    brain_img = load_image(paths["brain"], subject=subject)
    affine = brain_img.affine
    brain = np.asanyarray(brain_img.dataobj) > 0.5
    arrays = {}
    for key in ("striatum", "reference", "territories"):
        arrays[key], _ = _read_array(Path(paths[key]), subject, labels=True, ref_affine=affine)
    for key in ("gm", "wm", "csf"):
        arrays[key], _ = _read_array(Path(paths[key]), subject, labels=False, ref_affine=affine)
    t1_data = None
    if t1 is not None:
        t1_img = load_image(t1, subject=subject)
        if t1_img.shape == brain.shape and np.allclose(t1_img.affine, affine, atol=1e-3):
            t1_data = np.asarray(t1_img.dataobj, dtype=np.float32)
        else:
            t1_data = resample_to_grid(np.asarray(t1_img.dataobj, dtype=np.float32), t1_img.affine,
                                       brain.shape, affine, order=1)
    anat = Anatomy(subject=subject, affine=np.asarray(affine, dtype=float), brain=brain,
                   levels=read_levels(paths["levels"], subject), t1=t1_data,
                   sources={k: str(v) for k, v in paths.items()} | ({"t1": str(t1)} if t1 else {}),
                   **arrays)
    return anat.validate()


def resample_to_grid(data: np.ndarray, src_affine: np.ndarray, dst_shape: tuple[int, ...],
                     dst_affine: np.ndarray, *, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Resample a 3-D array from one grid to another through the world coordinates."""
    from scipy import ndimage

    m = np.linalg.inv(np.asarray(src_affine, dtype=float)) @ np.asarray(dst_affine, dtype=float)
    return ndimage.affine_transform(np.asarray(data), m[:3, :3], offset=m[:3, 3], output_shape=tuple(dst_shape),
                                    order=order, mode="constant", cval=cval, prefilter=order > 1)


def anatomy_to_nifti(anat: Anatomy, key: str) -> nib.Nifti1Image:
    """One map of an :class:`Anatomy` as a NIfTI image (for saving or viewing)."""
    arr = getattr(anat, key)
    if arr is None:
        raise KeyError(f"anatomy of subject {anat.subject} has no {key!r} map")
    dtype = np.uint8 if arr.dtype == bool else arr.dtype
    img = nib.Nifti1Image(np.asarray(arr, dtype=dtype), anat.affine)
    img.set_qform(anat.affine, code=1)
    img.set_sform(anat.affine, code=1)
    return img
