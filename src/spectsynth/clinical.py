"""The clinical outputs S0 was aiming at: individual deficits against a predicted normal.

* :func:`percent_deficit` / :func:`deficit_map_image`: voxel-wise percent loss of the
  actual image against the patient's predicted pseudo-normal image, on the subject's grid.
* :func:`regional_measures` and :func:`regional_deficits`: striatal binding ratios
  (computed by :mod:`spectsynth.quant`, the simulator's own code) of the actual and the
  expected image side by side, with the derived indices and a flag where the difference
  exceeds a configurable limit.
* :func:`normal_database`, :func:`zscores`, :func:`zscore_comparison`,
  :func:`database_agreement`: a patient's regional SBR as z-scores against a synthetic
  normal database (drawn from the trained generator) next to the z-scores against the
  real (simulated) normal cohort, so a reader sees whether the synthetic database can
  stand in for a real one.
* :func:`reading_packet`: real and generated images shuffled (seeded) into numbered PNGs
  with a scoring sheet and a separate, hidden key, for blinded visual reading (S1, S3).

Percent loss is ``100 * (expected - actual) / expected``: positive where the patient has
less uptake than expected, negative where more.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import EvaluationError
from .io import image_like
from .metrics import check_same_grid, check_same_shape

log = logging.getLogger(__name__)

DEFAULT_LIMITS = {"sbr_percent": 25.0, "asymmetry_points": 10.0, "ratio_percent": 20.0}


# ---------------------------------------------------------------------- deficit map
def percent_deficit(actual, predicted_normal, *, mask=None, signal_fraction: float = 0.1,
                    experiment: str, subject: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-wise percent loss of ``actual`` against ``predicted_normal``.

    Computed only where the predicted normal has signal: voxels above ``signal_fraction``
    x its maximum (inside ``mask`` when given, e.g. the brain mask).  Elsewhere the map is
    0.  Returns ``(deficit_percent, valid_mask)`` as float32 and bool arrays.
    """
    a, p = check_same_shape(actual, predicted_normal, experiment=experiment, subject=subject,
                            names=("actual image", "predicted normal"))
    if not 0 <= signal_fraction < 1:
        raise EvaluationError(f"signal_fraction must be in [0, 1), got {signal_fraction}",
                              experiment=experiment, subject=subject)
    region = np.ones(p.shape, dtype=bool)
    if mask is not None:
        region = np.asarray(mask).astype(bool)
        if region.shape != p.shape:
            raise EvaluationError(f"mask has shape {region.shape} but the images have shape {p.shape}",
                                  experiment=experiment, subject=subject)
    if not region.any():
        raise EvaluationError("the mask is empty", experiment=experiment, subject=subject)
    peak = float(p[region].max())
    if peak <= 0:
        raise EvaluationError(
            "the predicted normal image has no positive signal; a percent loss is undefined",
            experiment=experiment, subject=subject,
            hint="Check that the prediction was rescaled to counts (not left in (-1, 1))")
    valid = region & (p > signal_fraction * peak)
    out = np.zeros(p.shape, dtype=np.float32)
    out[valid] = (100.0 * (p[valid] - a[valid]) / p[valid]).astype(np.float32)
    return out, valid


def deficit_map_image(actual_img, predicted_img, *, mask_img=None, signal_fraction: float = 0.1,
                      experiment: str, subject: str | None = None, atol_mm: float = 1e-3):
    """:func:`percent_deficit` on NIfTI images; grids are checked, outputs keep the affine.

    Returns ``(deficit_img, valid_mask_img)`` (float32 percent, uint8 mask) on the actual
    image's grid.
    """
    check_same_grid(predicted_img, actual_img, experiment=experiment, subject=subject,
                    atol_mm=atol_mm, names=("predicted normal", "actual image"))
    mask = None
    if mask_img is not None:
        check_same_grid(mask_img, actual_img, experiment=experiment, subject=subject,
                        atol_mm=atol_mm, names=("mask", "actual image"))
        mask = np.asanyarray(mask_img.dataobj) > 0
    deficit, valid = percent_deficit(np.asanyarray(actual_img.dataobj),
                                     np.asanyarray(predicted_img.dataobj), mask=mask,
                                     signal_fraction=signal_fraction, experiment=experiment,
                                     subject=subject)
    return (image_like(deficit, actual_img, dtype=np.float32),
            image_like(valid.astype(np.uint8), actual_img, dtype=np.uint8))


def striatal_slice(striatum_labels, *, experiment: str, subject: str | None = None) -> int:
    """Index of the axial slice (axis 2 of an RAS volume) with the most striatal voxels."""
    lab = np.asarray(striatum_labels)
    if lab.ndim != 3:
        raise EvaluationError(f"expected a 3-D label volume, got shape {lab.shape}",
                              experiment=experiment, subject=subject)
    counts = (lab > 0).sum(axis=(0, 1))
    if counts.max() == 0:
        raise EvaluationError("the striatum label map is empty", experiment=experiment,
                              subject=subject, hint="Check the anatomy stage's output")
    return int(np.argmax(counts))


# --------------------------------------------------------------------- regional SBR
def regional_measures(image, striatum_labels, reference_labels=None, brain_mask=None, *,
                      reference: str = "occipital", experiment: str,
                      subject: str | None = None) -> dict[str, float]:
    """DaT measures of one image through :func:`spectsynth.quant.quantify_labels`.

    The single call point, so the clinical tables use exactly the simulator's definitions:
    ``sbr_<region>`` (caudate/putamen/striatum per side and both), ``ai_caudate``,
    ``ai_putamen``, ``ai_striatum`` (asymmetry index, percent), ``pc_ratio``,
    ``pc_ratio_L``, ``pc_ratio_R``.  Works on volumes and 2-D slices (labels on the
    image's grid).  An empty region or an undefined index is an error naming the subject.
    """
    from . import quant

    try:
        values = quant.quantify_labels(np.asarray(image), np.asarray(striatum_labels),
                                       None if reference_labels is None else np.asarray(reference_labels),
                                       None if brain_mask is None else np.asarray(brain_mask),
                                       reference=reference)
    except quant.QuantError as exc:
        raise EvaluationError(f"regional quantification failed: {exc}", experiment=experiment,
                              subject=subject,
                              hint="Check that the labels belong to this image's grid") from exc
    values.pop("reference_mean", None)
    bad = sorted(k for k, v in values.items() if not math.isfinite(v))
    if bad:
        raise EvaluationError(f"undefined regional measures {bad} (zero caudate SBR or zero "
                              "striatal uptake)", experiment=experiment, subject=subject,
                              hint="The image has no striatal signal above the reference")
    return {str(k): float(v) for k, v in values.items()}


def measure_kind(name: str) -> str:
    """Which limit applies to a quantity: ``asymmetry``, ``ratio`` or ``sbr``."""
    low = name.lower()
    if "asym" in low or low == "ai" or low.startswith("ai_"):
        return "asymmetry"
    if "ratio" in low or ("putamen" in low and "caudate" in low):
        return "ratio"
    return "sbr"


def regional_deficits(actual: Mapping[str, float], expected: Mapping[str, float], *,
                      limits: Mapping[str, float] | None = None, experiment: str,
                      subject: str | None = None) -> pd.DataFrame:
    """Actual vs expected regional values with flags (S0's individualised evaluation).

    ``actual`` / ``expected`` are :func:`regional_measures` of the patient's image and of
    its predicted normal (same keys).  Per quantity: ``difference = actual - expected``;
    ``change`` is ``100 * difference / |expected|`` (``change_unit`` ``%``) for binding
    ratios and ratios, and the difference itself (``points``) for asymmetry indices, which
    are already percentages; ``flag`` is set when ``|change|`` exceeds the limit of the
    quantity's kind (``limits``: ``sbr_percent``, ``ratio_percent``, ``asymmetry_points``).
    """
    lim = {**DEFAULT_LIMITS, **(limits or {})}
    for key in ("sbr_percent", "asymmetry_points", "ratio_percent"):
        if not float(lim[key]) > 0:
            raise EvaluationError(f"deficit flag limit {key} must be positive, got {lim[key]}",
                                  experiment=experiment, subject=subject)
    missing = sorted(set(actual) ^ set(expected))
    if missing:
        raise EvaluationError(f"actual and expected measures differ in keys {missing}",
                              experiment=experiment, subject=subject,
                              hint="Quantify both images with the same labels and reference")
    rows = []
    for name in actual:
        a, e = float(actual[name]), float(expected[name])
        if not (math.isfinite(a) and math.isfinite(e)):
            raise EvaluationError(f"{name}: non-finite value (actual {a}, expected {e})",
                                  experiment=experiment, subject=subject)
        kind = measure_kind(name)
        diff = a - e
        if kind == "asymmetry":
            limit = float(lim["asymmetry_points"])
            pct = None
            flag = abs(diff) > limit
            reason = f"|difference| {abs(diff):.3g} > {limit:g} points" if flag else ""
        else:
            if e == 0:
                raise EvaluationError(f"{name}: expected value is 0; a percent change is undefined",
                                      experiment=experiment, subject=subject)
            limit = float(lim["sbr_percent" if kind == "sbr" else "ratio_percent"])
            pct = 100.0 * diff / abs(e)
            flag = abs(pct) > limit
            reason = f"|change| {abs(pct):.3g}% > {limit:g}%" if flag else ""
        rows.append({"experiment": experiment, "subject": subject, "measure": name, "kind": kind,
                     "actual": a, "expected": e, "difference": diff,
                     "change": pct if pct is not None else diff,
                     "change_unit": "%" if pct is not None else "points",
                     "limit": limit, "flag": bool(flag), "flag_reason": reason})
    return pd.DataFrame(rows)


def regional_deficit_table(actual, expected, striatum_labels, reference_labels=None, brain_mask=None, *,
                           reference: str = "occipital", limits: Mapping[str, float] | None = None,
                           experiment: str, subject: str | None = None) -> pd.DataFrame:
    """:func:`regional_deficits` straight from the actual image and the predicted normal.

    Both images are quantified with the same labels (:func:`regional_measures`).
    """
    check_same_shape(actual, expected, experiment=experiment, subject=subject,
                     names=("actual image", "predicted normal"))
    kw = dict(reference=reference, experiment=experiment, subject=subject)
    a = regional_measures(actual, striatum_labels, reference_labels, brain_mask, **kw)
    e = regional_measures(expected, striatum_labels, reference_labels, brain_mask, **kw)
    return regional_deficits(a, e, limits=limits, experiment=experiment, subject=subject)


# ------------------------------------------------------------ normal database, z
def normal_database(images: Sequence, striatum_labels, reference_labels=None, brain_mask=None, *,
                    reference: str = "occipital", experiment: str, ids: Sequence | None = None,
                    source: str = "synthetic") -> pd.DataFrame:
    """Regional measures (:func:`regional_measures`) of a set of normal images, one row each.

    The label images are either one array shared by all images (images on a common grid,
    e.g. generated slices in template space) or a list with one array per image.
    """
    n = len(images)
    if n == 0:
        raise EvaluationError(f"the {source} normal database has no images", experiment=experiment,
                              hint="Raise evaluate.n_synthetic_normals or check the generator output")

    def pick(x, i):
        return x[i] if isinstance(x, (list, tuple)) else x

    ids = list(range(n)) if ids is None else list(ids)
    rows = []
    for i, img in enumerate(images):
        m = regional_measures(img, pick(striatum_labels, i), pick(reference_labels, i),
                              pick(brain_mask, i), reference=reference, experiment=experiment,
                              subject=f"{source} normal {ids[i]}")
        rows.append({"source": source, "image": ids[i], **m})
    return pd.DataFrame(rows)


def zscores(patient: Mapping[str, float], database: pd.DataFrame, *, regions: Sequence[str] | None = None,
            experiment: str, subject: str | None = None, min_n: int = 3,
            name: str = "database") -> pd.DataFrame:
    """z = (patient - mean) / sd (ddof=1) of each region against a normal database.

    Columns: ``region, patient, mean, sd, n, z``.  A database with fewer than ``min_n``
    images or zero spread in a region is an error.
    """
    regions = list(regions) if regions is not None else [r for r in patient if r in database.columns]
    if not regions:
        raise EvaluationError(f"no region of the patient is a column of the {name}",
                              experiment=experiment, subject=subject)
    rows = []
    for r in regions:
        if r not in database.columns or r not in patient:
            raise EvaluationError(f"region {r!r} is missing from the patient or the {name}",
                                  experiment=experiment, subject=subject)
        v = database[r].to_numpy(dtype=float)
        if v.size < min_n:
            raise EvaluationError(f"the {name} has {v.size} images; z-scores need at least {min_n}",
                                  experiment=experiment, subject=subject,
                                  hint="Add normals (evaluate.n_synthetic_normals) or subjects")
        if not np.all(np.isfinite(v)):
            raise EvaluationError(f"the {name} holds non-finite values in {r}", experiment=experiment,
                                  subject=subject)
        sd = float(v.std(ddof=1))
        if sd == 0:
            raise EvaluationError(f"the {name} has no spread in {r}; z-scores are undefined",
                                  experiment=experiment, subject=subject,
                                  hint="The normals are identical; check the generator's sampling")
        mean = float(v.mean())
        x = float(patient[r])
        rows.append({"region": r, "patient": x, "mean": mean, "sd": sd, "n": int(v.size),
                     "z": (x - mean) / sd})
    return pd.DataFrame(rows)


def zscore_comparison(patient: Mapping[str, float], synthetic_db: pd.DataFrame, real_db: pd.DataFrame,
                      *, regions: Sequence[str] | None = None, z_limit: float = 2.0, experiment: str,
                      subject: str | None = None, min_n: int = 3) -> pd.DataFrame:
    """Patient z-scores against the synthetic and the real normal database, side by side.

    Columns: ``region, patient``, then ``synthetic_*`` and ``real_*`` (mean, sd, n, z,
    flag = |z| > ``z_limit``), ``z_difference`` (synthetic - real) and ``agree`` (both
    databases give the same flag).
    """
    kw = dict(regions=regions, experiment=experiment, subject=subject, min_n=min_n)
    zs = zscores(patient, synthetic_db, name="synthetic normal database", **kw)
    zr = zscores(patient, real_db, name="real normal cohort", **kw)
    out = pd.DataFrame({"experiment": experiment, "subject": subject, "region": zs["region"],
                        "patient": zs["patient"]})
    for prefix, z in (("synthetic", zs), ("real", zr)):
        for col in ("mean", "sd", "n", "z"):
            out[f"{prefix}_{col}"] = z[col].to_numpy()
        out[f"{prefix}_flag"] = np.abs(z["z"].to_numpy()) > z_limit
    out["z_difference"] = out["synthetic_z"] - out["real_z"]
    out["agree"] = out["synthetic_flag"] == out["real_flag"]
    out["z_limit"] = z_limit
    return out


def database_agreement(synthetic_db: pd.DataFrame, real_db: pd.DataFrame, *, regions: Sequence[str],
                       experiment: str) -> pd.DataFrame:
    """How closely the synthetic normal database matches the real one, per region.

    Columns: means, SDs and n of both, ``sd_ratio`` (synthetic / real), ``std_mean_difference``
    (difference of means over the real SD) and a Welch t-test (``t``, ``p``).
    """
    from scipy import stats as sps

    rows = []
    for r in regions:
        s = synthetic_db[r].to_numpy(dtype=float)
        q = real_db[r].to_numpy(dtype=float)
        if s.size < 2 or q.size < 2:
            raise EvaluationError(f"{r}: databases of {s.size} and {q.size} images; need at least 2 each",
                                  experiment=experiment)
        sd_s, sd_r = float(s.std(ddof=1)), float(q.std(ddof=1))
        if sd_r == 0 or sd_s == 0:
            raise EvaluationError(f"{r}: a database has no spread", experiment=experiment)
        t = sps.ttest_ind(s, q, equal_var=False)
        rows.append({"experiment": experiment, "region": r, "synthetic_mean": float(s.mean()),
                     "synthetic_sd": sd_s, "synthetic_n": int(s.size), "real_mean": float(q.mean()),
                     "real_sd": sd_r, "real_n": int(q.size), "sd_ratio": sd_s / sd_r,
                     "std_mean_difference": (float(s.mean()) - float(q.mean())) / sd_r,
                     "test": "Welch t-test", "t": float(t.statistic), "p": float(t.pvalue)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ reading packet
def _write_csv(rows: list[dict], path: Path, fields: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _packet_png(img: np.ndarray, number: str, path: Path, *, convention: str, cmap: str,
                footer: str | None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .metrics import to_display
    from .plots import label_sides

    arr = np.asarray(img, dtype=float)
    lo, hi = float(arr.min()), float(arr.max())
    disp = to_display((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr), convention)
    fig = Figure(figsize=(4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.08, 0.96, 0.84))
    ax.imshow(disp, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    label_sides(ax, convention, fontsize=11)
    fig.text(0.5, 0.95, f"image {number}", ha="center", va="center", fontsize=12)
    if footer:
        fig.text(0.5, 0.03, footer, ha="center", va="center", fontsize=7, color="0.4")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})


def reading_packet(real: Sequence[np.ndarray], generated: Sequence[np.ndarray], *,
                   out_dir: str | Path, key_path: str | Path, experiment: str, seed: int = 0,
                   n_per_source: int | None = None, real_ids: Sequence | None = None,
                   generated_ids: Sequence | None = None, real_conditions: Sequence[str] | None = None,
                   generated_conditions: Sequence[str] | None = None,
                   convention: str = "radiological", cmap: str = "hot", score_scale: int = 5,
                   footer: str | None = None) -> dict[str, Path | int]:
    """Write a blinded reading packet: numbered PNGs, a scoring sheet and a hidden key.

    ``n_per_source`` images are drawn from each source (all when None; the smaller source
    caps it), shuffled with ``seed`` and numbered ``001..``.  Every image is scaled to its
    own range and drawn identically, so nothing but the content tells the sources apart.
    ``out_dir`` receives ``image-NNN.png`` and ``scoring_sheet.csv`` (columns ``image,
    file, score_1_to_<scale>, judged_real_yes_no, comment``); the key (``image, file,
    source, original_id, condition``) goes to ``key_path``, which must lie outside
    ``out_dir`` so the packet can be handed out without it.
    """
    out_dir = Path(out_dir)
    key_path = Path(key_path)
    if key_path.resolve().is_relative_to(out_dir.resolve()):
        raise EvaluationError(f"the key {key_path} lies inside the packet folder {out_dir}",
                              experiment=experiment,
                              hint="Write the key to a separate folder so readers never see it")
    if not real or not generated:
        raise EvaluationError(f"reading packet needs both sources (real {len(real)}, generated "
                              f"{len(generated)})", experiment=experiment)
    shapes = {np.asarray(x).shape for x in [*real, *generated]}
    if len(shapes) != 1:
        raise EvaluationError(f"images of different shapes {sorted(shapes)} would unblind the "
                              "reading", experiment=experiment,
                              hint="Resample generated and real slices to one grid")
    rng = np.random.default_rng(seed)
    k = min(len(real), len(generated)) if n_per_source is None else int(n_per_source)
    if k < 1 or k > min(len(real), len(generated)):
        raise EvaluationError(f"n_per_source {k} must be between 1 and {min(len(real), len(generated))}",
                              experiment=experiment)
    items = []
    for source, imgs, ids, conds in (("real", real, real_ids, real_conditions),
                                     ("generated", generated, generated_ids, generated_conditions)):
        ids = list(range(len(imgs))) if ids is None else list(ids)
        conds = [""] * len(imgs) if conds is None else list(conds)
        for i in sorted(rng.choice(len(imgs), size=k, replace=False)):
            items.append((source, imgs[i], ids[i], conds[i]))
    order = rng.permutation(len(items))
    width = max(3, len(str(len(items))))
    sheet, key = [], []
    for number, idx in enumerate(order, start=1):
        source, img, oid, cond = items[idx]
        num = f"{number:0{width}d}"
        fname = f"image-{num}.png"
        _packet_png(img, num, out_dir / fname, convention=convention, cmap=cmap, footer=footer)
        sheet.append({"image": num, "file": fname, f"score_1_to_{score_scale}": "",
                      "judged_real_yes_no": "", "comment": ""})
        key.append({"image": num, "file": fname, "source": source, "original_id": oid,
                    "condition": cond})
    _write_csv(sheet, out_dir / "scoring_sheet.csv",
               ["image", "file", f"score_1_to_{score_scale}", "judged_real_yes_no", "comment"])
    _write_csv(key, key_path, ["image", "file", "source", "original_id", "condition"])
    log.info("experiment %s: reading packet of %d images in %s, key in %s", experiment, len(items),
             out_dir, key_path)
    return {"packet_dir": out_dir, "scoring_sheet": out_dir / "scoring_sheet.csv", "key": key_path,
            "n_images": len(items)}
