"""Image metrics of the four studies, as plain functions on numpy arrays.

One implementation each; the workflow's evaluation rules and the tests call these.

* S2/S3 image similarity per slice: :func:`rmse`, :func:`ssim`, :func:`psnr` and the table
  builders :func:`slice_metrics` / :func:`volume_slice_metrics`; the same inside a brain mask,
  with the zero padding cropped away: :func:`brain_box`, :func:`masked_metrics`.  scikit-image is the
  reference implementation; the data range is always an explicit argument and is written
  into every table row, so a reader knows what a PSNR of 26 dB was measured against.
* S0 anatomy: :func:`segment_basal_ganglia` (method below), :func:`anatomy_shape`
  (Anatomy Shape Precision measures), :func:`dice` and :func:`basal_ganglia_agreement`
  (prediction vs original, per hemisphere), :func:`sbr_error_fractions`.
* S1 perfusion statistics: :func:`mean_counts`, :func:`lr_ratio`,
  :func:`s1_image_table`, :func:`mean_sd_maps` (pixel-wise mean and SD maps per level and
  pattern, with the average pixel-wise SD).
* S3 regions: :func:`roi_means`, :func:`roi_table`.

Regional striatal binding ratios, asymmetry index, putamen/caudate ratio and the
left/right ratio itself live in :mod:`spectsynth.quant` (the same code the simulator's
ground truth uses) and are not repeated here.

Array conventions
-----------------
Volumes are RAS+ arrays (``spectsynth.io.load_image`` reorients every input): axis 0 runs
from the subject's left to right, axis 1 from posterior to anterior, axis 2 from inferior
to superior.  An axial slice is ``volume[:, :, k]`` with shape ``(x, y)``; its left
hemisphere is the half with the lower axis-0 indices.  For measures that depend on how a
slice is shown (S0's "row"/"column", "diagonal left-top"), :func:`to_display` turns an
axial RAS slice into the displayed image: anterior at the top and, in the radiological
convention, the subject's left on the image's right.

Bad input (images of different shapes or grids, too few pixels for SSIM's window, no
signal to segment, empty masks) raises :class:`~spectsynth.errors.EvaluationError`
with the problem and a hint; the caller names the experiment and subject by wrapping its
calls in :func:`spectsynth.errors.context`.  No function returns NaN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage import metrics as skm

from .config import CORE_FRAGMENT, declared
from .errors import EvaluationError, context, current_context

log = logging.getLogger(__name__)

CONVENTIONS: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "evaluate.display_convention")["enum"])
ASP_MEASURES = ("AP", "LAT", "DLT", "DRT", "com_row", "com_col")
SIDES = ("L", "R")


# ----------------------------------------------------------------------------- checks
def _log_prefix() -> str:
    """``experiment <name>: subject <id>: `` from the enclosing error context, for log lines."""
    ctx = current_context()
    parts = [f"{k} {ctx[k]}" for k in ("experiment", "subject") if ctx.get(k)]
    return "".join(f"{p}: " for p in parts)


def check_same_shape(prediction, target, *,
                     names: tuple[str, str] = ("prediction", "target")) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as float64 arrays after checking equal shapes and finite values.

    Raises :class:`EvaluationError` otherwise.
    """
    a = np.asarray(prediction, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.shape != b.shape:
        raise EvaluationError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; a metric "
            "compares images on the same grid",
            hint=f"Resample the {names[0]} onto the {names[1]}'s grid (or check that the right "
                 "files were paired)")
    for arr, name in ((a, names[0]), (b, names[1])):
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        if n_bad:
            raise EvaluationError(
                f"{name} holds {n_bad} NaN or Inf values",
                hint="Check the step that wrote it (inference or simulation) for a numerical failure")
    if a.size == 0:
        raise EvaluationError(f"{names[0]} and {names[1]} are empty")
    return a, b


def check_same_grid(prediction_img, target_img, *,
                    atol_mm: float = 1e-3,
                    names: tuple[str, str] = ("prediction", "target")) -> None:
    """Check that two NIfTI images share shape and affine (to ``atol_mm``).

    A prediction written with a wrong affine would overlay the wrong anatomy in a viewer and
    give meaningless voxel-wise metrics, so a mismatch is an error, not a warning.
    """
    sa, sb = tuple(prediction_img.shape[:3]), tuple(target_img.shape[:3])
    if sa != sb:
        raise EvaluationError(
            f"{names[0]} has shape {sa} but {names[1]} has shape {sb}",
            hint=f"Write the {names[0]} on the {names[1]}'s grid (inference stacks slices back "
                 "onto the subject's grid)")
    diff = float(np.abs(np.asarray(prediction_img.affine) - np.asarray(target_img.affine)).max())
    if diff > atol_mm:
        raise EvaluationError(
            f"the affine of the {names[0]} differs from the {names[1]}'s by up to {diff:.4g} mm; "
            "the images are not on the same grid",
            hint=f"Save the {names[0]} with the {names[1]}'s affine (spectsynth.io.image_like) "
                 "or resample it; check that prediction and target belong to the same subject "
                 "and space")


def _check_data_range(data_range: float) -> float:
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        raise EvaluationError(f"data_range {data_range!r} is not a number",
                              hint="Give the intensity range of the slices, e.g. 2.0 for (-1, 1)") from None
    if not math.isfinite(value) or value <= 0:
        raise EvaluationError(f"data_range must be a positive number, got {data_range!r}",
                              hint="Give the intensity range of the slices, e.g. 2.0 for (-1, 1)")
    return value


# ------------------------------------------------------------------ S2/S3 similarity
def rmse(prediction, target) -> float:
    """Root-mean-square error, ``sqrt(mean((prediction - target)**2))``.

    Uses :func:`skimage.metrics.mean_squared_error`; in the units of the images.
    """
    a, b = check_same_shape(prediction, target)
    return float(np.sqrt(skm.mean_squared_error(b, a)))


def psnr(prediction, target, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)`` (scikit-image).

    Identical images give ``inf`` (MSE = 0); :func:`slice_metrics` refuses to write that
    into a table.
    """
    dr = _check_data_range(data_range)
    a, b = check_same_shape(prediction, target)
    mse = skm.mean_squared_error(b, a)
    if mse == 0:
        return math.inf
    return float(skm.peak_signal_noise_ratio(b, a, data_range=dr))


def ssim(prediction, target, *, data_range: float,
         win_size: int | None = None) -> float:
    """Mean structural similarity (scikit-image, Gaussian-free 7x7 window by default).

    ``win_size`` (odd, default 7) shrinks to the largest odd size that fits when a side of
    the image is shorter; images with a side shorter than 3 pixels are refused.

    This is the SSIM the metric tables report (the ``ssim`` column of the evaluations).  It is
    not the one that selects checkpoints: training and selection use the differentiable
    :func:`spectsynth.losses.gaussian_ssim` (Gaussian 11 x 11 window, torch), which the
    generator loss needs anyway; the two definitions give slightly different values for the
    same images.
    """
    dr = _check_data_range(data_range)
    a, b = check_same_shape(prediction, target)
    if a.ndim < 2:
        raise EvaluationError(f"SSIM needs a 2-D or 3-D image, got shape {a.shape}")
    smallest = min(a.shape)
    fits = smallest if smallest % 2 else smallest - 1
    win_size = min(7 if win_size is None else int(win_size), fits)
    if win_size < 3 or win_size % 2 == 0:
        raise EvaluationError(
            f"SSIM window {win_size} does not fit an image of shape {a.shape} (needs an odd "
            f"window >= 3 and <= the shortest side)",
            hint="Compute SSIM on full slices, not on tiny crops")
    return float(skm.structural_similarity(b, a, data_range=dr, win_size=win_size))


MASK_LEVEL = 0.5   # a resized brain mask (0..1) counts a pixel as brain above this


def brain_mask(mask) -> np.ndarray:
    """Boolean brain mask of a (possibly resized, fractional) mask image: pixels above :data:`MASK_LEVEL`."""
    return np.asarray(mask, dtype=np.float64) > MASK_LEVEL


def brain_box(mask, *, margin: int) -> tuple[slice, ...]:
    """The bounding box of a 2-D mask grown by ``margin`` pixels on every side (clipped to the image).

    Raises :class:`EvaluationError` for an empty mask.
    """
    m = np.asarray(mask).astype(bool)
    if not m.any():
        raise EvaluationError("the brain mask of this slice is empty",
                              hint="Choose slices through the brain (the dataset's extent_threshold)")
    box = []
    for axis in range(m.ndim):
        other = tuple(a for a in range(m.ndim) if a != axis)
        idx = np.flatnonzero(m.any(axis=other))
        box.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + margin + 1, m.shape[axis])))
    return tuple(box)


def masked_metrics(prediction, target, mask, *, data_range: float,
                   win_size: int | None = None) -> dict[str, float]:
    """RMSE, SSIM and PSNR of one 2-D slice inside a brain mask.

    ``mask``: boolean (or a 0..1 image, thresholded by :func:`brain_mask`), never taken from
    the target.  RMSE and PSNR use the mask's pixels only.  SSIM is computed on the mask's
    bounding box grown by the SSIM window (:func:`brain_box`), so the zero padding around the
    head drops out, and its SSIM map is averaged over the mask's pixels only: the shared
    background and the shared outline do not count.  Returns ``rmse_brain, ssim_brain,
    psnr_brain, brain_fraction`` (the mask's share of the slice); identical images inside the
    mask give ``psnr_brain`` inf, which :func:`slice_metrics` refuses to tabulate.
    """
    dr = _check_data_range(data_range)
    a, b = check_same_shape(prediction, target)
    m = np.asarray(mask)
    m = m if m.dtype == bool else brain_mask(m)
    if m.shape != a.shape or a.ndim != 2:
        raise EvaluationError(f"masked metrics need 2-D slices and a mask of the same shape, got "
                              f"{a.shape} and {m.shape}")
    win = 7 if win_size is None else int(win_size)
    box = brain_box(m, margin=win)
    pa, pb, pm = a[box], b[box], m[box]
    smallest = min(pa.shape)
    fits = smallest if smallest % 2 else smallest - 1
    win = min(win, fits)
    if win < 3:
        raise EvaluationError(f"the brain box {pa.shape} is too small for an SSIM window",
                              hint="Choose slices through the brain (the dataset's extent_threshold)")
    _, smap = skm.structural_similarity(pb, pa, data_range=dr, win_size=win, full=True)
    mse = float(np.mean((a[m] - b[m]) ** 2))
    return {"rmse_brain": math.sqrt(mse), "ssim_brain": float(smap[pm].mean()),
            "psnr_brain": float(10.0 * math.log10(dr ** 2 / mse)) if mse > 0 else math.inf,
            "brain_fraction": float(m.mean())}


def slice_metrics(prediction, target, *, data_range: float, slice_ids: Sequence | None = None,
                  win_size: int | None = None, masks=None) -> pd.DataFrame:
    """RMSE, SSIM and PSNR per slice of a stack (``(n, H, W)`` or one ``(H, W)`` slice).

    Returns one row per slice with columns ``slice, rmse, ssim, psnr, data_range`` (the
    caller adds experiment and subject): the whole slice, as S2 and S3 computed them.  With
    ``masks`` (brain masks of the same shape, from the input side), also ``rmse_brain,
    ssim_brain, psnr_brain, brain_fraction`` (:func:`masked_metrics`).  A slice whose
    prediction equals its target exactly (PSNR infinite) is an error: blank slices belong out
    of the evaluation set, not in a mean.
    """
    dr = _check_data_range(data_range)
    a, b = check_same_shape(prediction, target)
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim != 3:
        raise EvaluationError(f"expected slices of shape (n, H, W) or (H, W), got {a.shape}")
    if masks is not None:
        masks = np.asarray(masks)
        masks = masks[None] if masks.ndim == 2 else masks
        if masks.shape != a.shape:
            raise EvaluationError(f"brain masks have shape {masks.shape} but the slices {a.shape}")
    ids = list(range(a.shape[0])) if slice_ids is None else list(slice_ids)
    if len(ids) != a.shape[0]:
        raise EvaluationError(f"{len(ids)} slice ids for {a.shape[0]} slices")
    rows = []
    for i, (sid, p, t) in enumerate(zip(ids, a, b, strict=True)):
        value = psnr(p, t, data_range=dr)
        if not math.isfinite(value):
            raise EvaluationError(
                f"slice {sid}: prediction equals target exactly, PSNR is infinite",
                hint="Exclude blank (constant) slices from the evaluation set")
        row = {
            "slice": sid,
            "rmse": rmse(p, t),
            "ssim": ssim(p, t, data_range=dr,
                         win_size=win_size),
            "psnr": value, "data_range": dr,
        }
        if masks is not None:
            row.update(masked_metrics(p, t, masks[i], data_range=dr, win_size=win_size))
            if not math.isfinite(row["psnr_brain"]):
                raise EvaluationError(f"slice {sid}: prediction equals target inside the brain, PSNR is infinite",
                                      hint="Exclude blank (constant) slices from the evaluation set")
        rows.append(row)
    return pd.DataFrame(rows)


def volume_slice_metrics(prediction_img, target_img, *, data_range: float, axis: int = 2,
                         skip_blank: bool = True,
                         atol_mm: float = 1e-3) -> pd.DataFrame:
    """Per-slice metrics of a predicted volume against its target (NIfTI images).

    Checks shape and affine first (:func:`check_same_grid`).  Slices along ``axis`` (2 =
    axial for RAS images) where the target is constant and the prediction equals it are
    skipped when ``skip_blank`` (logged), since their PSNR is infinite and SSIM trivially 1.
    """
    check_same_grid(prediction_img, target_img,
                    atol_mm=atol_mm)
    a = np.moveaxis(np.asanyarray(prediction_img.dataobj, dtype=np.float64), axis, 0)
    b = np.moveaxis(np.asanyarray(target_img.dataobj, dtype=np.float64), axis, 0)
    keep = list(range(a.shape[0]))
    if skip_blank:
        keep = [k for k in keep if not (np.ptp(b[k]) == 0 and np.array_equal(a[k], b[k]))]
        if len(keep) < a.shape[0]:
            log.info("%sskipped %d blank slices", _log_prefix(), a.shape[0] - len(keep))
    if not keep:
        raise EvaluationError("every slice is blank",
                              hint="Check that the target volume holds signal")
    return slice_metrics(a[keep], b[keep], data_range=data_range, slice_ids=keep)


# ------------------------------------------------------------------------ orientation
def to_display(slice_ras, convention: str = "radiological") -> np.ndarray:
    """Turn an axial RAS slice ``(x, y)`` into the displayed image ``(rows, cols)``.

    Anterior is at the top (row 0).  ``radiological``: the subject's left is on the
    image's right (column 0 = subject's right); ``neurological``: left on the left.
    """
    arr = np.asarray(slice_ras)
    if arr.ndim != 2:
        raise ValueError(f"to_display expects a 2-D axial slice, got shape {arr.shape}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    disp = arr.T[::-1, :]  # rows: anterior -> posterior; cols: subject left -> right
    if convention == "radiological":
        disp = disp[:, ::-1]
    return np.ascontiguousarray(disp)


def hemisphere_masks(shape: Sequence[int], *, midline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (left, right) masks of an RAS array split along axis 0.

    ``midline`` is the axis-0 coordinate of the mid-sagittal plane (default: the centre of
    the grid).  A column lying exactly on the midline belongs to neither side.
    """
    shape = tuple(int(s) for s in shape)
    mid = (shape[0] - 1) / 2.0 if midline is None else float(midline)
    x = np.arange(shape[0], dtype=float).reshape((-1,) + (1,) * (len(shape) - 1))
    left = np.broadcast_to(x < mid, shape)
    right = np.broadcast_to(x > mid, shape)
    return left.copy(), right.copy()


# ------------------------------------------------------------------------------ S0
def segment_basal_ganglia(image, *, search_mask=None, fraction: float = 0.5, dilate_px: int = 3,
                          midline: float | None = None, min_size_px: int = 0) -> np.ndarray:
    """Segment the basal ganglia of a DaT image, per hemisphere.

    Method (S0 does not publish its own): the RAS image is split at the midline
    (:func:`hemisphere_masks`).  In each hemisphere the search region is ``search_mask``
    (e.g. the anatomical caudate+putamen labels) dilated by ``dilate_px`` pixels
    (city-block), or the whole hemisphere when no mask is given.  The hemisphere's striatal
    maximum is the largest value in its search region; pixels of the region at or above
    ``fraction`` x that maximum form the segmentation; connected components smaller than
    ``min_size_px`` are dropped.  The same settings are applied to prediction and original,
    so their Dice and shape measures compare like with like.

    Returns an int8 label array: 0 background, 1 left, 2 right basal ganglia.
    """
    img = np.asarray(image, dtype=np.float64)
    if not 0 < fraction < 1:
        raise EvaluationError(f"threshold fraction must be in (0, 1), got {fraction}")
    if not np.all(np.isfinite(img)):
        raise EvaluationError("image holds NaN or Inf values")
    if search_mask is not None:
        region = np.asarray(search_mask).astype(bool)
        if region.shape != img.shape:
            raise EvaluationError(
                f"search mask has shape {region.shape} but the image has shape {img.shape}",
                hint="Cut the anatomical labels with the same slice as the image")
        if not region.any():
            raise EvaluationError("search mask is empty (no basal-ganglia label in this slice)",
                                  hint="Choose a slice through the striatum")
        if dilate_px > 0:
            region = ndimage.binary_dilation(region, iterations=int(dilate_px))
    else:
        region = np.ones(img.shape, dtype=bool)
    left, right = hemisphere_masks(img.shape, midline=midline)
    out = np.zeros(img.shape, dtype=np.int8)
    for value, name, side in ((1, "left", left), (2, "right", right)):
        reg = region & side
        if not reg.any():
            raise EvaluationError(f"the search region has no pixel in the {name} hemisphere",
                                  hint="Check the midline and the search mask")
        peak = float(img[reg].max())
        if peak <= 0:
            raise EvaluationError(
                f"no striatal signal in the {name} hemisphere (maximum {peak:.3g})",
                hint="The image is empty or negative there; check the input scaling")
        seg = reg & (img >= fraction * peak)
        if min_size_px > 1:
            lab, n = ndimage.label(seg)
            sizes = ndimage.sum_labels(seg, lab, index=np.arange(1, n + 1))
            small = np.flatnonzero(sizes < min_size_px) + 1
            seg[np.isin(lab, small)] = False
        out[seg] = value
    return out


def dice(mask_a, mask_b, *, what: str = "masks") -> float:
    """Dice similarity coefficient ``2|A∩B| / (|A| + |B|)`` of two boolean masks.

    Two empty masks have no defined Dice and raise an error.
    """
    a = np.asarray(mask_a).astype(bool)
    b = np.asarray(mask_b).astype(bool)
    if a.shape != b.shape:
        raise EvaluationError(f"{what}: shapes {a.shape} and {b.shape} differ")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        raise EvaluationError(f"{what}: both masks are empty, Dice is undefined")
    return 2.0 * float(np.logical_and(a, b).sum()) / total


def anatomy_shape(mask_display) -> dict[str, float]:
    """S0's Anatomy Shape Precision measures of one displayed 2-D mask, in pixels.

    * ``AP``: extent along the rows (anterior-posterior), ``LAT``: along the columns;
    * ``DLT``: extent along the diagonal from the image's left-top to right-bottom corner,
      ``DRT``: from right-top to left-bottom;
    * ``com_row``, ``com_col``: centre of mass (centroid of the mask) as row and column.

    Extents are caliper (Feret) widths of the union of the pixel squares: ``max - min + 1``
    along rows/columns and ``(max - min) / sqrt(2) + sqrt(2)`` along the diagonals (one pixel
    square spans sqrt(2) on a diagonal).
    """
    m = np.asarray(mask_display).astype(bool)
    if m.ndim != 2:
        raise EvaluationError(f"anatomy shape needs a 2-D mask, got shape {m.shape}")
    if not m.any():
        raise EvaluationError("the segmented basal-ganglia mask is empty",
                              hint="Check the slice choice and the segmentation threshold")
    r, c = np.nonzero(m)
    r = r.astype(float)
    c = c.astype(float)
    s2 = math.sqrt(2.0)
    d_lt = r + c  # grows along left-top -> right-bottom
    d_rt = r - c  # grows along right-top -> left-bottom
    return {
        "AP": float(r.max() - r.min() + 1),
        "LAT": float(c.max() - c.min() + 1),
        "DLT": float((d_lt.max() - d_lt.min()) / s2 + s2),
        "DRT": float((d_rt.max() - d_rt.min()) / s2 + s2),
        "com_row": float(r.mean()),
        "com_col": float(c.mean()),
    }


def basal_ganglia_agreement(prediction, original, *, search_mask=None, fraction: float = 0.5,
                            dilate_px: int = 3, midline: float | None = None,
                            min_size_px: int = 0, convention: str = "radiological",
                            case: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Anatomy Shape Precision and Dice of the basal ganglia, prediction vs original.

    Both axial RAS slices are segmented with :func:`segment_basal_ganglia` (same settings,
    same search mask); shape measures are taken per side on the displayed image
    (:func:`to_display`, ``convention``).

    Returns ``(asp, dice_table)``: ``asp`` has one row per side and measure with columns
    ``case, side, measure, original, prediction, difference, abs_difference`` (px;
    difference = prediction - original); ``dice_table`` has one row per side with ``case,
    side, dice``.  The caller adds experiment and subject.
    """
    p, o = check_same_shape(prediction, original, names=("prediction", "original"))
    if p.ndim != 2:
        raise EvaluationError(f"S0 metrics work on 2-D axial slices, got shape {p.shape}")
    kw = dict(search_mask=search_mask, fraction=fraction, dilate_px=dilate_px, midline=midline,
              min_size_px=min_size_px)
    seg_p = segment_basal_ganglia(p, **kw)
    seg_o = segment_basal_ganglia(o, **kw)
    asp_rows, dice_rows = [], []
    for value, side in ((1, "L"), (2, "R")):
        mp, mo = seg_p == value, seg_o == value
        shape_p = anatomy_shape(to_display(mp, convention))
        shape_o = anatomy_shape(to_display(mo, convention))
        for measure in ASP_MEASURES:
            d = shape_p[measure] - shape_o[measure]
            asp_rows.append({"case": case,
                             "side": side, "measure": measure, "original": shape_o[measure],
                             "prediction": shape_p[measure], "difference": d,
                             "abs_difference": abs(d)})
        dice_rows.append({"case": case, "side": side,
                          "dice": dice(mp, mo,
                                       what=f"{side} basal ganglia")})
    return pd.DataFrame(asp_rows), pd.DataFrame(dice_rows)


def sbr_error_fractions(predicted, true, *, thresholds: Sequence[float] = (0.75, 0.5, 0.25),
                        ) -> pd.DataFrame:
    """Fraction of cases whose absolute SBR error is below each threshold.

    S0 reports 52 % of cases with error < 0.75; tighter thresholds show how far that is
    from a clinically useful match.  Columns: ``threshold, n, n_below, fraction``.
    """
    p, t = check_same_shape(np.ravel(predicted), np.ravel(true),
                            names=("predicted SBR", "true SBR"))
    err = np.abs(p - t)
    rows = []
    for thr in thresholds:
        if not thr > 0:
            raise EvaluationError(f"SBR error threshold must be positive, got {thr}")
        below = int(np.count_nonzero(err < thr))
        rows.append({"threshold": float(thr), "n": int(err.size),
                     "n_below": below, "fraction": below / err.size})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ S1
def _masked(image, mask):
    img = np.asarray(image, dtype=np.float64)
    if mask is None:
        return img.ravel()
    m = np.asarray(mask).astype(bool)
    if m.shape != img.shape:
        raise EvaluationError(f"mask has shape {m.shape} but the image has shape {img.shape}")
    if not m.any():
        raise EvaluationError("mask is empty")
    return img[m]


def mean_counts(image, mask=None) -> float:
    """S1's mean counts (MC): mean pixel value of the image (within ``mask`` if given)."""
    vals = _masked(image, mask)
    if vals.size == 0 or not np.all(np.isfinite(vals)):
        raise EvaluationError("image is empty or holds NaN/Inf")
    return float(vals.mean())


def lr_ratio(image, *, midline: float | None = None) -> float:
    """S1's left/right hemisphere count ratio: mean counts left / mean counts right.

    The image is an RAS slice or volume; hemispheres split along axis 0 at ``midline``
    (default: the grid centre, where both halves hold the same number of pixels and the
    ratio of means equals the ratio of total counts; a centre column counts for neither
    side).  The ratio itself is :func:`spectsynth.quant.left_right_ratio`.
    """
    from .quant import left_right_ratio

    img = np.asarray(image, dtype=np.float64)
    if not np.all(np.isfinite(img)):
        raise EvaluationError("image holds NaN or Inf values")
    left, right = hemisphere_masks(img.shape, midline=midline)
    if not left.any() or not right.any():
        raise EvaluationError(f"midline {midline} leaves a hemisphere without pixels")
    sl, sr = float(img[left].sum()), float(img[right].sum())
    if sr <= 0 or sl < 0:
        raise EvaluationError(
            f"hemisphere counts are not positive (left {sl:.4g}, right {sr:.4g}); the L/R "
            "ratio is undefined",
            hint="Count images must be non-negative; rescale (-1, 1) slices to (0, 1) first")
    return float(left_right_ratio(img, left, right))


def s1_image_table(images, *, levels: Sequence[str], patterns: Sequence[str], source: str,
                   mask=None, midline: float | None = None,
                   ids: Sequence | None = None) -> pd.DataFrame:
    """Per-image S1 measures: mean counts and L/R ratio, with level, pattern and source.

    ``images`` is a stack ``(n, x, y)`` of RAS slices; ``source`` names the image set
    (``real``, ``A``, ``B``).
    """
    stack = np.asarray(images, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    n = stack.shape[0]
    if len(levels) != n or len(patterns) != n:
        raise EvaluationError(f"{n} images but {len(levels)} levels and {len(patterns)} patterns")
    ids = list(range(n)) if ids is None else list(ids)
    rows = []
    for i, (img, lev, pat) in enumerate(zip(stack, levels, patterns, strict=True)):
        who = f"{source} image {ids[i]}"
        with context(subject=who):
            rows.append({"source": source, "image": ids[i], "level": lev, "pattern": pat,
                         "mean_counts": mean_counts(img, mask),
                         "lr_ratio": lr_ratio(img, midline=midline)})
    return pd.DataFrame(rows)


def mean_sd_maps(images, *, levels: Sequence[str], patterns: Sequence[str],
                 mask=None) -> dict[tuple[str, str], dict]:
    """Pixel-wise mean and SD maps per (level, pattern), as S1's Figure 6.

    For each group: ``mean`` and ``sd`` maps (SD with ddof=1 across the group's images),
    ``n`` images and ``average_sd`` — the mean of the SD map over ``mask`` (all pixels when
    no mask), S1's "average pixel-wise SD".  A group needs at least two images.
    """
    stack = np.asarray(images, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    if len(levels) != stack.shape[0] or len(patterns) != stack.shape[0]:
        raise EvaluationError(f"{stack.shape[0]} images but {len(levels)} levels and "
                              f"{len(patterns)} patterns")
    if not np.all(np.isfinite(stack)):
        raise EvaluationError("images hold NaN or Inf values")
    lev = np.asarray(levels)
    pat = np.asarray(patterns)
    out: dict[tuple[str, str], dict] = {}
    for key in dict.fromkeys(zip(levels, patterns, strict=True)):
        sel = (lev == key[0]) & (pat == key[1])
        n = int(sel.sum())
        if n < 2:
            raise EvaluationError(
                f"level {key[0]}, pattern {key[1]} has {n} image; a pixel-wise SD needs at least 2",
                hint="Generate or select more images of this condition")
        group = stack[sel]
        sd = group.std(axis=0, ddof=1)
        out[key] = {"mean": group.mean(axis=0), "sd": sd, "n": n,
                    "average_sd": float(_masked(sd, mask).mean())}
    return out


# ------------------------------------------------------------------------------ S3
def roi_means(image, labels, names: Mapping[int, str], *, min_voxels: int = 1) -> dict[str, float]:
    """Mean image value in each labelled region (``names``: label value -> region name).

    A region with fewer than ``min_voxels`` voxels in ``labels`` is an error.
    """
    img, lab = check_same_shape(image, labels,
                                names=("image", "label map"))
    lab = np.rint(lab).astype(np.int64)
    out = {}
    for value, name in names.items():
        sel = lab == int(value)
        n = int(sel.sum())
        if n < min_voxels:
            raise EvaluationError(
                f"region {name} (label {value}) has {n} voxels, fewer than {min_voxels}",
                hint="Check the atlas propagation for this subject or drop the region from the list")
        out[name] = float(img[sel].mean())
    return out


def roi_table(input_image, prediction, target, labels, names: Mapping[int, str], *,
              min_voxels: int = 1) -> pd.DataFrame:
    """S3's ROI means of input, prediction and target in one tidy table.

    Columns: ``region, input, prediction, target`` (the caller adds experiment and subject).
    """
    check_same_shape(input_image, target, names=("input", "target"))
    check_same_shape(prediction, target)
    mi = roi_means(input_image, labels, names, min_voxels=min_voxels)
    mp = roi_means(prediction, labels, names, min_voxels=min_voxels)
    mt = roi_means(target, labels, names, min_voxels=min_voxels)
    return pd.DataFrame([{"region": name, "input": mi[name], "prediction": mp[name], "target": mt[name]}
                         for name in names.values()])
