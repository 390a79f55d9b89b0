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

Percent loss is ``100 * (expected - actual) / expected``: positive where the patient has
less uptake than expected, negative where more.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import EvaluationError, context
from ...io import image_like, save_image
from ...metrics import check_same_grid, check_same_shape
from ...paths import bids_label, bids_name
from . import CLINICAL_TASK

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
    with context(experiment=experiment, subject=subject):
        a, p = check_same_shape(actual, predicted_normal, names=("actual image", "predicted normal"))
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
    mask = None
    with context(experiment=experiment, subject=subject):
        check_same_grid(predicted_img, actual_img, atol_mm=atol_mm, names=("predicted normal", "actual image"))
        if mask_img is not None:
            check_same_grid(mask_img, actual_img, atol_mm=atol_mm, names=("mask", "actual image"))
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
    from ... import quant

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
    with context(experiment=experiment, subject=subject):
        check_same_shape(actual, expected, names=("actual image", "predicted normal"))
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
    databases give the same verdict: both unflagged, or both flagged on the same side).
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
    # the same verdict: both normal, or both abnormal on the same side of the mean
    same_side = np.sign(out["synthetic_z"].to_numpy()) == np.sign(out["real_z"].to_numpy())
    out["agree"] = (out["synthetic_flag"] == out["real_flag"]) & (~out["synthetic_flag"] | same_side)
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


# ------------------------------------------------------------ the workflow's runners
SLICE_REGIONS = ("sbr_L", "sbr_R")
SUBJECT_FILE_KEYS = ("t1w", "striatum", "reference", "brain", "dat", "dat_truth")


def slice_sbr(image_ras: np.ndarray, *, seg_cfg: Mapping, experiment: str, subject: str | None = None
              ) -> dict[str, float]:
    """Slice binding ratio per hemisphere of one axial RAS slice (any units): the basal
    ganglia segmented in the slice itself (:func:`spectsynth.metrics.segment_basal_ganglia`,
    S0's segmentation settings) over the slice's brain background
    (:func:`spectsynth.studies.s0.regions.slice_binding_ratios`).  Keys ``sbr_L``, ``sbr_R``.

    The one measure that applies alike to a patient's slice, a real normal and a generated
    normal (which has no anatomy to carry labels).
    """
    from ...metrics import segment_basal_ganglia
    from .regions import slice_binding_ratios

    with context(experiment=experiment, subject=subject):
        seg = segment_basal_ganglia(image_ras, fraction=float(seg_cfg["threshold_fraction"]),
                                    min_size_px=int(seg_cfg["min_size_px"]), dilate_px=0)
    r = slice_binding_ratios(image_ras, seg, experiment=experiment, subject=subject)
    return {"sbr_L": r["L"], "sbr_R": r["R"]}


def _slice_database(images_ras: np.ndarray, ids: Sequence, *, source: str, seg_cfg: Mapping,
                    experiment: str, notes: list) -> pd.DataFrame:
    rows, failed = [], []
    for img, oid in zip(images_ras, ids, strict=True):
        try:
            m = slice_sbr(img, seg_cfg=seg_cfg, experiment=experiment, subject=f"{source} normal {oid}")
        except EvaluationError as exc:
            failed.append(f"{oid}: {exc}")
            continue
        rows.append({"source": source, "image": oid, **m})
    if failed:
        notes.append({"study": "S0", "what": f"{source} normal database: {len(failed)} of {len(ids)} images "
                      "left out", "reason": "; ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")})
    return pd.DataFrame(rows, columns=["source", "image", *SLICE_REGIONS])


def real_normal_slices(shards: Mapping[str, str], index_tsv: str | Path, *, channel: str,
                       experiment: str) -> tuple[np.ndarray, list[str]]:
    """The real (simulated) normal cohort: one original (undegraded) slice per subject of the
    train and val splits, which the test patients are never part of.  RAS ``(n, x, y)``."""
    from ...datasets import SliceShard
    from ...evaluate import shard_to_ras
    from ...infer import read_index

    images, ids = [], []
    for split in ("train", "val"):   # val may share subjects with train: one slice per subject
        if split not in shards:
            continue
        index = read_index(index_tsv, split=split, experiment=experiment)
        index = index[~index["subject"].isin(ids)].drop_duplicates("subject", keep="first")
        if index.empty:
            continue
        shard = SliceShard(shards[split])
        ch = shard.channel_index([channel])[0]
        stack = shard.all_images()
        for _, row in index.iterrows():
            images.append(shard_to_ras(stack[int(row["shard_row"]), ch]))
            ids.append(str(row["subject"]))
    if not images:
        raise EvaluationError("the train and val splits hold no normal slice", experiment=experiment,
                              hint="Give dataset s0 train subjects")
    return np.stack(images), ids


def mean_training_normal(shards: Mapping[str, str], index_tsv: str | Path, *, channel: str,
                         experiment: str) -> tuple[np.ndarray, list[str]]:
    """S0 clinical baseline: the pixel-wise mean of the original (normal) slices of the TRAINING
    subjects (one slice per subject, the dataset's normalised units, shard orientation), the
    "predicted normal" a model must beat.  No validation or test subject enters it."""
    from ...datasets import SliceShard
    from ...infer import read_index

    if "train" not in shards:
        raise EvaluationError("the mean-normal baseline needs the training shard", experiment=experiment)
    index = read_index(index_tsv, split="train", experiment=experiment).drop_duplicates("subject", keep="first")
    if index.empty:
        raise EvaluationError("the training split holds no slice; the mean-normal baseline is undefined",
                              experiment=experiment, hint="Give dataset s0 training subjects")
    shard = SliceShard(shards["train"])
    ch = shard.channel_index([channel])[0]
    stack = shard.all_images()
    rows = index["shard_row"].astype(int).to_numpy()
    return stack[rows, ch].astype(np.float64).mean(axis=0), index["subject"].astype(str).tolist()


PREDICTORS = {"model": "the model's predicted normal", "baseline": "mean normal of the training subjects",
              "constant": "training-mean regional measures (constant binding ratios, no image)"}
LOSS_COLUMNS = {"model": "striatal_loss_percent", "baseline": "baseline_striatal_loss_percent",
                "constant": "constant_striatal_loss_percent"}
SUMMARY_COLUMNS = ["experiment", "predictor", "description", "n", "n_counts", "records", "regional_rows",
                   "flag_matches_truth", "sbr_change_abs_error", "striatal_loss_abs_error"]


def implied_striatal_loss(actual_sbr: float, expected_sbr: float) -> float:
    """Percent striatal loss against a predicted normal given only by its striatal binding ratio
    (the constant predictor): with the same reference, ``100 (S_exp - S_act) / (1 + S_exp)``."""
    return 100.0 * (float(expected_sbr) - float(actual_sbr)) / (1.0 + float(expected_sbr))


def constant_measures(measures: Sequence[Mapping[str, float]], *, experiment: str) -> dict[str, float]:
    """The constant predictor's expected regional measures: the mean of each measure over the
    TRAINING subjects' normal slices (one mapping per subject)."""
    if not measures:
        raise EvaluationError("no training subject's regional measures; the constant predictor is undefined",
                              experiment=experiment, hint="Give dataset s0 training subjects")
    keys = list(measures[0])
    return {k: float(np.mean([m[k] for m in measures])) for k in keys}


def deficit_summary(regional: pd.DataFrame, maps: pd.DataFrame, *, experiment: str) -> pd.DataFrame:
    """How well each predicted normal (the model's, the mean-normal baseline, the constant
    training-mean ratios) leads to the deficits the true normal gives: per predictor, the share
    of regional flags that match the true normal's, the mean |change - truth_change| of the
    binding ratios, and the mean |striatal loss - true striatal loss| (the deficit maps'; for
    the constant predictor the loss its ratio implies, :func:`implied_striatal_loss`).

    Two rows per predictor: ``n_counts`` ``records`` (every test record counts once) and
    ``subjects`` (each test subject's mean over its records, averaged over the subjects: the
    patient as the unit); ``n`` is the number of records or subjects."""
    rows = []
    for key in PREDICTORS:
        reg = regional[regional["predictor"] == key] if len(regional) else regional
        loss_col = LOSS_COLUMNS[key]
        if loss_col not in maps.columns or maps.empty or reg.empty:
            continue
        reg = reg.assign(subject=reg["subject"].astype(str)) if "subject" in reg.columns else reg.assign(subject="")
        sbr = reg[reg["kind"] == "sbr"].assign(err=lambda d: (d["change"] - d["truth_change"]).abs())
        mp = maps.assign(subject=maps["subject"].astype(str) if "subject" in maps.columns else "",
                         err=(maps[loss_col] - maps["true_striatal_loss_percent"]).abs())
        rows.append({"experiment": experiment, "predictor": key, "description": PREDICTORS[key],
                     "n": int(len(maps)), "n_counts": "records", "records": int(len(maps)),
                     "regional_rows": int(len(reg)),
                     "flag_matches_truth": float(reg["flag_matches_truth"].mean()),
                     "sbr_change_abs_error": float(sbr["err"].mean()) if len(sbr) else 0.0,
                     "striatal_loss_abs_error": float(mp["err"].mean())})
        subjects = sorted(set(mp["subject"]))
        flag = reg.groupby("subject")["flag_matches_truth"].mean()
        sbr_s = sbr.groupby("subject")["err"].mean()
        loss_s = mp.groupby("subject")["err"].mean()
        rows.append({"experiment": experiment, "predictor": key, "description": PREDICTORS[key],
                     "n": len(subjects), "n_counts": "subjects", "records": int(len(maps)),
                     "regional_rows": int(len(reg)),
                     "flag_matches_truth": float(flag.reindex(subjects).mean()),
                     "sbr_change_abs_error": float(sbr_s.reindex(subjects).fillna(0.0).mean()),
                     "striatal_loss_abs_error": float(loss_s.reindex(subjects).mean())})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _on_grid(path: str, shape, affine, *, order: int, subject: str):
    from nibabel.processing import resample_from_to

    from ...io import load_image

    img = load_image(path, subject=subject)
    return np.asarray(resample_from_to(img, (tuple(shape), affine), order=order, mode="constant", cval=0).dataobj)


def _truth_volume_index(truth_path: str, desc: str, *, experiment: str, subject: str) -> tuple[int, int]:
    truth = pd.read_csv(truth_path, sep="\t", keep_default_na=False, dtype={"subject": str})
    hit = truth[(truth["desc"].astype(str) == str(desc)) & (truth["pattern"] != "normal")]
    if hit.empty:
        raise EvaluationError(f"no degraded volume {desc!r} in the truth table {truth_path}",
                              experiment=experiment, subject=subject,
                              hint="The predictions and the simulation disagree; rerun the simulation and dataset")
    return int(hit["index"].iat[0]), int(hit["pair_index"].iat[0])


def s0_clinical_outputs(experiment: str, *, predictions: Mapping[str, str], best_pt: str,
                        normal_shards: Mapping[str, str], subject_files: Mapping[str, Mapping[str, str]],
                        out: Mapping[str, str], cfg: Mapping, seg_cfg: Mapping, spec: Mapping,
                        scale_label: str, convention: str = "radiological", dpi: int = 150, seed: int = 0,
                        batch_size: int = 64, device: str = "auto") -> dict[str, pd.DataFrame]:
    """The clinical outputs of one S0 VAE experiment (a model trained on normal slices only).

    For every test record (a patient's degraded slice) the VAE's prediction is the patient's
    pseudo-normal.  Written to ``out``:

    * ``deficit_maps`` (folder): per record a NIfTI of the voxel-wise percent loss
      (:func:`percent_deficit`, inside the brain, where the predicted normal has signal) on
      the subject's SPECT grid (the predicted axial slice filled, 0 elsewhere), and
      ``deficit_maps.tsv`` (file, slice, mean loss in the striatum against the predicted and
      against the known true normal);
    * ``deficit_figure``: T1w, actual, predicted normal, deficit overlay and the deficit
      against the true normal for the first ``cfg['n_figure_cases']`` records;
    * ``regional_deficits``: :func:`regional_deficit_table` of actual vs predicted normal,
      with the same against the true normal (``truth_*`` columns) so the flags can be checked;
      ``predictor`` = ``model`` (the VAE's prediction) or ``baseline`` (the mean normal of the
      training subjects, :func:`mean_training_normal`, scaled with the record's own constants),
      the rows a predicted normal must beat; ``deficit_maps.tsv`` carries the baseline's
      striatal loss beside the model's;
    * ``deficit_summary`` (when given): :func:`deficit_summary`, model vs baseline against the
      true normal;
    * ``normal_database``, ``zscores``, ``database_agreement``, ``zscore_figure``: slice
      binding ratios (:func:`slice_sbr`) of ``cfg['n_synthetic_normals']`` images sampled
      from the VAE's prior and of the real normal cohort (:func:`real_normal_slices`), each
      patient's z-scores against both (:func:`zscore_comparison`) and how the two databases
      compare (:func:`database_agreement`);
    * ``not_computed``: what the data could not support, and why.
    """
    import nibabel as nib

    from ... import plots as P
    from ...evaluate import attempt, figure_label, notes_frame, shard_to_ras
    from ...infer import load_predictions, slice_to_grid, source_grid
    from ...io import write_table
    from ...models.vae.infer import sample_vae

    if spec.get("task") != CLINICAL_TASK:
        raise EvaluationError(f"the clinical outputs need a VAE trained on normal slices (task "
                              f"{CLINICAL_TASK}), not a {spec.get('model')!r} of task {spec.get('task')!r}",
                              experiment=experiment)
    notes: list[dict] = []
    arrays, table, attrs = load_predictions(predictions["h5"], predictions["tsv"], experiment=experiment)
    target = (json.loads(attrs.get("spec", "{}")).get("target_channels") or ["original"])[0]
    gain_col, bias_col = f"gain_{target}", f"bias_{target}"
    need = {gain_col, bias_col, "subject", "slice_index", "desc", "record", "source"}
    if need - set(table.columns):
        raise EvaluationError(f"the prediction table lacks columns {sorted(need - set(table.columns))}",
                              experiment=experiment, hint="Rebuild the dataset and rerun predict_experiment")
    missing = sorted(set(table["subject"]) - set(subject_files))
    if missing:
        raise EvaluationError(f"no anatomy/simulation files given for test subjects {missing}",
                              experiment=experiment, hint="The workflow passes every subject's files")
    limits = dict(cfg.get("limits") or {})
    frac = float(cfg["signal_fraction"])
    # the baseline a predicted normal must beat: the mean normal of the training subjects
    mean_normal, _ = mean_training_normal(normal_shards, normal_shards["index"], channel=target,
                                          experiment=experiment)
    grids: dict[str, dict] = {}

    def grid_of(subject: str, source: str) -> dict:
        if subject not in grids:
            files = subject_files[subject]
            shape, affine, _ = source_grid(source, experiment=experiment, subject=subject)
            grids[subject] = {
                "shape": shape, "affine": affine, "dat": nib.load(files["dat"]),
                "t1w": _on_grid(files["t1w"], shape, affine, order=1, subject=subject),
                "brain": _on_grid(files["brain"], shape, affine, order=0, subject=subject) > 0,
                "striatum": np.rint(_on_grid(files["striatum"], shape, affine, order=0, subject=subject)),
                "reference": np.rint(_on_grid(files["reference"], shape, affine, order=0, subject=subject)),
            }
        return grids[subject]

    # the constant predictor: training subjects' mean regional measures of their normal slices
    from ...infer import read_index

    train_rows = read_index(normal_shards["index"], split="train", experiment=experiment)
    train_rows = train_rows.drop_duplicates("subject", keep="first")
    train_measures = []
    for _, trow in train_rows.iterrows():
        tsub, src = str(trow["subject"]), str(trow["source"])
        if tsub not in subject_files or not src.endswith("]"):
            continue
        tg = grid_of(tsub, src)
        tz, tvol = int(trow["slice_index"]), int(src.rsplit("[", 1)[1].rstrip("]"))
        m = attempt(notes, "S0", f"constant predictor: training subject {tsub}", regional_measures,
                    np.asarray(tg["dat"].dataobj[:, :, tz, tvol], dtype=np.float64), tg["striatum"][:, :, tz],
                    tg["reference"][:, :, tz], tg["brain"][:, :, tz], reference=cfg["reference"],
                    experiment=experiment, subject=tsub)
        if m is not None:
            train_measures.append(m)
    constant = attempt(notes, "S0", "constant predictor", constant_measures, train_measures, experiment=experiment)
    maps_dir = Path(out["deficit_maps"])
    maps_dir.mkdir(parents=True, exist_ok=True)
    map_rows, regional, fig_rows, patients = [], [], [], []
    context_cols = [c for c in ("record", "desc", "pbr", "cbr", "slr", "affected_side") if c in table.columns]
    # figure cases: one record per subject in turn, so the figure shows different patients
    order = table.groupby("subject", sort=True).cumcount().to_numpy()
    picked = set(np.lexsort((np.arange(len(table)), order))[:int(cfg["n_figure_cases"])].tolist())
    for i, row in table.iterrows():
        subject = str(row["subject"])
        files = subject_files[subject]
        context = {c: row[c] for c in context_cols}
        what = f"subject {subject} record {row['record']}"
        g = grid_of(subject, str(row["source"]))
        z = int(row["slice_index"])
        vol_idx = attempt(notes, "S0", f"deficit map {what}", _truth_volume_index, files["dat_truth"],
                           row["desc"], experiment=experiment, subject=subject)
        if vol_idx is None or float(row[gain_col]) == 0:
            continue
        actual = np.asarray(g["dat"].dataobj[:, :, z, vol_idx[0]], dtype=np.float64)
        true_normal = np.asarray(g["dat"].dataobj[:, :, z, vol_idx[1]], dtype=np.float64)
        predicted = slice_to_grid(arrays["prediction"][i, 0], float(row[gain_col]), float(row[bias_col]),
                                  g["shape"][:2])
        baseline = slice_to_grid(mean_normal, float(row[gain_col]), float(row[bias_col]), g["shape"][:2])
        brain = g["brain"][:, :, z]
        res = attempt(notes, "S0", f"deficit map {what}", percent_deficit, actual, predicted, mask=brain,
                       signal_fraction=frac, experiment=experiment, subject=subject)
        res_true = attempt(notes, "S0", f"true deficit {what}", percent_deficit, actual, true_normal,
                            mask=brain, signal_fraction=frac, experiment=experiment, subject=subject)
        res_base = attempt(notes, "S0", f"baseline deficit {what}", percent_deficit, actual, baseline,
                            mask=brain, signal_fraction=frac, experiment=experiment, subject=subject)
        if res is None or res_true is None or res_base is None:
            continue
        deficit, valid = res
        vol = np.zeros(g["shape"], dtype=np.float32)
        vol[:, :, z] = deficit
        name = bids_name(subject=subject, run=str(int(row["record"])), desc=bids_label(experiment), suffix="deficit")
        nifti = nib.Nifti1Image(vol, g["affine"])
        nifti.set_qform(g["affine"], code=1)
        nifti.set_sform(g["affine"], code=1)
        save_image(nifti, maps_dir / name)
        striatum = (g["striatum"][:, :, z] > 0) & valid
        map_rows.append({"experiment": experiment, "subject": subject, **context, "file": name,
                         "slice_index": z, "valid_voxels": int(valid.sum()),
                         "striatal_loss_percent": float(deficit[striatum].mean()) if striatum.any() else 0.0,
                         "true_striatal_loss_percent": float(res_true[0][striatum].mean()) if striatum.any()
                         else 0.0,
                         "baseline_striatal_loss_percent": float(res_base[0][striatum].mean()) if striatum.any()
                         else 0.0})
        if i in picked:
            fig_rows.append(P.deficit_panels(g["t1w"][:, :, z], actual, predicted, deficit,
                                             true_deficit=res_true[0], label=f"sub-{subject} {row['desc']}"))
        kw = dict(reference=cfg["reference"], limits=limits, experiment=experiment, subject=subject)
        labels = (g["striatum"][:, :, z], g["reference"][:, :, z], brain)
        tru = attempt(notes, "S0", f"regional deficits vs true normal {what}", regional_deficit_table,
                       actual, true_normal, *labels, **kw)
        act_m = attempt(notes, "S0", f"regional measures {what}", regional_measures, actual, *labels,
                        reference=cfg["reference"], experiment=experiment, subject=subject)
        if constant is not None and act_m is not None:
            map_rows[-1]["constant_striatal_loss_percent"] = implied_striatal_loss(act_m["sbr_striatum"],
                                                                                   constant["sbr_striatum"])
        for key, expected in (("model", predicted), ("baseline", baseline), ("constant", constant)):
            if key == "constant":
                est = None if constant is None or act_m is None else attempt(
                    notes, "S0", f"regional deficits ({PREDICTORS[key]}) {what}", regional_deficits, act_m,
                    constant, limits=limits, experiment=experiment, subject=subject)
            else:
                est = attempt(notes, "S0", f"regional deficits ({PREDICTORS[key]}) {what}", regional_deficit_table,
                              actual, expected, *labels, **kw)
            if est is None or tru is None:
                continue
            est = est.drop(columns=["flag_reason"])
            est.insert(1, "predictor", key)
            for pos, (k, v) in enumerate(context.items(), start=3):
                est.insert(pos, k, v)
            est["truth_expected"] = tru["expected"].to_numpy()
            est["truth_change"] = tru["change"].to_numpy()
            est["truth_flag"] = tru["flag"].to_numpy()
            est["flag_matches_truth"] = est["flag"] == est["truth_flag"]
            regional.append(est)
        pat = attempt(notes, "S0", f"patient slice SBR {what}", slice_sbr,
                       shard_to_ras(np.asarray(arrays["input"][i, 0], dtype=np.float64)), seg_cfg=seg_cfg,
                       experiment=experiment, subject=subject)
        if pat is not None:
            patients.append((subject, context, pat))
    if not map_rows:
        raise EvaluationError("no deficit map could be computed (see the log)", experiment=experiment,
                              hint="Check the predictions and the simulation of the test subjects")
    if any(LOSS_COLUMNS["constant"] not in r for r in map_rows):
        for r in map_rows:
            r.pop(LOSS_COLUMNS["constant"], None)
        notes.append({"study": "S0", "what": "constant predictor's implied striatal loss",
                      "reason": "not computable for every record (see the other notes)"})
    write_table(pd.DataFrame(map_rows), maps_dir / "deficit_maps.tsv", what="S0 deficit maps")
    label = figure_label(scale_label, int(table["subject"].nunique()), [spec])
    fig = P.deficit_rows_figure(fig_rows, subtitle=label, convention=convention,
                                title=f"S0 {experiment}: deficit maps (percent loss vs predicted normal)")
    P.save_figure(fig, out["deficit_figure"], dpi=dpi)
    reg_cols = ["experiment", "predictor", "subject", "record", "measure", "kind", "actual", "expected", "change",
                "change_unit", "limit", "flag", "truth_expected", "truth_change", "truth_flag",
                "flag_matches_truth"]
    reg = (pd.concat(regional, ignore_index=True) if regional else pd.DataFrame(columns=reg_cols))
    write_table(reg, out["regional_deficits"], what="S0 regional deficits")
    summary = deficit_summary(reg, pd.DataFrame(map_rows), experiment=experiment)
    if "deficit_summary" in out:
        write_table(summary, out["deficit_summary"], what="S0 deficits, model vs mean-normal baseline")

    # normal databases and z-scores
    real_imgs, real_ids = real_normal_slices(normal_shards, normal_shards["index"], channel=target,
                                             experiment=experiment)
    real_db = _slice_database(real_imgs, real_ids, source="real", seg_cfg=seg_cfg, experiment=experiment,
                              notes=notes)
    n_syn = int(cfg["n_synthetic_normals"])
    synth = shard_to_ras(sample_vae(best_pt, n_syn, experiment=experiment, seed=seed, batch_size=batch_size,
                                    device=device)[:, 0].astype(np.float64))
    synth_db = _slice_database(synth, list(range(n_syn)), source="synthetic", seg_cfg=seg_cfg,
                               experiment=experiment, notes=notes)
    write_table(pd.concat([synth_db, real_db], ignore_index=True), out["normal_database"],
                what="S0 normal databases")
    zs = []
    for subject, context, pat in patients:
        res = attempt(notes, "S0", f"z-scores subject {subject} record {context.get('record')}",
                       zscore_comparison, pat, synth_db, real_db, regions=SLICE_REGIONS,
                       z_limit=float(cfg["z_limit"]), experiment=experiment, subject=subject)
        if res is not None:
            zs.append(res.assign(**context))
    ztab = pd.concat(zs, ignore_index=True) if zs else pd.DataFrame(
        columns=["experiment", "subject", "region", "patient", "synthetic_z", "real_z", "agree"])
    write_table(ztab, out["zscores"], what="S0 z-scores")
    agree = attempt(notes, "S0", "synthetic vs real normal database", database_agreement, synth_db, real_db,
                     regions=SLICE_REGIONS, experiment=experiment)
    write_table(agree if agree is not None else pd.DataFrame(columns=["experiment", "region"]),
                out["database_agreement"], what="S0 normal database agreement")
    fig = P.normal_database_figure(pd.concat([synth_db, real_db], ignore_index=True), ztab,
                                   regions=SLICE_REGIONS, z_limit=float(cfg["z_limit"]), subtitle=label,
                                   title=f"S0 {experiment}: synthetic vs real normal database")
    P.save_figure(fig, out["zscore_figure"], dpi=dpi)
    write_table(notes_frame(notes), out["not_computed"], what="S0 clinical outputs not computed")
    return {"deficit_maps": pd.DataFrame(map_rows), "regional": reg, "zscores": ztab, "deficit_summary": summary,
            "normal_database": pd.concat([synth_db, real_db], ignore_index=True)}
