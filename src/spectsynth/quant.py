"""Regional quantification: the one implementation used by the simulator and the evaluation.

Every number the pipeline reports about uptake in a region comes from this module, so that
the "measured" values written into the simulator's ground truth and the values the
evaluation stage computes on generated images are the same quantity.

Definitions
-----------
Specific binding ratio (SBR) of a region ``R`` against a reference region ``B``::

    SBR_R = (mean(image over R) - mean(image over B)) / mean(image over B)

Regions are caudate and putamen of each side (``labels.STRIATUM`` 1-4); ``caudate``,
``putamen`` and ``striatum`` (caudate + putamen) are also given per side (``_L``/``_R``)
and for both sides together (mean over the union of the voxels, not the mean of the two
sides).  The pallidum is not part of the striatum here.

Reference regions: ``occipital`` (default, the clinical convention for 123I-ioflupane),
``cerebellum``, or ``brain_minus_striatum`` (brain mask minus every ``STRIATUM`` label).

Asymmetry index (percent)::

    AI = 100 * |L - R| / ((L + R) / 2)

Putamen/caudate ratio: ``SBR_putamen / SBR_caudate`` (per side and both sides).

Grey:white ratio: mean over a grey-matter ROI / mean over a white-matter ROI; the ROIs of
:func:`tissue_core_masks` keep voxels surrounded by their own tissue (thick cortex and
deep grey nuclei; deep white matter), as ROIs drawn for published perfusion ratios do.

Masks and weights
-----------------
Every function accepts boolean masks *or* non-negative weight maps (for example the
fraction of each voxel of a coarse SPECT grid that a 1 mm label covers).  A weighted mean
``sum(w * image) / sum(w)`` with partial-volume fractions equals the plain mean over the
1 mm label of the image upsampled by nearest neighbour, so both ways of measuring agree.
Arrays may be 3-D volumes or 2-D slices; the image and its masks must have the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .config import CORE_FRAGMENT, declared
from .labels import REFERENCE, STRIATUM

REFERENCES: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "$defs/reference_region")["enum"])
# Grey:white ROI definition (see :func:`tissue_core_masks`).
CORE_FWHM_MM = 8.0
CORE_GM_LEVEL = 0.6
CORE_WM_LEVEL = 0.9
SIDES = ("L", "R")
STRIATAL_REGIONS = ("caudate_L", "caudate_R", "putamen_L", "putamen_R")
# Regions reported by :func:`sbr`, in this order.
SBR_REGIONS = ("caudate_L", "caudate_R", "putamen_L", "putamen_R", "caudate", "putamen",
               "striatum_L", "striatum_R", "striatum")


class QuantError(ValueError):
    """A region needed for a measurement is empty, or image and masks do not match."""


def _as_weights(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    w = np.asarray(mask)
    if w.shape != tuple(shape):
        raise QuantError(f"region {name!r}: mask shape {w.shape} differs from image shape {tuple(shape)}")
    if w.dtype == bool:
        return w
    w = w.astype(np.float64, copy=False)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise QuantError(f"region {name!r}: weights must be finite and non-negative")
    return w


def weighted_mean(image: np.ndarray, mask: np.ndarray, *, name: str = "region",
                  missing: str = "raise") -> float:
    """Mean of ``image`` over a boolean mask or a weight map.

    ``missing="raise"`` (default) raises :class:`QuantError` for an empty region;
    ``missing="nan"`` returns NaN instead (useful on 2-D slices that miss a region).
    """
    img = np.asarray(image)
    w = _as_weights(mask, img.shape, name)
    if w.dtype == bool:
        n = int(np.count_nonzero(w))
        if n == 0:
            return _missing(name, missing)
        return float(np.mean(img[w], dtype=np.float64))
    total = float(w.sum())
    if total <= 0:
        return _missing(name, missing)
    nz = w > 0
    return float(np.dot(img[nz].astype(np.float64, copy=False), w[nz]) / total)


def _missing(name: str, missing: str) -> float:
    if missing == "nan":
        return math.nan
    if missing != "raise":
        raise ValueError(f"missing must be 'raise' or 'nan', not {missing!r}")
    raise QuantError(f"region {name!r} is empty (no voxel with a positive weight); check the "
                     "label image, or measure on a slice/grid that contains the region")


def striatal_masks(striatum_labels: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of caudate/putamen per side from a ``labels.STRIATUM`` label image."""
    lab = np.asarray(striatum_labels)
    if lab.dtype.kind == "f":
        lab = np.rint(lab).astype(np.int32)
    out = {}
    for idx, name in STRIATUM.items():
        if name in STRIATAL_REGIONS:
            out[name] = lab == idx
    return out


def reference_masks(reference_labels: np.ndarray | None = None, *, brain_mask: np.ndarray | None = None,
                    striatum_labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean masks of the reference regions that the given images allow.

    ``occipital`` and ``cerebellum`` come from a ``labels.REFERENCE`` image;
    ``brain_minus_striatum`` needs the brain mask and the striatum labels.
    """
    out: dict[str, np.ndarray] = {}
    if reference_labels is not None:
        lab = np.asarray(reference_labels)
        if lab.dtype.kind == "f":
            lab = np.rint(lab).astype(np.int32)
        for idx, name in REFERENCE.items():
            out[name] = lab == idx
    if brain_mask is not None and striatum_labels is not None:
        out["brain_minus_striatum"] = np.asarray(brain_mask).astype(bool) & (np.asarray(striatum_labels) == 0)
    return out


def region_masks(striatum_labels: np.ndarray, reference_labels: np.ndarray | None = None,
                 brain_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All masks :func:`quantify_dat` needs, from the anatomy stage's label images."""
    masks = striatal_masks(striatum_labels)
    masks.update(reference_masks(reference_labels, brain_mask=brain_mask, striatum_labels=striatum_labels))
    return masks


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == bool and b.dtype == bool:
        return a | b
    return np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)


def combined_regions(masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add ``caudate``, ``putamen``, ``striatum_L/R`` and ``striatum`` to the four basic masks."""
    for name in STRIATAL_REGIONS:
        if name not in masks:
            raise QuantError(f"region {name!r} is missing from the masks given (have {sorted(masks)})")
    out = {k: masks[k] for k in STRIATAL_REGIONS}
    out["caudate"] = _union(masks["caudate_L"], masks["caudate_R"])
    out["putamen"] = _union(masks["putamen_L"], masks["putamen_R"])
    out["striatum_L"] = _union(masks["caudate_L"], masks["putamen_L"])
    out["striatum_R"] = _union(masks["caudate_R"], masks["putamen_R"])
    out["striatum"] = _union(out["striatum_L"], out["striatum_R"])
    return out


def reference_mean(image: np.ndarray, masks: Mapping[str, np.ndarray], reference: str = "occipital") -> float:
    """Mean of ``image`` in the chosen reference region (must be positive)."""
    if reference not in REFERENCES:
        raise QuantError(f"unknown reference region {reference!r}; choose one of {', '.join(REFERENCES)}")
    if reference not in masks:
        raise QuantError(f"reference region {reference!r} is not among the masks given (have "
                         f"{sorted(masks)}); pass the reference labels, or the brain mask for "
                         "'brain_minus_striatum'")
    ref = weighted_mean(image, masks[reference], name=reference)
    if not ref > 0:
        raise QuantError(f"mean in the reference region {reference!r} is {ref:.4g}; an SBR needs a "
                         "positive reference (is the image empty or inverted?)")
    return ref


def sbr(image: np.ndarray, masks: Mapping[str, np.ndarray], reference: str = "occipital", *,
        missing: str = "raise") -> dict[str, float]:
    """Specific binding ratios of the regions in :data:`SBR_REGIONS`.

    ``masks`` holds the four striatal regions and the reference region (see
    :func:`region_masks`); boolean masks or weights.  ``missing="nan"`` gives NaN for a
    striatal region that is empty (the reference must never be empty).
    """
    img = np.asarray(image)
    ref = reference_mean(img, masks, reference)
    regions = combined_regions(masks)
    return {name: (weighted_mean(img, regions[name], name=name, missing=missing) - ref) / ref
            for name in SBR_REGIONS}


def asymmetry_index(left: float, right: float) -> float:
    """Asymmetry index in percent: ``100 * |L - R| / ((L + R) / 2)`` (NaN if undefined)."""
    mean = (left + right) / 2.0
    if not np.isfinite(mean) or mean == 0:
        return math.nan
    return float(100.0 * abs(left - right) / abs(mean))


def putamen_caudate_ratio(sbr_values: Mapping[str, float], side: str | None = None) -> float:
    """``SBR_putamen / SBR_caudate`` for one side (``"L"``/``"R"``) or both (``None``)."""
    suffix = "" if side is None else f"_{side}"
    if side not in (None, *SIDES):
        raise QuantError(f"side must be 'L', 'R' or None, not {side!r}")
    c = sbr_values[f"caudate{suffix}"]
    p = sbr_values[f"putamen{suffix}"]
    if not np.isfinite(c) or c == 0:
        return math.nan
    return float(p / c)


def quantify_dat(image: np.ndarray, masks: Mapping[str, np.ndarray], reference: str = "occipital", *,
                 missing: str = "raise") -> dict[str, float]:
    """All DaT measures in one flat dict.

    Keys: ``sbr_<region>`` for every region of :data:`SBR_REGIONS`, ``ai_caudate``,
    ``ai_putamen``, ``ai_striatum`` (percent), ``pc_ratio``, ``pc_ratio_L``, ``pc_ratio_R``,
    and ``reference_mean``.
    """
    img = np.asarray(image)
    values = sbr(img, masks, reference, missing=missing)
    out = {f"sbr_{k}": v for k, v in values.items()}
    out["ai_caudate"] = asymmetry_index(values["caudate_L"], values["caudate_R"])
    out["ai_putamen"] = asymmetry_index(values["putamen_L"], values["putamen_R"])
    out["ai_striatum"] = asymmetry_index(values["striatum_L"], values["striatum_R"])
    out["pc_ratio"] = putamen_caudate_ratio(values)
    out["pc_ratio_L"] = putamen_caudate_ratio(values, "L")
    out["pc_ratio_R"] = putamen_caudate_ratio(values, "R")
    out["reference_mean"] = reference_mean(img, masks, reference)
    return out


def quantify_labels(image: np.ndarray, striatum_labels: np.ndarray, reference_labels: np.ndarray | None = None,
                    brain_mask: np.ndarray | None = None, reference: str = "occipital", *,
                    missing: str = "raise") -> dict[str, float]:
    """:func:`quantify_dat` straight from label images on the image's grid (3-D or 2-D)."""
    masks = region_masks(striatum_labels, reference_labels, brain_mask)
    return quantify_dat(image, masks, reference, missing=missing)


def tissue_masks(gm: np.ndarray, wm: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Grey- and white-matter masks from probability maps: ``p >= threshold`` and ``p > other``."""
    g = np.asarray(gm, dtype=np.float32)
    w = np.asarray(wm, dtype=np.float32)
    if g.shape != w.shape:
        raise QuantError(f"GM and WM maps differ in shape: {g.shape} vs {w.shape}")
    return (g >= threshold) & (g > w), (w >= threshold) & (w > g)


def tissue_core_masks(gm: np.ndarray, wm: np.ndarray, voxel_mm: float | tuple[float, ...] = 1.0, *,
                      smoothing_fwhm_mm: float = CORE_FWHM_MM, gm_level: float = CORE_GM_LEVEL,
                      wm_level: float = CORE_WM_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Grey- and white-matter ROIs for the grey:white ratio, with little partial-volume mixing.

    A voxel belongs to the GM ROI when its GM probability is at least 0.5 (and above its WM
    probability) and the GM fraction of its neighbourhood (Gaussian of ``smoothing_fwhm_mm``)
    is at least ``gm_level``; likewise for WM with ``wm_level`` (the centrum semiovale and
    other deep white matter).  This mirrors ROIs placed on thick cortex/deep grey nuclei and
    deep white matter, where the published perfusion ratios are measured.  The maps must be
    on a grid of ``voxel_mm`` (one value or one per axis); 2-D slices work too.
    """
    from scipy import ndimage

    g = np.clip(np.asarray(gm, dtype=np.float32), 0, 1)
    w = np.clip(np.asarray(wm, dtype=np.float32), 0, 1)
    if g.shape != w.shape:
        raise QuantError(f"GM and WM maps differ in shape: {g.shape} vs {w.shape}")
    vox = np.broadcast_to(np.asarray(voxel_mm, dtype=float), (g.ndim,))
    sigma = smoothing_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / vox
    # (the neighbourhood of an empty map is empty: no filtering needed, e.g. for a CSF core)
    g_near = ndimage.gaussian_filter(g, sigma, mode="constant") if g.any() else g
    w_near = ndimage.gaussian_filter(w, sigma, mode="constant") if w.any() else w
    g_mask, w_mask = tissue_masks(g, w, 0.5)
    return g_mask & (g_near >= gm_level), w_mask & (w_near >= wm_level)


def grey_white_ratio(image: np.ndarray, gm: np.ndarray, wm: np.ndarray, *, missing: str = "raise") -> float:
    """Mean over grey matter divided by mean over white matter (masks or weights)."""
    g = weighted_mean(image, gm, name="GM", missing=missing)
    w = weighted_mean(image, wm, name="WM", missing=missing)
    if not np.isfinite(w) or w == 0:
        return math.nan
    return float(g / w)


def left_right_ratio(image: np.ndarray, left: np.ndarray, right: np.ndarray, *, missing: str = "raise") -> float:
    """Mean counts of the left hemisphere mask divided by those of the right one."""
    lm = weighted_mean(image, left, name="left hemisphere", missing=missing)
    rm = weighted_mean(image, right, name="right hemisphere", missing=missing)
    if not np.isfinite(rm) or rm == 0:
        return math.nan
    return float(lm / rm)
