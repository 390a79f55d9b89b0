"""Brain extraction of the registered PET and SPECT, each by its own method (as S2 did).

S2 (Methods): "Individual brains were extracted from MRI and PET scans using the BET tool in
FSL. The brains were extracted from the SPECT images using an intensity threshold based on the
histogram computed in MIPAV."  The T1w has its own extraction (:mod:`.brain`); here:

* :func:`extract_pet_brain` - a BET-like extraction on the PET itself: Gaussian smoothing, a
  global threshold at a fraction of a robust maximum (a high percentile of the smoothed image),
  a morphological opening (ball in mm) that cuts the thin bridges to the scalp and removes thin
  shells such as the scalp itself, the connected component holding most of the brain's
  activity, a closing (ball in mm) over the sulci, hole filling, and an optional erosion that
  strips a rim.  With ``pet_method: fsl`` FSL BET itself is run on the PET (needs FSL).
* :func:`extract_spect_brain` - a histogram threshold, as MIPAV's: Otsu's threshold of the
  smoothed image's histogram (or a fixed fraction of a robust maximum), the component holding
  most of the activity, a closing and hole filling.

Both return a boolean mask and a record (threshold, reference intensity, volume in mL, ...),
and raise :class:`~spectsynth.errors.InputDataError` naming the subject and file when the image
is empty or the mask's volume is implausible.  The morphology uses Euclidean distance maps in
mm (:func:`scipy.ndimage.distance_transform_edt`), so a ball of a given radius is the same size
on the 1 mm native grid and on a 2 mm template grid, and costs no more for a large radius.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..config import declared, fragment_defaults
from ..errors import ConfigError, InputDataError

PET_METHODS: tuple[str, ...] = tuple(declared(Path(__file__).with_name("options.yaml"), "preprocess.scan_brain_extraction.pet_method")["enum"])
SPECT_METHODS: tuple[str, ...] = tuple(declared(Path(__file__).with_name("options.yaml"), "preprocess.scan_brain_extraction.spect_method")["enum"])


# The declared options (options.yaml); the fields take their defaults from them.
_DECLARED = fragment_defaults(Path(__file__).with_name("options.yaml"), "preprocess")["scan_brain_extraction"]


@dataclass
class ScanBrainSettings:
    """Settings of the PET/SPECT brain extraction (the config's ``preprocess.scan_brain_extraction``)."""

    pet_method: str = _DECLARED["pet_method"]
    pet_smooth_mm: float = _DECLARED["pet_smooth_mm"]
    pet_percentile: float = _DECLARED["pet_percentile"]
    pet_fraction: float = _DECLARED["pet_fraction"]
    pet_open_mm: float = _DECLARED["pet_open_mm"]
    pet_close_mm: float = _DECLARED["pet_close_mm"]
    pet_erode_mm: float = _DECLARED["pet_erode_mm"]
    pet_fsl_frac: float = _DECLARED["pet_fsl_frac"]
    spect_method: str = _DECLARED["spect_method"]
    spect_smooth_mm: float = _DECLARED["spect_smooth_mm"]
    spect_percentile: float = _DECLARED["spect_percentile"]
    spect_fraction: float = _DECLARED["spect_fraction"]
    spect_close_mm: float = _DECLARED["spect_close_mm"]
    work_voxel_mm: float = _DECLARED["work_voxel_mm"]
    min_volume_ml: float = _DECLARED["min_volume_ml"]
    max_volume_ml: float = _DECLARED["max_volume_ml"]

    @classmethod
    def from_config(cls, cfg: dict | None) -> ScanBrainSettings:
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"preprocess.scan_brain_extraction: unknown keys {sorted(unknown)}; "
                              f"known: {sorted(cls.__dataclass_fields__)}")
        out = cls(**cfg)
        if out.pet_method not in PET_METHODS:
            raise ConfigError(f"preprocess.scan_brain_extraction.pet_method: {out.pet_method!r} is not "
                              f"one of {PET_METHODS}")
        if out.spect_method not in SPECT_METHODS:
            raise ConfigError(f"preprocess.scan_brain_extraction.spect_method: {out.spect_method!r} is "
                              f"not one of {SPECT_METHODS}")
        for key in ("pet_fraction", "spect_fraction", "pet_fsl_frac"):
            if not 0 < getattr(out, key) < 1:
                raise ConfigError(f"preprocess.scan_brain_extraction.{key} must lie between 0 and 1")
        for key in ("pet_percentile", "spect_percentile"):
            if not 50 <= getattr(out, key) <= 100:
                raise ConfigError(f"preprocess.scan_brain_extraction.{key} must lie between 50 and 100")
        if out.min_volume_ml >= out.max_volume_ml:
            raise ConfigError("preprocess.scan_brain_extraction.min_volume_ml must be below max_volume_ml")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------ morphology in mm
def _pad(mask: np.ndarray, radius_mm: float, voxel_mm: Sequence[float]) -> tuple[np.ndarray, tuple]:
    width = [int(np.ceil(radius_mm / v)) + 1 for v in voxel_mm]
    padded = np.pad(mask, [(w, w) for w in width])
    return padded, tuple(slice(w, -w) for w in width)


def dilate_mm(mask: np.ndarray, radius_mm: float, voxel_mm: Sequence[float]) -> np.ndarray:
    """Dilation by a ball of ``radius_mm`` (voxels within that distance of the mask)."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    padded, inner = _pad(mask, radius_mm, voxel_mm)
    return (ndimage.distance_transform_edt(~padded, sampling=voxel_mm) <= radius_mm)[inner]


def erode_mm(mask: np.ndarray, radius_mm: float, voxel_mm: Sequence[float]) -> np.ndarray:
    """Erosion by a ball of ``radius_mm`` (voxels farther than that from the background)."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    padded, inner = _pad(mask, radius_mm, voxel_mm)
    return (ndimage.distance_transform_edt(padded, sampling=voxel_mm) > radius_mm)[inner]


def open_mm(mask: np.ndarray, radius_mm: float, voxel_mm: Sequence[float]) -> np.ndarray:
    return dilate_mm(erode_mm(mask, radius_mm, voxel_mm), radius_mm, voxel_mm)


def close_mm(mask: np.ndarray, radius_mm: float, voxel_mm: Sequence[float]) -> np.ndarray:
    return erode_mm(dilate_mm(mask, radius_mm, voxel_mm), radius_mm, voxel_mm)


def _brightest_component(mask: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, int]:
    """The 6-connected component of ``mask`` holding the most of ``weight`` (the brain's activity:
    a scalp shell or a muscle can be large, never as active), and the number of components."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool), n
    sums = ndimage.sum_labels(np.clip(weight, 0, None), labels, index=np.arange(1, n + 1))
    return labels == int(np.argmax(sums)) + 1, n


# ------------------------------------------------------------------------------ work grid
def _to_work_grid(image: np.ndarray, voxel_mm: Sequence[float], work_mm: float):
    """Block means of ``image`` on a grid of about ``work_mm`` voxels: (data, voxel_mm, undo), where
    ``undo(mask)`` brings a mask of the coarse grid back to the image's grid (None: no change)."""
    data = np.asarray(image, dtype=np.float32)
    voxel_mm = tuple(float(v) for v in voxel_mm)
    f = tuple(max(1, int(round(work_mm / v))) if work_mm > 0 else 1 for v in voxel_mm)
    if data.ndim != 3 or f == (1, 1, 1):
        return data, voxel_mm, None
    shape = data.shape
    c = tuple(n // k * k for n, k in zip(shape, f))
    coarse = data[: c[0], : c[1], : c[2]].reshape(c[0] // f[0], f[0], c[1] // f[1], f[1], c[2] // f[2], f[2])
    coarse = coarse.mean(axis=(1, 3, 5))

    def undo(mask: np.ndarray) -> np.ndarray:
        up = np.asarray(mask, np.float32)
        for axis, k in enumerate(f):
            up = np.repeat(up, k, axis=axis)
        # smooth the block edges back to the image's grid, then threshold at half
        up = ndimage.gaussian_filter(up, [k / 2.0 for k in f]) > 0.5
        out = np.zeros(shape, bool)
        out[: c[0], : c[1], : c[2]] = up
        return out

    return coarse, tuple(v * k for v, k in zip(voxel_mm, f)), undo


# ------------------------------------------------------------------------------ shared steps
def _prepare(image: np.ndarray, voxel_mm: Sequence[float], smooth_mm: float, what: str,
             subject: str | None, path: str | Path | None) -> tuple[np.ndarray, np.ndarray, tuple]:
    data = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if data.ndim != 3:
        raise InputDataError(f"the registered {what} has {data.ndim} dimensions, expected 3",
                             subject=subject, path=path,
                             hint="Brain extraction reads the registered 3-D scan (space-T1w / space-MNI152)")
    voxel_mm = tuple(float(v) for v in voxel_mm)
    fov = data != 0           # voxels the scanner saw (resampling leaves exact zeros outside)
    if not fov.any() or float(data.max()) <= 0:
        raise InputDataError(f"the registered {what} is empty (no positive voxel): no brain to extract",
                             subject=subject, path=path,
                             hint=f"Check the {what} input and its registration to the T1w (QC JSON of "
                                  "register_modality, overlap with the T1w brain)")
    sigma = [smooth_mm / v for v in voxel_mm] if smooth_mm > 0 else 0
    smooth = ndimage.gaussian_filter(data, sigma) if smooth_mm > 0 else data
    return smooth, fov, voxel_mm


def _record(method: str, mask: np.ndarray, voxel_mm: Sequence[float], **values) -> dict:
    voxel_ml = float(np.prod(voxel_mm)) / 1000.0
    return {"method": method, "volume_ml": round(float(mask.sum()) * voxel_ml, 1),
            **{k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v)
               for k, v in values.items()}}


def _check_volume(mask: np.ndarray, record: dict, settings: ScanBrainSettings, what: str,
                  subject: str | None, path: str | Path | None) -> None:
    volume = record["volume_ml"]
    if not settings.min_volume_ml <= volume <= settings.max_volume_ml:
        too = "small" if volume < settings.min_volume_ml else "large"
        raise InputDataError(
            f"{what} brain extraction ({record['method']}, threshold {record.get('threshold', 'n/a')}) "
            f"gave a brain of {volume:.0f} mL, too {too} for the plausible range "
            f"{settings.min_volume_ml:.0f}-{settings.max_volume_ml:.0f} mL",
            subject=subject, path=path,
            hint=f"Check the {what} (is the brain inside the field of view? did its registration to the "
                 "T1w succeed? a wrong voxel size in the header?) and the thresholds in "
                 "preprocess.scan_brain_extraction (a smaller fraction gives a larger brain)")


# ------------------------------------------------------------------------------ PET
def extract_pet_brain(image: np.ndarray, voxel_mm: Sequence[float], *,
                      settings: ScanBrainSettings | dict | None = None, subject: str | None = None,
                      path: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """Brain mask of a registered PET: the BET-like extraction of the module's docstring.

    Returns ``(mask, record)``; ``record`` holds the method, the threshold and the reference
    intensity it is a fraction of, the number of components after the threshold and opening,
    the mask's volume (mL) and the run time.
    """
    if not isinstance(settings, ScanBrainSettings):
        settings = ScanBrainSettings.from_config(settings)
    t0 = time.perf_counter()
    if settings.pet_method == "fsl":
        mask, record = _fsl_pet_mask(image, voxel_mm, settings, subject, path)
    else:
        full_voxel = tuple(float(v) for v in voxel_mm)
        work, voxel_mm, undo = _to_work_grid(image, voxel_mm, settings.work_voxel_mm)
        smooth, fov, voxel_mm = _prepare(work, voxel_mm, settings.pet_smooth_mm, "PET", subject, path)
        reference = float(np.percentile(smooth[fov], settings.pet_percentile))
        threshold = settings.pet_fraction * reference
        mask = open_mm(smooth > threshold, settings.pet_open_mm, voxel_mm)
        mask, n = _brightest_component(mask, smooth)
        mask = ndimage.binary_fill_holes(close_mm(mask, settings.pet_close_mm, voxel_mm))
        mask = erode_mm(mask, settings.pet_erode_mm, voxel_mm)
        if undo is not None:
            mask = undo(mask)
        record = _record("threshold", mask, full_voxel, threshold=threshold, reference=reference,
                         reference_percentile=settings.pet_percentile, fraction=settings.pet_fraction,
                         components=n)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    _check_volume(mask, record, settings, "PET", subject, path)
    return mask.astype(bool), record


def _fsl_pet_mask(image, voxel_mm, settings: ScanBrainSettings, subject, path) -> tuple[np.ndarray, dict]:
    """FSL BET on the PET (as S2 ran it); needs FSL (FSLDIR) and fslpy."""
    from .brain import BrainSettings, _fsl_mask
    from .register import Grid, image_on_grid

    _prepare(image, voxel_mm, 0.0, "PET", subject, path)   # the empty-image check
    affine = np.diag([*[float(v) for v in voxel_mm], 1.0])
    img = image_on_grid(np.asarray(image, dtype=np.float32), Grid(tuple(np.shape(image)), affine))
    mask = _fsl_mask(img, BrainSettings(backend="fsl", fsl_frac=settings.pet_fsl_frac), subject)
    return mask, _record("fsl", mask, voxel_mm, threshold=settings.pet_fsl_frac)


# ------------------------------------------------------------------------------ SPECT
def extract_spect_brain(image: np.ndarray, voxel_mm: Sequence[float], *,
                        settings: ScanBrainSettings | dict | None = None, subject: str | None = None,
                        path: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """Brain mask of a registered SPECT: a histogram threshold, as S2 did in MIPAV.

    ``spect_method: otsu`` takes Otsu's threshold of the histogram of the smoothed image inside
    the field of view (the value that best splits it into background + scatter halo and brain);
    ``fraction`` a fixed fraction of a high percentile.  Then the component holding most of the
    activity, a closing and hole filling.  Returns ``(mask, record)`` as :func:`extract_pet_brain`.
    """
    from skimage.filters import threshold_otsu

    if not isinstance(settings, ScanBrainSettings):
        settings = ScanBrainSettings.from_config(settings)
    t0 = time.perf_counter()
    full_voxel = tuple(float(v) for v in voxel_mm)
    work, voxel_mm, undo = _to_work_grid(image, voxel_mm, settings.work_voxel_mm)
    smooth, fov, voxel_mm = _prepare(work, voxel_mm, settings.spect_smooth_mm, "SPECT", subject, path)
    values = smooth[fov]
    reference = float(np.percentile(values, settings.spect_percentile))
    if settings.spect_method == "otsu":
        threshold = float(threshold_otsu(values, nbins=256))
    else:
        threshold = settings.spect_fraction * reference
    mask, n = _brightest_component(smooth > threshold, smooth)
    mask = ndimage.binary_fill_holes(close_mm(mask, settings.spect_close_mm, voxel_mm))
    if undo is not None:
        mask = undo(mask)
    record = _record(settings.spect_method, mask, full_voxel, threshold=threshold, reference=reference,
                     reference_percentile=settings.spect_percentile,
                     threshold_fraction_of_reference=threshold / reference if reference > 0 else None,
                     components=n)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    _check_volume(mask, record, settings, "SPECT", subject, path)
    return mask.astype(bool), record


def extract_scan_brain(image: np.ndarray, voxel_mm: Sequence[float], modality: str, **kwargs
                       ) -> tuple[np.ndarray, dict]:
    """:func:`extract_pet_brain` or :func:`extract_spect_brain` by ``modality`` (pet / spect)."""
    if modality == "pet":
        return extract_pet_brain(image, voxel_mm, **kwargs)
    if modality == "spect":
        return extract_spect_brain(image, voxel_mm, **kwargs)
    raise ValueError(f"extract_scan_brain: modality {modality!r} is not pet or spect")
