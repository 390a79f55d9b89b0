"""S3's evaluation: SSIM of the prediction and its baselines against the PET, atlas ROI means
(absolute and scale-free), regressions with subject-level intervals beside the published values,
scatter plots, and the verdicts on S3's findings."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ... import metrics as M
from ... import plots as P
from ... import stats as S
from ... import verdicts as V
from ...errors import EvaluationError, context
from ...evaluate import (
    BRAIN_METRICS,
    FLOOR_BACKGROUND,
    FLOOR_OUTLINE,
    PAIRED_METRICS,
    attempt,
    background_floor,
    describe_outline,
    figure_label,
    fit_outline_floor,
    load_paired,
    message_figure,
    notes_frame,
    outline_floor,
    paired_slice_metrics,
    train_chunks,
    with_columns,
)
from ...infer import read_index
from ...io import write_table

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- S3
BRAIN_FRACTION = 0.1   # slice brain mask: input pixels above 10 % of the input slice's maximum
# Series in physical units.  Two null models, both the training split's mean PET slice: one put
# into PET units with the test input's own per-slice scale (it inherits the subject's flow level
# from the input), one in the training split's own physical units (nothing from the test input).
S3_SERIES = ("input", "prediction", "null_input_scale", "null_train_scale", "target")
S3_SERIES_TEXT = {"input": "input SPECT (baseline: SPECT as PET)", "prediction": "pix2pix prediction",
                  "null": "null: training-mean PET slice (normalised units)",
                  "null_input_scale": "null: training-mean PET at the input's scale",
                  "null_train_scale": "null: training-mean PET at the training split's scale",
                  "target": "target PET"}
SCALE_FREE = "_scale_free"   # suffix of the ROI columns divided by the whole-brain mean of the same image
N_BOOT = 2000          # subject resamples of the regression intervals
BOOT_SEED = 0          # their seed (fixed: the intervals are reproducible)
MIN_SUBJECTS_CI = 3    # fewer test subjects: no interval (and the regression verdicts are not testable)


def _brain_means(raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each slice of ``raw`` (N, H, W) inside its mask (N, H, W)."""
    return np.array([float(raw[i][mask[i]].mean()) for i in range(raw.shape[0])])


def slice_labels(labels_ras: np.ndarray, z: int, size: int) -> np.ndarray:
    """Cut axial slice ``z`` of an RAS label volume as the dataset cuts image slices
    (:func:`spectsynth.datasets.axial_slice`, centred padding) and resize it to ``size`` px
    with nearest-neighbour interpolation, so labels stay labels."""
    from skimage.transform import resize

    from ...datasets import axial_slice, pad_square

    sq = pad_square(axial_slice(np.asarray(labels_ras), z).astype(np.float32))
    if sq.shape[0] == size:
        return np.rint(sq).astype(np.int64)
    out = resize(sq, (size, size), order=0, anti_aliasing=False, preserve_range=True, mode="constant")
    return np.rint(out).astype(np.int64)


def s3_roi_means(experiment: str, raw: Mapping[str, np.ndarray], table: pd.DataFrame,
                 labels: Mapping[str, str], names: Mapping[int, str], *,
                 notes: list | None = None) -> pd.DataFrame:
    """Atlas-region means of each series per test subject (S3's ROI analysis).

    ``raw``: series name (input, prediction, null, target, ...) -> ``(N, H, W)`` slices in
    physical units, row ``i`` belonging to row ``i`` of ``table`` (see :func:`evaluate_s3` for
    how each series got there; the prediction never with the target's constants).
    ``labels``: subject -> label volume (NIfTI on the grid of the slices' source volume, e.g.
    the vascular territories); ``names``: label value -> region name.  The label slices are
    cut like the image slices (:func:`slice_labels`); each region's mean pools its pixels
    over the subject's test slices.  A region with no pixel in a subject's test slices is left
    out (and noted).

    Scale-free values (columns ``<series>_scale_free``): each region's mean divided by the
    whole-brain mean of the same image, the whole brain being every labelled pixel (label > 0)
    of the subject's test slices (``n_pixels_brain``): the atlas chooses the pixels, never an
    image, and a global flow level (or a calibration's scale) cancels out.
    """
    import nibabel as nib

    series = list(raw)
    rows = []
    size = int(np.asarray(next(iter(raw.values()))).shape[-1])
    for subject, sub in table.groupby("subject", sort=True):
        subject = str(subject)
        if subject not in labels:
            raise EvaluationError(f"no atlas label volume for test subject {subject}", experiment=experiment,
                                  subject=subject, hint="Run the anatomy stage for this subject")
        lab_img = nib.load(labels[subject])
        src = str(sub["source"].iat[0]) if "source" in sub.columns else ""
        src_path = src.rsplit("[", 1)[0] if src.endswith("]") else src
        if src_path and Path(src_path).exists():
            with context(experiment=experiment, subject=subject):
                M.check_same_grid(lab_img, nib.load(src_path), names=("atlas labels", "source volume"))
        lab = np.asanyarray(lab_img.dataobj)
        pools: dict[str, dict[str, list]] = {}
        brain: dict[str, list] = {k: [] for k in series}
        for i, row in sub.iterrows():
            ls = slice_labels(lab, int(row["slice_index"]), size)
            for k in series:
                brain[k].append(np.asarray(raw[k][i], dtype=np.float64)[ls > 0])
            for value, name in names.items():
                sel = ls == int(value)
                if sel.any():
                    for k in series:
                        pools.setdefault(name, {}).setdefault(k, []).append(
                            np.asarray(raw[k][i], dtype=np.float64)[sel])
        for name in names.values():
            if name not in pools:
                if notes is not None:
                    notes.append({"study": "S3", "what": f"ROI mean {name}, subject {subject}",
                                  "reason": f"experiment {experiment}: subject {subject}: region {name} "
                                            "has no pixel in the test slices"})
                continue
            rec = {"experiment": experiment, "subject": subject, "region": name,
                   "n_pixels": int(sum(a.size for a in pools[name][series[0]])),
                   "n_pixels_brain": int(sum(a.size for a in brain[series[0]]))}
            rec.update({k: float(np.concatenate(pools[name][k]).mean()) for k in series})
            for k in series:
                whole = float(np.concatenate(brain[k]).mean())
                if whole <= 0:
                    raise EvaluationError(f"the whole-brain mean of {k} is {whole:.4g} for subject {subject}; "
                                          "scale-free ROI values need a positive mean", experiment=experiment,
                                          subject=subject, hint="Check the series' calibration and the atlas")
                rec[f"{k}{SCALE_FREE}"] = rec[k] / whole
            rows.append(rec)
    return pd.DataFrame(rows, columns=["experiment", "subject", "region", "n_pixels", "n_pixels_brain", *series,
                                       *(f"{k}{SCALE_FREE}" for k in series)])


# series whose similarity to the target PET the tables report: model, baselines, floors
S3_SIMILARITY = {"prediction": "pix2pix prediction", "input": S3_SERIES_TEXT["input"], "null": S3_SERIES_TEXT["null"],
                 "floor_background": FLOOR_BACKGROUND, "floor_outline": FLOOR_OUTLINE}


def s3_brain_masks(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """Brain masks ``(N, H, W)`` of the test slices and where they come from: the T1w brain mask
    the dataset stores (channel ``brain``) or, for datasets without it, the input SPECT above
    :data:`BRAIN_FRACTION` of its slice's range -- never the target."""
    if "brain" in arrays:
        return M.brain_mask(np.asarray(arrays["brain"], dtype=np.float64)[:, 0]), "T1w brain mask"
    x = np.asarray(arrays["input"], dtype=np.float64)[:, 0]
    lo = x.reshape(len(x), -1).min(1)[:, None, None]
    hi = x.reshape(len(x), -1).max(1)[:, None, None]
    return (x - lo) > BRAIN_FRACTION * (hi - lo), f"input SPECT above {BRAIN_FRACTION:g} of its range"


def _outline_training(train: Mapping[str, str], cout: str, *, experiment: str):
    """(mask, target) chunks of the training split for the outline floor (nothing from the test)."""
    from ...datasets import SliceShard

    channels = SliceShard(train["h5"], preload_max_mb=0).channels
    if "brain" in channels:
        yield from train_chunks(train["h5"], ["brain", cout], experiment=experiment)
        return
    cin = next(c for c in channels if c not in (cout, "brain"))
    for arr in train_chunks(train["h5"], [cin, cout], experiment=experiment):
        mask, _ = s3_brain_masks({"input": arr[:, :1]})
        yield np.stack([mask.astype(np.float64), arr[:, 1]], 1)


def s3_similarity(experiment: str, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                  norm: Mapping[str, np.ndarray], train: Mapping[str, str], *, target_channel: str,
                  data_range: float, win_size) -> tuple[pd.DataFrame, pd.DataFrame]:
    """S3's per-slice similarity to the target PET of the prediction, its baselines and two floors.

    Series (:data:`S3_SIMILARITY`, column ``model``): the prediction, the input SPECT as the PET,
    the training split's mean PET slice, ``floor: all background`` (every pixel -1) and ``floor:
    outline only`` (the brain mask blurred and scaled to the PET by a rule fitted on the training
    split, :func:`spectsynth.evaluate.fit_outline_floor`).  Each with the whole-slice ``rmse,
    ssim, psnr`` (as S3) and the in-brain ``rmse_brain, ssim_brain, psnr_brain``
    (:func:`s3_brain_masks`; :func:`spectsynth.metrics.masked_metrics`).

    Returns ``(long, wide)``: one row per series and slice (``experiment, model, subject,
    slice_index, pred_row``, the metrics, ``brain_fraction``, ``mask``, ``data_range``) and one
    row per slice with ``<metric>_<series>_vs_target`` columns.
    """
    masks, mask_source = s3_brain_masks(arrays)
    rule = fit_outline_floor(_outline_training(train, target_channel, experiment=experiment),
                             size=int(norm["target"].shape[-1]), experiment=experiment)
    series = {"prediction": norm["prediction"], "input": norm["input"], "null": norm["null"],
              "floor_background": background_floor(norm["target"].shape),
              "floor_outline": outline_floor(masks.astype(np.float64), rule)}
    metric_arrays = {"target": norm["target"][:, None], "brain": masks.astype(np.float64)[:, None],
                     **{k: np.asarray(v)[:, None] for k, v in series.items()}}
    per = {k: paired_slice_metrics(experiment, metric_arrays, table, data_range=data_range, win_size=win_size,
                                   against=k) for k in series}
    long = []
    for k, part in per.items():
        part = part.copy()
        part.insert(1, "model", S3_SIMILARITY[k])
        part["mask"] = mask_source
        if k == "floor_outline":
            part["mask"] = f"{mask_source}; floor {describe_outline(rule)}"
        long.append(part)
    cols = ["experiment", "model", "subject", "slice_index", "pred_row", *PAIRED_METRICS, *BRAIN_METRICS,
            "brain_fraction", "mask", "data_range"]
    long = pd.concat(long, ignore_index=True)[cols]
    wide = per["prediction"][["experiment", "subject", "slice_index", "pred_row"]].copy()
    for m in (*PAIRED_METRICS, *BRAIN_METRICS):
        for k in series:
            wide[f"{m}_{k}_vs_target"] = per[k][m].to_numpy()
    wide["brain_fraction"] = per["prediction"]["brain_fraction"].to_numpy()
    wide["data_range"] = data_range
    return long, wide


def _s3_train(train: Mapping[str, str], cin: str, cout: str, *, experiment: str):
    """Training-split calibration and null images of an S3 experiment (nothing from the test targets).

    Returns ``(calibration, null_normalised, null_physical)``: the training split's mean PET slice
    in normalised units, and the mean of the training PET slices each in its own physical units
    (``(x_norm - bias) / gain``, slices without signal left out) -- the input-free null."""
    from ...calibration import fit_scale_calibration
    from ...datasets import SliceShard

    index = read_index(train["index"], split="train", experiment=experiment)
    shard = SliceShard(train["h5"])
    if len(shard) != len(index) or len(shard) == 0:
        raise EvaluationError(f"training shard {train['h5']} holds {len(shard)} slices but the index lists "
                              f"{len(index)} training rows", experiment=experiment,
                              hint="Rebuild the dataset (the null model and the calibration need its training split)")
    cal = fit_scale_calibration(index, cin, cout, experiment=experiment)
    ch = shard.channel_index([cout])[0]
    pet = np.asarray(shard.all_images()[:, ch], dtype=np.float64)
    null = pet.mean(0)
    return cal, null, training_mean_physical(pet, index[f"gain_{cout}"], index[f"bias_{cout}"],
                                             experiment=experiment)


def training_mean_physical(normalised: np.ndarray, gain, bias, *, experiment: str = "") -> np.ndarray:
    """Mean of ``(N, H, W)`` normalised training slices, each back in its own physical units
    (``(x_norm - bias) / gain``); slices with gain 0 (no signal) are left out.  The test split
    plays no part: this null is the same image whatever the test input."""
    g = np.asarray(gain, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    ok = g > 0
    if not ok.any():
        raise EvaluationError("no training slice of the target channel holds signal", experiment=experiment,
                              hint="Rebuild the dataset")
    arr = np.asarray(normalised, dtype=np.float64)[ok]
    return ((arr - b[ok][:, None, None]) / g[ok][:, None, None]).mean(0)


def subject_bootstrap(x, y, subjects, *, confidence: float = 0.95, n_boot: int = N_BOOT,
                      seed: int = BOOT_SEED) -> dict[str, tuple[float, float]]:
    """Percentile intervals of a line's intercept, slope and Pearson r, resampling *subjects*.

    Each resample draws as many subjects as there are, with replacement, and refits the line
    on all points (ROIs or slices) of the drawn subjects, so points of one patient move
    together and the interval reflects the number of patients, not of points.  Resamples in
    which x or y is constant are skipped.  Needs :data:`MIN_SUBJECTS_CI` subjects."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(subjects).astype(str)
    ids = np.unique(g)
    if ids.size < MIN_SUBJECTS_CI:
        raise EvaluationError(f"{ids.size} subject(s); a subject-level interval needs at least {MIN_SUBJECTS_CI}",
                              hint="Evaluate more test subjects")
    # a resample's line depends on the drawn subjects' sums only: counts (B, k) @ sums (k, 6)
    sums = np.array([[m.sum(), x[m].sum(), y[m].sum(), (x[m] ** 2).sum(), (y[m] ** 2).sum(), (x[m] * y[m]).sum()]
                     for m in (g == s for s in ids)])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, ids.size, size=(int(n_boot), ids.size))
    counts = np.zeros((int(n_boot), ids.size))
    np.add.at(counts, (np.repeat(np.arange(int(n_boot)), ids.size), draws.ravel()), 1.0)
    nn, sx, sy, sxx, syy, sxy = (counts @ sums).T
    vx, vy, cxy = sxx - sx ** 2 / nn, syy - sy ** 2 / nn, sxy - sx * sy / nn
    scale = np.maximum(np.abs(sxx), np.abs(syy))
    good = (vx > 1e-10 * scale) & (vy > 1e-10 * scale)
    slope = cxy[good] / vx[good]
    if good.sum() < n_boot / 2:
        raise EvaluationError(f"only {int(good.sum())} of {n_boot} subject resamples could be fitted",
                              hint="x or y hardly varies between subjects")
    arr = np.column_stack([(sy[good] - slope * sx[good]) / nn[good], slope,
                           cxy[good] / np.sqrt(vx[good] * vy[good])])
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    return {k: tuple(float(v) for v in np.percentile(arr[:, j], q))
            for j, k in enumerate(("intercept", "slope", "r"))}


def mixed_slope(x, y, subjects) -> tuple[float, float, float, str]:
    """Slope, its standard error, the p-value of slope = 0 and the method's name, at the
    subject level: a linear mixed model ``y ~ x`` with a random intercept per subject
    (statsmodels ``mixedlm``, REML, Wald test).  When the subject variance lies on the
    boundary (0) the model's standard error is undefined; the slope is then tested by least
    squares with standard errors clustered by subject (t with subjects - 1 degrees of freedom),
    and the method's name says so."""
    import statsmodels.formula.api as smf

    df = pd.DataFrame({"x": np.asarray(x, dtype=np.float64), "y": np.asarray(y, dtype=np.float64),
                       "g": np.asarray(subjects).astype(str)})
    k = df["g"].nunique()
    if k < 2:
        raise EvaluationError(f"{k} subject; a subject-level test needs at least 2", hint="Evaluate more test subjects")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = smf.mixedlm("y ~ x", df, groups=df["g"]).fit(reml=True)
            out = (float(fit.params["x"]), float(fit.bse["x"]), float(fit.pvalues["x"]))
        except (ValueError, np.linalg.LinAlgError):
            out = (np.nan,) * 3
        if all(np.isfinite(out)):
            return (*out, "Wald test of a linear mixed model's slope (subject random intercept)")
        ols = smf.ols("y ~ x", df).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(df["g"])[0]},
                                       use_t=True)
    out = (float(ols.params["x"]), float(ols.bse["x"]), float(ols.pvalues["x"]))
    if not all(np.isfinite(out)):
        raise EvaluationError("neither the mixed model nor the subject-clustered least squares gave a finite "
                              "slope test", hint="Too few subjects or points for a subject-level test")
    return (*out, "t test of the least-squares slope with standard errors clustered by subject (the mixed "
                  "model's subject variance is on the boundary)")


REGRESSION_COLUMNS = ["label", "test", "n", "n_subjects", "n_counts", "intercept", "slope", "statistic_name",
                      "statistic", "intercept_ci_low", "intercept_ci_high", "slope_ci_low", "slope_ci_high",
                      "r_ci_low", "r_ci_high", "ci_method", "mixed_slope", "mixed_slope_se", "p", "p_method",
                      "alpha", "significant", "equation"]


def s3_regression(x, y, subjects, *, label: str, unit: str, alpha: float = 0.05, confidence: float = 0.95,
                  note_list: list | None = None, note_what: str = "", n_boot: int = N_BOOT,
                  seed: int = BOOT_SEED) -> dict:
    """One row of S3's regression table: the least-squares line and Pearson r over all points
    (as S3 computed them), their intervals from resampling subjects (:func:`subject_bootstrap`)
    and the slope's p-value from a mixed model with a subject random intercept
    (:func:`mixed_slope`): ``n`` counts the points (``unit``, e.g. ROIs), ``n_subjects`` the
    patients, the unit of the intervals and the test.  An interval or test that cannot be
    computed (too few subjects) leaves empty cells and a note; the line itself must fit
    (:func:`spectsynth.stats.linear_regression` raises otherwise)."""
    rec = S.linear_regression(x, y, label=label, alpha=alpha, confidence=confidence)
    d = rec.details
    g = np.asarray(subjects).astype(str)
    k = int(np.unique(g).size)
    row = {"label": label, "test": "least-squares line and Pearson r; slope test at the subject level",
           "n": rec.n, "n_subjects": k,
           "n_counts": f"{rec.n} {unit} of {k} test subjects (intervals and test at the subject level)",
           "intercept": d["intercept"], "slope": d["slope"], "statistic_name": "r", "statistic": rec.statistic,
           "alpha": alpha, "equation": d["equation"]}
    try:
        ci = subject_bootstrap(x, y, g, confidence=confidence, n_boot=n_boot, seed=seed)
        for key, (lo, hi) in ci.items():
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = lo, hi
        row["ci_method"] = f"{confidence:g} percentile interval over {n_boot} resamples of the {k} subjects"
    except EvaluationError as err:
        row["ci_method"] = f"not computed: {err.problem}"
        if note_list is not None:
            note_list.append({"study": "S3", "what": f"subject-level intervals, {note_what or label}", "reason": str(err)})
    try:
        slope, se, p, method = mixed_slope(x, y, g)
        row.update(mixed_slope=slope, mixed_slope_se=se, p=p, significant=bool(p < alpha), p_method=method)
    except Exception as err:   # statsmodels raises several kinds on degenerate designs
        row["p_method"] = f"not computed: {err}"
        if note_list is not None:
            note_list.append({"study": "S3", "what": f"mixed-model slope test, {note_what or label}", "reason": str(err)})
    return {c: row.get(c, "") for c in REGRESSION_COLUMNS}


def ssim_measure(data: pd.DataFrame) -> str:
    """The SSIM the verdict tests: the in-brain SSIM (``ssim_brain``) when the table has it,
    else the paper's whole-slice ``ssim``."""
    return "ssim_brain" if "ssim_brain_prediction_vs_target" in data.columns else "ssim"


def _power_paired(diff: np.ndarray, effect: float, alpha: float) -> float | None:
    """Power of a two-sided paired t-test on ``diff.size`` subjects for a mean difference
    ``effect``, with the subjects' own sd of the differences (None: not estimable)."""
    from statsmodels.stats.power import TTestPower

    if diff.size < 2 or float(diff.std(ddof=1)) == 0:
        return None
    return float(TTestPower().power(effect_size=effect / float(diff.std(ddof=1)), nobs=diff.size, alpha=alpha,
                                    alternative="two-sided"))


def s3_ssim_verdict(data: pd.DataFrame, *, alpha: float) -> dict:
    """Verdict row on S3's SSIM gain (SPECT vs PET 0.79 -> prediction vs PET 0.86, significant):
    paired t-test of the prediction against the input baseline on *subject means* of the
    in-brain SSIM (whole-slice SSIM when no in-brain column exists; both in the reason)."""
    from ..published import published

    ref = published("S3")["ssim"]
    m = ssim_measure(data)
    cols = sorted({f"{mm}_{k}_vs_target" for mm in (m, "ssim") for k in ("input", "prediction", "null")}
                  & set(data.columns))
    subj = S.subject_means(data, cols)
    a, b = subj[f"{m}_prediction_vs_target"].to_numpy(float), subj[f"{m}_input_vs_target"].to_numpy(float)
    n = len(subj)
    stat, p, power, nc = "", None, None, None
    if n < 2:
        nc = f"{n} test subject: a paired test on subject means needs at least 2"
    else:
        from scipy import stats as sps

        res = sps.ttest_rel(a, b)
        stat, p = f"paired t({n - 1}) = {float(res.statistic):.3g} on subject means", float(res.pvalue)
        power = _power_paired(a - b, ref["prediction_vs_target"] - ref["input_vs_target"], alpha)
    verdict = V.comparison_verdict(claim="greater", estimate=float(a.mean() - b.mean()) if n else None, p=p,
                                   alpha=alpha, power=power, not_computed=nc)
    extra = [f"{k} mean over subjects: prediction {subj[f'{k}_prediction_vs_target'].mean():.3f}, "
             f"SPECT as PET {subj[f'{k}_input_vs_target'].mean():.3f}"
             + (f", null {subj[f'{k}_null_vs_target'].mean():.3f}" if f"{k}_null_vs_target" in subj else "")
             for k in dict.fromkeys((m, "ssim"))]
    measure = {"ssim_brain": "in-brain SSIM against the PET (subject means)",
               "ssim": "whole-slice SSIM against the PET (subject means)"}[m]
    return V.row(study="S3", finding=f"SSIM against PET rises from SPECT ({ref['input_vs_target']:g}) to pix2pix "
                                     f"({ref['prediction_vs_target']:g}), significantly",
                 measure=measure, unit="SSIM (no unit)", ours=float(a.mean()) if n else "",
                 baseline=float(b.mean()) if n else "", baseline_name=S3_SERIES_TEXT["input"],
                 published=ref["prediction_vs_target"], n=n,
                 n_counts=f"test subjects (means of their {len(data)} slices)", statistic=stat, p=p, power=power,
                 verdict=(verdict[0], verdict[1] + "; " + "; ".join(extra)))


# published line -> the input-free null's line beside it (same basis)
REGRESSION_NULL = {"input vs target": "null (training scale) vs target",
                   "prediction vs target": "null (training scale) vs target",
                   "prediction vs input": "null (training scale) vs input"}


def s3_regression_verdicts(regression: pd.DataFrame, *, basis: str = "roi") -> list[dict]:
    """Verdict rows on S3's three published ROI lines (:func:`spectsynth.verdicts.interval_verdict`):
    the published r and slope inside our subject-level intervals (absolute ROI CBF, as S3) ->
    reproduced; either outside -> not reproduced; both inside the input-free null's intervals
    too -> not testable.  The intercept is left out (ours in the simulation's CBF units)."""
    from ..published import published_records

    rows = []
    have = regression[regression["basis"] == basis] if "basis" in regression else regression.iloc[:0]
    for pub in published_records("S3", "regressions"):
        label = pub["label"]
        hit = have[have["label"] == label]
        null = have[have["label"] == REGRESSION_NULL[label]]

        def iv(frame: pd.DataFrame, key: str):
            if not len(frame) or frame[f"{key}_ci_low"].iat[0] == "":
                return None
            return float(frame[f"{key}_ci_low"].iat[0]), float(frame[f"{key}_ci_high"].iat[0])

        pubs = {"r": float(pub["r"]), "slope": float(pub["slope"])}
        nc = None if len(hit) else "the regression could not be computed (see not_computed.tsv)"
        verdict = V.interval_verdict(published=pubs, intervals={k: iv(hit, k) for k in pubs},
                                     baseline_intervals={k: iv(null, k) for k in pubs} if len(null) else None,
                                     baseline_name=REGRESSION_NULL[label], not_computed=nc)
        h = hit.iloc[0] if len(hit) else {}
        stat = ""
        if len(hit):
            ivs = (f"r interval [{float(h['r_ci_low']):.3f}, {float(h['r_ci_high']):.3f}], slope interval "
                   f"[{float(h['slope_ci_low']):.3f}, {float(h['slope_ci_high']):.3f}] ({h['ci_method']})"
                   if h["r_ci_low"] != "" else f"no interval ({h['ci_method']})")
            stat = f"{h['equation']}, r = {float(h['statistic']):.3f}; {ivs}; slope test: {h['p_method']}"
            if len(null):
                stat += f"; {REGRESSION_NULL[label]}: {null['equation'].iat[0]}, r = {float(null['statistic'].iat[0]):.3f}"
        rows.append(V.row(
            study="S3", finding=f"ROI regression {label}: y = {pub['intercept']:g} + {pub['slope']:g}x, r = {pub['r']:g}",
            measure="Pearson r and slope of the ROI line (absolute CBF; published value inside our interval)",
            unit="r (no unit)", ours=float(h["statistic"]) if len(hit) else "",
            baseline=float(null["statistic"].iat[0]) if len(null) else None,
            baseline_name=REGRESSION_NULL[label] if len(null) else "", published=pubs["r"],
            n=int(h["n_subjects"]) if len(hit) else 0,
            n_counts=(f"test subjects ({int(h['n'])} ROIs)" if len(hit) else "test subjects"),
            statistic=stat, p=float(h["p"]) if len(hit) and h["p"] != "" else None, verdict=verdict))
    return rows


def _published_regression(label: str) -> str:
    from ..published import published_records

    for r in published_records("S3", "regressions"):
        if r["label"] == label:
            return f"y = {r['intercept']:.2f} + {r['slope']:.2f}x, r = {r['r']:.2f}"
    return "not reported"


def s3_published_table(summary: pd.DataFrame, regression: pd.DataFrame, *, experiment: str,
                       scale_label: str) -> pd.DataFrame:
    """The run's SSIMs and ROI regressions next to S3's published values (one row per quantity)."""
    from ..published import published, published_records

    ref = published("S3")
    rows = []
    ssim = {r["name"]: r["value"] for r in published_records("S3", "ssim")}
    for name, value in ssim.items():
        hit = summary[summary["value"] == f"ssim_{name}"] if "value" in summary else summary.iloc[:0]
        if len(hit):
            rows.append({"quantity": f"SSIM {name.replace('_', ' ')} (mean)", "ours": float(hit["mean"].iat[0]),
                         "published": float(value), "units": "SSIM (no unit)"})
    have = set(regression["basis"]) if "basis" in regression else set()
    bases = [b for b in ("roi", "roi_scale_free") if b in have] or ["slice"]
    for r, basis in ((r, b) for b in bases for r in published_records("S3", "regressions")):
        hit = regression[(regression["label"] == r["label"]) & (regression["basis"] == basis)] \
            if "basis" in regression else regression.iloc[:0]
        if not len(hit):
            continue
        what = {"roi": "ROI means", "roi_scale_free": "scale-free ROI values", "slice": "slice means"}[basis]
        for key, col in (("intercept", "intercept"), ("slope", "slope"), ("r", "statistic")):
            rows.append({"quantity": f"{r['label']}: {key} ({what})", "ours": float(hit[col].iat[0]),
                         "published": float(r[key]),
                         "units": {"r": "r (no unit)", "slope": "slope (CBF per CBF, no unit)"}.get(
                             key, "ours a fraction of the whole-brain mean, S3's in its own ROI units: the "
                                  "intercept compares only within a study" if basis == "roi_scale_free" else
                             "ours in the simulated images' CBF units, S3's in its own ROI units: the "
                             "intercept compares only within a study")})
    table = pd.DataFrame(rows, columns=["quantity", "ours", "published", "units"])
    table.insert(0, "experiment", experiment)
    table["difference"] = table["ours"] - table["published"]
    table["our_scale"] = scale_label
    table["published_scale"] = ref["scale"]
    table["source"] = ref["source"]
    return table


def evaluate_s3(experiment: str, files: Mapping[str, str], spec: Mapping, out: Mapping[str, str], *,
                cfg: Mapping, scale_label: str, train: Mapping[str, str],
                labels: Mapping[str, str] | None = None,
                label_names: Mapping[int, str] | None = None) -> dict[str, pd.DataFrame]:
    """S3's evaluation of one SPECT->PET pix2pix experiment, with its baselines.

    Series compared with the target PET: the prediction, the input SPECT taken as the PET
    (S3's own baseline, 0.79 SSIM) and a null model, the training split's mean PET slice
    (``train``: ``{"h5", "index"}`` of the dataset's training shard), the same image for every
    test slice.  In physical units the null comes twice: at the input's scale (calibrated
    like the prediction from the test input's own per-slice scale, so it inherits the
    subject's flow level) and at the training split's scale (the mean of the training PET
    slices in their own units: nothing from the test input).

    * per slice (:func:`s3_similarity`; the written table has one row per series and slice,
      column ``model``): SSIM/RMSE/PSNR of prediction, input, null and the two floors (``floor:
      all background``, ``floor: outline only``) vs target (normalised units, data range
      ``cfg['data_range']``), whole slice as S3 and inside the brain (``*_brain``, the T1w brain
      mask the dataset stores), and the mean CBF inside the brain (input pixels above
      :data:`BRAIN_FRACTION` of the input slice's maximum) of every series in physical units;
    * physical units: the input and the target with their own constants; the prediction and
      the null model with :class:`spectsynth.calibration.ScaleCalibration` fitted on the
      training split (the target's scale from the input's), never with the test target's
      constants; the ``calibration`` column names it;
    * summary of the metrics over slices, and paired t-tests of the prediction against the
      input baseline, the null model and the outline floor, whole slice and inside the brain, on
      *subject means* (one family, corrected);
    * atlas-region means (``labels``: subject -> label volume, ``label_names``: value ->
      region; default the vascular territories) of every series, absolute and scale-free
      (:func:`s3_roi_means`);
    * linear regression + Pearson r (input vs target, prediction vs target, prediction vs
      input, both nulls vs target, the input-free null vs input) on the absolute ROI means
      (``basis = roi``), the scale-free ROI values (``roi_scale_free``) and the slice means
      (``slice``), with intervals from resampling subjects and a mixed-model slope test
      (:func:`s3_regression`), and a scatter figure of the ROI means (slice means without labels);
    * the run's numbers next to S3's published ones (:mod:`spectsynth.studies.published`) and one
      verdict row per published finding (:func:`s3_ssim_verdict`, :func:`s3_regression_verdicts`).

    ``out``: ``slice_metrics``, ``roi_means``, ``summary``, ``ttest``, ``regression``,
    ``published``, ``scatter``, ``verdicts``, ``not_computed``.
    """
    from ..published import published_records

    dr = float(cfg["data_range"])
    notes: list[dict] = []
    arrays, table = load_paired(experiment, files)
    cin, cout = spec["input_channels"][0], spec["target_channels"][0]
    for col in (f"gain_{cin}", f"bias_{cin}", f"gain_{cout}", f"bias_{cout}"):
        if col not in table.columns:
            raise EvaluationError(f"the prediction table lacks {col}", experiment=experiment,
                                  hint="Rebuild the dataset and rerun predict_experiment")
    if arrays["input"].shape != arrays["target"].shape:
        raise EvaluationError(f"input {arrays['input'].shape} and target {arrays['target'].shape} "
                              "differ in shape", experiment=experiment)
    cal, null_img, null_phys = _s3_train(train, cin, cout, experiment=experiment)
    if null_img.shape != arrays["target"].shape[-2:]:
        raise EvaluationError(f"training slices are {null_img.shape} px but the test slices "
                              f"{arrays['target'].shape[-2:]}", experiment=experiment,
                              hint="Rebuild the dataset and rerun predict_experiment")
    n = len(table)
    norm = {"input": np.asarray(arrays["input"], dtype=np.float64)[:, 0],
            "prediction": np.asarray(arrays["prediction"], dtype=np.float64)[:, 0],
            "null": np.broadcast_to(null_img, (n, *null_img.shape)),
            "target": np.asarray(arrays["target"], dtype=np.float64)[:, 0]}
    win = cfg["ssim_win_size"]
    sim, data = s3_similarity(experiment, arrays, table, norm, train, target_channel=cout, data_range=dr,
                              win_size=win)

    g_in, b_in = table[f"gain_{cin}"].to_numpy(float), table[f"bias_{cin}"].to_numpy(float)
    g_t, b_t = table[f"gain_{cout}"].to_numpy(float), table[f"bias_{cout}"].to_numpy(float)
    if np.any(g_t == 0):
        raise EvaluationError(f"{int((g_t == 0).sum())} target slices hold no signal (gain 0)",
                              experiment=experiment, hint="Exclude blank slices from the dataset")
    raw = {"input": (norm["input"] - b_in[:, None, None]) / np.where(g_in == 0, 1.0, g_in)[:, None, None],
           "prediction": cal.apply(norm["prediction"], g_in, b_in, experiment=experiment),
           "null_input_scale": cal.apply(norm["null"], g_in, b_in, experiment=experiment),
           "null_train_scale": np.broadcast_to(null_phys, (n, *null_phys.shape)),
           "target": (norm["target"] - b_t[:, None, None]) / g_t[:, None, None]}
    mask = raw["input"] > BRAIN_FRACTION * raw["input"].reshape(n, -1).max(1)[:, None, None]
    empty = np.flatnonzero(~mask.reshape(n, -1).any(1))
    if empty.size:
        raise EvaluationError(f"{empty.size} input slices hold no brain signal (rows {empty.tolist()})",
                              experiment=experiment, hint="Exclude blank slices from the dataset")
    rows = data["pred_row"].to_numpy()
    for k in S3_SERIES:
        data[f"mean_{k}"] = _brain_means(raw[k], mask)[rows]
    data["calibration"] = cal.describe()
    means = data[["pred_row", *(f"mean_{k}" for k in S3_SERIES), "calibration"]]
    write_table(sim.merge(means, on="pred_row", how="left", validate="many_to_one"), out["slice_metrics"],
                what="S3 per-slice metrics")

    metric_cols = [f"{m}_{k}_vs_target" for m in ("ssim", "rmse", "psnr", *BRAIN_METRICS)
                   for k in S3_SIMILARITY]
    with context(experiment=experiment):
        summ = attempt(notes, "S3", "summary (mean ± sd)", S.summary_table, data, metric_cols)
    if summ is not None:
        summ = with_columns(summ, experiment=experiment)
        keys = {f"{m}_{k}_vs_target": (m, k) for m in (*PAIRED_METRICS, *BRAIN_METRICS) for k in S3_SIMILARITY}
        summ.insert(1, "model", [S3_SIMILARITY[keys[v][1]] for v in summ["value"]])
        summ.insert(2, "metric", [keys[v][0] for v in summ["value"]])
        summ.insert(3, "version", ["inside the brain" if keys[v][0] in BRAIN_METRICS else "whole slice (as S3)"
                                   for v in summ["value"]])
        summ["n_counts"] = "test slices"
        pub = {f"ssim_{r['name']}": f"{r['value']:.2f}" for r in published_records("S3", "ssim")}
        summ["published"] = [pub.get(v, "not reported") for v in summ["value"]]
        summ["n_counts"] = f"test slices of {data['subject'].nunique()} subjects"
    # the patient is the unit: every metric is averaged over a subject's slices before the test
    names = {"floor_outline": "outline floor"}
    bases = ("input", "null", "floor_outline")
    tested = [m for m in (*PAIRED_METRICS, *BRAIN_METRICS)
              if all(f"{m}_{k}_vs_target" in data.columns for k in ("prediction", *bases))]
    subj = S.subject_means(data, [f"{m}_{k}_vs_target" for m in tested for k in ("prediction", *bases)])
    comps = [{"label": f"{m.upper()} prediction vs target against {names.get(base, base)} vs target "
                       "(subject means)",
              "a": subj[f"{m}_prediction_vs_target"], "b": subj[f"{m}_{base}_vs_target"],
              "names": ("prediction", "baseline"), "base": base}
             for base in bases for m in tested]
    with context(experiment=experiment):
        ttest = attempt(notes, "S3", "paired t-tests against the baselines (subject means)", S.paired_t_tests,
                        comps, alpha=float(cfg["alpha"]), corrections=tuple(cfg["corrections"]))
    if ttest is not None:
        ttest = with_columns(ttest, experiment=experiment)
        ttest.insert(0, "baseline", [S3_SIMILARITY[c["base"]] for c in comps])
        ttest.insert(1, "version", ["inside the brain" if c["label"].split(" ")[0].lower() in BRAIN_METRICS
                                    else "whole slice (as S3)" for c in comps])
        ttest["n_counts"] = f"test subjects (means of their slices; {len(data)} slices)"
    summary = summ if summ is not None else pd.DataFrame(columns=["experiment", "value"])
    write_table(summary, out["summary"], what="S3 summary")
    ttest = ttest if ttest is not None else pd.DataFrame(columns=["experiment", "label"])
    write_table(ttest, out["ttest"], what="S3 paired t-tests")

    rois = pd.DataFrame(columns=["experiment", "subject", "region", "n_pixels", "n_pixels_brain", *S3_SERIES,
                                 *(f"{k}{SCALE_FREE}" for k in S3_SERIES)])
    if labels:
        from ...labels import TERRITORIES

        rois = s3_roi_means(experiment, raw, table, labels, label_names or TERRITORIES, notes=notes)
    rois["calibration"] = cal.describe()
    write_table(rois, out["roi_means"], what="S3 ROI means")

    def pairs_of(frame: pd.DataFrame, col: Callable[[str], str], what: str) -> list[dict]:
        cal_note = "(calibrated)"
        return [{"x": frame[col(xk)], "y": frame[col(yk)], "subjects": frame["subject"], "label": label,
                 "series": series, "xlabel": f"{S3_SERIES_TEXT[xk]} CBF ({what})",
                 "ylabel": f"{S3_SERIES_TEXT[yk]} CBF" + (f" {cal_note}" if yk == "prediction" else "")}
                for yk, xk, label, series in (
                    ("input", "target", "input vs target", "baseline"),
                    ("prediction", "target", "prediction vs target", "model"),
                    ("prediction", "input", "prediction vs input", "model"),
                    ("null_input_scale", "target", "null (input's scale) vs target", "null model"),
                    ("null_train_scale", "target", "null (training scale) vs target", "null model"),
                    ("null_train_scale", "input", "null (training scale) vs input", "null model"))]

    bases = [("slice", pairs_of(data, lambda k: f"mean_{k}", "slice brain mean"), "slices")]
    if len(rois):
        bases[:0] = [("roi", pairs_of(rois, lambda k: k, "atlas ROI mean"), "ROIs"),
                     ("roi_scale_free", pairs_of(rois, lambda k: f"{k}{SCALE_FREE}", "ROI / whole-brain mean"),
                      "ROIs")]
    recs, ok = [], {}
    for basis, pairs, unit in bases:
        for pair in pairs:
            what = f"regression {pair['label']} ({basis} means)"
            with context(experiment=experiment):
                rec = attempt(notes, "S3", what, s3_regression, pair["x"], pair["y"], pair["subjects"],
                              label=pair["label"], unit=unit, alpha=float(cfg["alpha"]),
                              confidence=float(cfg["regression_confidence"]), note_list=notes, note_what=what)
            if rec is not None:
                recs.append({"basis": basis, "values": {"roi": "absolute CBF", "slice": "absolute CBF",
                                                        "roi_scale_free": "ROI / whole-brain mean"}[basis],
                             "series": pair["series"], **rec})
                ok.setdefault(basis, []).append(pair)
    reg = with_columns(pd.DataFrame(recs), at=3, experiment=experiment) if recs else pd.DataFrame(
        columns=["basis", "values", "series", "experiment", "label"])
    if recs:
        reg["published"] = [_published_regression(r) for r in reg["label"]]
        reg["calibration"] = cal.describe()
    label = figure_label(scale_label, int(data["subject"].nunique()), [spec])
    shown = next((b for b, _, _ in bases if b in ok and b != "roi_scale_free"), None)
    title = (f"S3 {experiment}: {'atlas ROI' if shown == 'roi' else 'slice'}-mean CBF, "
             "least-squares fits (prediction and input-scale null calibrated on the training split)")
    if shown is not None:
        fig = P.scatter_fits(ok[shown], subtitle=label, title=title, experiment=experiment)
    else:
        fig = message_figure("No regression could be computed (see not_computed.tsv).", label, title)
    P.save_figure(fig, out["scatter"], dpi=int(cfg["figure_dpi"]))
    write_table(reg, out["regression"], what="S3 regressions")
    pub = s3_published_table(summary, reg, experiment=experiment, scale_label=scale_label)
    write_table(pub, out["published"], what="S3 results next to the published values")
    verdicts = V.frame([s3_ssim_verdict(data, alpha=float(cfg["alpha"])),
                        *s3_regression_verdicts(reg, basis="roi")])
    write_table(verdicts, out["verdicts"], what="S3 verdicts")
    write_table(notes_frame(notes), out["not_computed"], what="S3 statistics not computed")
    return {"slice_metrics": data, "roi_means": rois, "summary": summary, "ttest": ttest,
            "regression": reg, "published": pub, "verdicts": verdicts, "calibration": cal}


# ----------------------------------------------------------------------------- entry points
def run(inputs: Mapping, output: Mapping, params: Mapping, wildcards: Mapping) -> None:
    """The evaluation rule's entry point (workflow/scripts/evaluate_study.py): rule inputs, outputs,
    the study's evaluation params and the wildcards, as plain mappings."""

    labels = dict(zip(params["subjects"], inputs["labels"], strict=True))
    evaluate_s3(wildcards["experiment"], {"h5": inputs["h5"], "tsv": inputs["tsv"]}, params["spec"], output,
                cfg=params["cfg"], scale_label=params["scale_label"], labels=labels,
                train={"h5": inputs["train"], "index": inputs["index"]})



def reading_packet(experiment: str, inputs: Mapping, *, out_dir: str, key_path: str, cfg: Mapping,
                   seed: int = 0, convention: str = "radiological") -> dict:
    """S3's similarity reading (:func:`spectsynth.reading.similarity_packet`): each test slice's
    prediction and input SPECT next to its PET, in an open and a blind packet."""
    from ...errors import EvaluationError
    from ...evaluate import shard_to_ras
    from ...infer import load_predictions
    from ...reading import similarity_packet

    arrays, table, _ = load_predictions(inputs["h5"], inputs["tsv"], experiment=experiment)
    if "input" not in arrays or "target" not in arrays:
        raise EvaluationError("a paired experiment's reading packet needs the inputs and targets beside the "
                              "predictions", experiment=experiment, hint="Rerun predict_experiment")
    n = cfg.get("n_per_source")
    ids = [f"sub-{s} slice {z}" for s, z in zip(table["subject"], table["slice_index"], strict=True)]
    return similarity_packet(list(shard_to_ras(arrays["target"][:, 0])),
                             {"prediction": list(shard_to_ras(arrays["prediction"][:, 0])),
                              "spect": list(shard_to_ras(arrays["input"][:, 0]))},
                             ids=ids, out_dir=out_dir, key_path=key_path, experiment=experiment, seed=seed,
                             n_slices=None if n is None else int(n), score_scale=int(cfg["score_scale"]),
                             convention=convention, footer=f"reading packet {experiment}")


