"""S0's evaluation: ASP, Dice and binding ratios of the prediction against the undegraded original,
with the damaged input as the baseline; the binding-ratio CNN's readings; Bland-Altman."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ... import metrics as M
from ... import plots as P
from ... import stats as S
from ...errors import EvaluationError, context
from ...evaluate import (
    attempt,
    figure_label,
    load_paired,
    message_figure,
    notes_frame,
    shard_to_ras,
    with_columns,
)
from ...io import write_table
from .regions import slice_binding_ratios

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- S0
def _pair_ratios(prediction, original, segmentation, *, experiment: str, subject: str):
    return (slice_binding_ratios(prediction, segmentation, experiment=experiment, subject=subject),
            slice_binding_ratios(original, segmentation, experiment=experiment, subject=subject))


# What S0's tables compare with the undegraded original: the model's prediction and, as the
# baseline every number is read against, the damaged input itself taken as the "prediction".
S0_SERIES = {"prediction": "model prediction", "input": "damaged input (baseline)",
             "mean_normal": "mean normal slice of the training subjects (baseline)",
             "constant": "training-mean binding ratio per region (baseline)"}
# The baselines beside the damaged input: images (ASP, Dice, slice SBR) and a constant SBR predictor.
IMAGE_SERIES = ("prediction", "input", "mean_normal")
SBR_CNN_COLUMNS = ["experiment", "subject", "case", "region", "known", "cnn_original", "cnn_prediction",
                   "cnn_input", "error_original", "error_prediction", "error_input", "abs_error_original",
                   "abs_error_prediction", "abs_error_input"]
SBR_CNN_SERIES = {"prediction": "CNN on the prediction", "input": "CNN on the damaged input (baseline)",
                  "mean_normal": "CNN on the training subjects' mean normal slice (baseline)",
                  "constant": "training-mean known SBR per region, no image (baseline)",
                  "original": "CNN on the original (yardstick)"}


def sbr_cnn_readings(experiment: str, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                     regressor: str | Path, *, batch_size: int = 64, device: str = "auto",
                     mean_normal: np.ndarray | None = None, constant: Mapping[str, float] | None = None
                     ) -> pd.DataFrame:
    """S0's binding-ratio match with the regression CNN (:mod:`spectsynth.studies.s0.sbr_regressor`).

    The CNN reads the SBR of every predicted slice, every damaged input slice (the baseline:
    what the CNN makes of the image before any model) and every original slice (all in the
    dataset's normalised units, stored orientation); the known SBR of the original comes from
    the dataset index columns ``orig_sbr_<region>`` that travel with the prediction table.
    One row per case and region: ``known``, ``cnn_original``, ``cnn_prediction``,
    ``cnn_input`` and the errors ``cnn_<series> - known``: the prediction's, the baseline's, and
    the CNN's own on the originals (images it reads without any generative model in
    between).  When present, ``known_input`` is the known SBR of the damaged input slice.

    Two more baselines when given: ``mean_normal`` (the training subjects' mean normal slice,
    stored orientation, read once by the CNN: ``cnn_mean_normal``) and ``constant`` (the
    training-mean known SBR per region, :func:`constant_sbr`, no image at all: ``cnn_constant``).
    """
    from . import ORIG_SBR_PREFIX, SBR_PREFIX
    from .sbr_regressor import REGIONS, check_sbr_columns, load_sbr_regressor, predict_sbr, sbr_columns

    check_sbr_columns(table, (ORIG_SBR_PREFIX,), experiment=experiment,
                      where="the prediction table (the test rows of the dataset index)")
    model = load_sbr_regressor(regressor, device=device, experiment=experiment)
    reads = {series: predict_sbr(model, np.asarray(arrays[key]), batch_size, experiment=experiment)
             for series, key in (("prediction", "prediction"), ("input", "input"), ("original", "target"))}
    series_list = ["original", "prediction", "input"]
    if mean_normal is not None:
        mn = np.asarray(mean_normal, dtype=np.float32).reshape((1, 1) + np.asarray(mean_normal).shape[-2:])
        one = predict_sbr(model, mn, 1, experiment=experiment)
        reads["mean_normal"] = pd.DataFrame({r: np.repeat(float(one[r].iat[0]), len(table)) for r in REGIONS})
        series_list.append("mean_normal")
    if constant is not None:
        reads["constant"] = pd.DataFrame({r: np.repeat(float(constant[r]), len(table)) for r in REGIONS})
        series_list.append("constant")
    known = table[sbr_columns(ORIG_SBR_PREFIX)].astype(float).to_numpy()
    has_input = all(c in table.columns for c in sbr_columns(SBR_PREFIX))
    rows = []
    for i, row in table.reset_index(drop=True).iterrows():
        case = f"{row.get('desc', '')}#{row['pred_row'] if 'pred_row' in row else i}"
        for j, region in enumerate(REGIONS):
            k = float(known[i, j])
            rec = {"experiment": experiment, "subject": str(row["subject"]), "case": case, "region": region,
                   "known": k}
            for series in series_list:
                rec[f"cnn_{series}"] = float(reads[series][region].iat[i])
            for series in series_list:
                rec[f"error_{series}"] = rec[f"cnn_{series}"] - k
            for series in series_list:
                rec[f"abs_error_{series}"] = abs(rec[f"error_{series}"])
            if has_input:
                rec["known_input"] = float(row[f"{SBR_PREFIX}{region}"])
            rows.append(rec)
    cols = SBR_CNN_COLUMNS[:5] + (["known_input"] if has_input else []) + SBR_CNN_COLUMNS[5:]
    extra = [f"{p}_{s}" for p in ("cnn", "error", "abs_error") for s in series_list[3:]]
    return pd.DataFrame(rows, columns=cols + extra)


def constant_sbr(index: pd.DataFrame, *, experiment: str) -> dict[str, float]:
    """The constant binding-ratio predictor: per region (caudate/putamen, L/R) the mean over the
    TRAINING subjects of each subject's mean known SBR of its originals (``orig_sbr_<region>``
    of the dataset index's train rows): every subject counts once, no test subject enters."""
    from . import ORIG_SBR_PREFIX
    from .sbr_regressor import REGIONS, check_sbr_columns

    train = index[index["split"] == "train"] if "split" in index.columns else index
    if train.empty:
        raise EvaluationError("the dataset index has no training rows; the constant-SBR baseline is undefined",
                              experiment=experiment)
    check_sbr_columns(train, (ORIG_SBR_PREFIX,), experiment=experiment, where="the dataset index (train rows)")
    per_subject = train.groupby(train["subject"].astype(str))[[f"{ORIG_SBR_PREFIX}{r}" for r in REGIONS]].mean()
    return {r: float(per_subject[f"{ORIG_SBR_PREFIX}{r}"].mean()) for r in REGIONS}


def sbr_cnn_error_fractions(readings: pd.DataFrame, *, thresholds: Sequence[float], experiment: str
                            ) -> pd.DataFrame:
    """Fraction of (case, region) readings with |error| under each threshold, for the prediction,
    the damaged input (baseline) and, as the yardstick, the CNN on the originals; over all
    regions and per region."""
    parts = []
    for series in SBR_CNN_SERIES:
        col = f"cnn_{series}"
        if col not in readings.columns:
            continue
        groups = [("all", readings)] + [(r, g) for r, g in readings.groupby("region", sort=False)]
        for region, g in groups:
            with context(experiment=experiment):
                frac = M.sbr_error_fractions(g[col], g["known"], thresholds=tuple(thresholds))
            frac = with_columns(frac, experiment=experiment)
            frac.insert(1, "series", series)
            frac.insert(2, "region", region)
            frac["mean_abs_error"] = float(np.mean(np.abs(g[col] - g["known"])))
            parts.append(frac)
    return pd.concat(parts, ignore_index=True)


def sbr_cnn_figure(readings: pd.DataFrame, fractions: pd.DataFrame, *, subtitle: str, title: str,
                   threshold: float | None = None):
    """CNN-read SBR against the known SBR of the original: the CNN on the original slices (its
    own error), on the damaged inputs (baseline) and on the predictions, markers per region,
    identity line."""
    fig = P._figure(5.8, 5.0)
    ax = fig.subplots()
    markers = dict(zip(readings["region"].unique(), "osD^v<>"))
    shown = [s for s in SBR_CNN_SERIES if f"cnn_{s}" in readings.columns]
    for c, series in enumerate(shown):
        text = SBR_CNN_SERIES[series]
        f = fractions[(fractions["series"] == series) & (fractions["region"] == "all")]
        label = f"{text}: MAE {float(f['mean_abs_error'].iat[0]):.2f}" if len(f) else text
        if threshold is not None and len(f):
            hit = f[np.isclose(f["threshold"], threshold)]
            if len(hit):
                label += f", {100 * float(hit['fraction'].iat[0]):.0f} % under {threshold:g}"
        for k, (region, g) in enumerate(readings.groupby("region", sort=False)):
            ax.scatter(g["known"], g[f"cnn_{series}"], s=16, alpha=0.75, color=f"C{c}", marker=markers[region],
                       edgecolor="none", label=label if k == 0 else None)
    cols = ["known", *(f"cnn_{s}" for s in shown)]
    lo = float(np.nanmin(readings[cols].to_numpy()))
    hi = float(np.nanmax(readings[cols].to_numpy()))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8, ls="--", label="identity")
    for region, m in markers.items():
        ax.scatter([], [], marker=m, color="0.4", s=16, label=region.replace("_", " "))
    ax.set_xlabel("known SBR of the original (measured on the simulated volume)")
    ax.set_ylabel("SBR read by the regression CNN")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7, loc="upper left")
    P._stamp(fig, title, subtitle)
    return fig


def s0_agreement(experiment: str, candidate_ras: np.ndarray, original_ras: np.ndarray, table: pd.DataFrame, *,
                 series: str, seg_cfg: Mapping, convention: str, notes: list,
                 regions: Sequence[np.ndarray]) -> tuple[list[pd.DataFrame], list[dict], list[dict]]:
    """ASP, Dice and slice SBR of one series of slices (the prediction, or a baseline image)
    against the originals; each row carries ``series``.  ASP and Dice compare the basal ganglia
    segmented in the candidate with those segmented in the original (S0's definitions); the
    slice SBR of both is measured in ``regions`` (one side segmentation per row, 1 left, 2
    right: the subject's anatomical striatum labels, :mod:`.regions`), never in a segmentation
    of the original.  A slice that cannot be segmented is noted and left out."""
    asp_parts, dice_parts, sbr_rows = [], [], []
    for i, row in table.iterrows():
        subject = str(row["subject"])
        case = f"{row.get('desc', '')}#{row['pred_row']}"
        kw = dict(fraction=float(seg_cfg["threshold_fraction"]), min_size_px=int(seg_cfg["min_size_px"]),
                  dilate_px=0)
        with context(experiment=experiment, subject=subject):
            res = attempt(notes, "S0", f"ASP/Dice {experiment} {series} subject {subject} case {case}",
                           M.basal_ganglia_agreement, candidate_ras[i], original_ras[i], convention=convention,
                           case=case, **kw)
            if res is not None:
                asp_parts.append(with_columns(res[0], experiment=experiment, subject=subject).assign(series=series))
                dice_parts.append(with_columns(res[1], experiment=experiment, subject=subject).assign(series=series))
            ratios = attempt(notes, "S0", f"SBR {experiment} {series} subject {subject} case {case}",
                              _pair_ratios, candidate_ras[i], original_ras[i], regions[i], experiment=experiment,
                              subject=subject)
        if ratios is None:
            continue
        for side in M.SIDES:
            sbr_rows.append(_sbr_row(experiment, series, subject, case, side, ratios[1][side], ratios[0][side]))
    return asp_parts, dice_parts, sbr_rows


def _sbr_row(experiment, series, subject, case, side, original: float, predicted: float) -> dict:
    return {"experiment": experiment, "series": series, "subject": subject, "case": case, "side": side,
            "sbr_original": original, "sbr_prediction": predicted, "error": predicted - original,
            "abs_error": abs(predicted - original)}


def input_regions(input_ras: np.ndarray, seg_cfg: Mapping) -> list[np.ndarray]:
    """Regions for the slice SBR when no anatomy is given: the basal ganglia segmented in the
    damaged input (the model's input side, never the target)."""
    kw = dict(fraction=float(seg_cfg["threshold_fraction"]), min_size_px=int(seg_cfg["min_size_px"]),
              dilate_px=0)
    return [M.segment_basal_ganglia(img, **kw) for img in input_ras]


def _series_first(frame: pd.DataFrame) -> pd.DataFrame:
    cols = list(frame.columns)
    if "series" in cols:
        cols.remove("series")
        cols.insert(cols.index("experiment") + 1 if "experiment" in cols else 0, "series")
    return frame[cols]


def _summary(data: pd.DataFrame, values: Sequence[str], *, by: Sequence[str], experiment: str) -> pd.DataFrame:
    """:func:`spectsynth.stats.summary_table` with ``experiment`` after the ``by`` columns."""
    return with_columns(S.summary_table(data, values, by=by), at=len(by), experiment=experiment)


def _per_series(notes: list, what: str, fn: Callable, data: pd.DataFrame, *args, **kwargs) -> pd.DataFrame | None:
    """``fn`` applied to each series of ``data`` (``attempt``), the results stacked with ``series``."""
    parts = []
    for series, sub in data.groupby("series", sort=False):
        res = attempt(notes, "S0", f"{what} ({series})", fn, sub, *args, **kwargs)
        if res is not None:
            parts.append(_series_first(res.assign(series=series)))
    return pd.concat(parts, ignore_index=True) if parts else None


def bland_altman_series_figure(sbr: pd.DataFrame, *, subtitle: str, title: str, experiment: str,
                               loa_z: float):
    """Bland-Altman panels side by side, one per series (prediction, damaged input baseline), on a
    shared difference axis, so the model's agreement is read against the baseline's."""
    series = [s for s in S0_SERIES if (sbr["series"] == s).any()]
    fig = P._figure(5.0 * len(series), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(series), sharey=True))
    for ax, s in zip(axes, series, strict=True):
        sub = sbr[sbr["series"] == s]
        m, r = sub["sbr_prediction"].to_numpy(float), sub["sbr_original"].to_numpy(float)
        with context(experiment=experiment):
            rec = S.bland_altman(m, r, label=S0_SERIES[s], loa_z=loa_z)
        d = rec.details
        ax.scatter((m + r) / 2, m - r, s=14, alpha=0.7, edgecolor="none", color="C0" if s == "prediction" else "C1")
        for yv, style, text in ((d["bias"], "-", f"bias {d['bias']:.3f}"),
                                (d["loa_low"], "--", f"-{loa_z:g} SD {d['loa_low']:.3f}"),
                                (d["loa_high"], "--", f"+{loa_z:g} SD {d['loa_high']:.3f}")):
            ax.axhline(yv, color="C3", ls=style, lw=1)
            ax.text(0.99, yv, f"{text} ", transform=ax.get_yaxis_transform(), va="bottom", ha="right",
                    fontsize=7, color="C3")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlabel(f"mean of {'predicted' if s == 'prediction' else 'input'} and original SBR")
        ax.set_title(f"{S0_SERIES[s]} vs original (n = {rec.n})", fontsize=9)
    axes[0].set_ylabel("slice SBR minus original SBR")
    P._stamp(fig, title, subtitle)
    return fig


THRESHOLD_GRID = tuple(round(0.01 * k, 2) for k in range(1, 301))   # 0.01 .. 3.00
SUMMARY_COLUMNS = ["experiment", "quantity", "series", "n", "n_counts", "ours", "ours_text", "published",
                   "published_value", "relation", "unit", "scale"]


def subject_mean(data: pd.DataFrame, value: str) -> pd.Series:
    """Per subject, the mean of ``value`` over its rows (the patient as the unit)."""
    return data.groupby(data["subject"].astype(str), sort=True)[value].mean()


def fraction_within(abs_error, threshold: float) -> float:
    """Fraction of ``abs_error`` strictly under ``threshold``."""
    a = np.asarray(abs_error, dtype=float)
    return float((a < threshold).mean()) if a.size else float("nan")


def subject_fraction_within(data: pd.DataFrame, abs_col: str, threshold: float) -> pd.Series:
    """Per subject, the fraction of its readings with ``abs_col`` under ``threshold``."""
    return data.groupby(data["subject"].astype(str), sort=True)[abs_col].apply(
        lambda a: fraction_within(a, threshold))


def baseline_fail_threshold(model_abs_error, baseline_abs_error, *, grid: Sequence[float] = THRESHOLD_GRID,
                            level: float | None = None) -> float | None:
    """The largest error threshold of ``grid`` at which the baseline fails the criterion "fraction of
    |errors| under the threshold": where its fraction is below the model's (``level`` None) or below
    ``level`` (e.g. the published 52 %).  Above it the baseline does as well as the model (or
    reaches the level), so a criterion with a looser threshold cannot discriminate.  None: the
    baseline never fails on the grid."""
    hits = []
    for t in grid:
        fb = fraction_within(baseline_abs_error, t)
        ref = fraction_within(model_abs_error, t) if level is None else float(level)
        if fb < ref:
            hits.append(float(t))
    return max(hits) if hits else None


def s0_published_summary(experiment: str, *, asp: pd.DataFrame, dice: pd.DataFrame,
                         cnn: pd.DataFrame | None, scale_label: str, asp_limit_px: float = 3.0,
                         notes: list | None = None) -> pd.DataFrame:
    """S0's headline numbers beside the published ones (:data:`spectsynth.studies.published.S0`).

    One row per quantity, series and unit of ``n`` (``n_counts``: ``images`` = test slices,
    ``slice sides``, ``readings`` = slice x region, or ``subjects`` = the per-subject means
    averaged over the test subjects, the patient as the unit).  Series: the ``prediction`` and
    the baselines it must beat -- the damaged ``input``, the training subjects' ``mean_normal``
    slice and, for the binding ratio, the ``constant`` training-mean SBR per region -- and, for
    the regression CNN, the ``original`` yardstick.  Quantities: Dice left/right, ASP (mean
    |difference| over the measures and sides; fraction of slice sides whose every measure is
    under ``asp_limit_px``), the fraction of CNN readings with |error| < 0.75 and, per baseline,
    the largest threshold at which the baseline still fails (:func:`baseline_fail_threshold`:
    below the model's fraction, and below the published 52 %), beside the paper's 0.75.
    """
    from ..published import published

    ref = published("S0")["values"]
    rows = []

    def add(key: str, series: str, ours: float, text: str, n: int, counts: str, quantity: str | None = None,
            pub_text: str | None = None, pub_value: float | None = None, relation: str | None = None,
            unit: str | None = None):
        pub = ref[key]
        rows.append({"experiment": experiment, "quantity": quantity or pub["quantity"], "series": series,
                     "n": int(n), "n_counts": counts, "ours": float(ours), "ours_text": text,
                     "published": pub_text or pub["published"],
                     "published_value": float(pub["value"] if pub_value is None else pub_value),
                     "relation": relation or pub["relation"], "unit": unit or pub["unit"], "scale": scale_label})

    def pct(v):
        v = np.asarray(v, dtype=float)
        sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
        return f"{100 * v.mean():.0f} ± {100 * sd:.0f} % ({100 * v.min():.0f}-{100 * v.max():.0f} %)"

    for series in IMAGE_SERIES:
        d = dice[dice["series"] == series]
        for side in ("L", "R"):
            ds = d[d["side"] == side]
            if len(ds):
                v = ds["dice"].to_numpy(float)
                add(f"dice_{side}", series, float(v.mean()), pct(v), v.size, "images")
                sv = subject_mean(ds, "dice").to_numpy(float)
                add(f"dice_{side}", series, float(sv.mean()), pct(sv), sv.size, "subjects")
        a = asp[asp["series"] == series]
        if len(a):
            q_mean = "Anatomy Shape Precision, mean |prediction - original| over measures and sides"
            add("asp", series, float(a["abs_difference"].mean()), f"{a['abs_difference'].mean():.2f} px", len(a),
                "measures x sides x images", quantity=q_mean)
            sv = subject_mean(a, "abs_difference")
            add("asp", series, float(sv.mean()), f"{sv.mean():.2f} px", len(sv), "subjects", quantity=q_mean)
            worst = a.groupby(["subject", "case", "side"])["abs_difference"].max().reset_index()
            worst["ok"] = (worst["abs_difference"] < asp_limit_px).astype(float)
            q_frac = f"Anatomy Shape Precision, fraction of slice sides with every measure < {asp_limit_px:g} px"
            frac = float(worst["ok"].mean())
            add("asp", series, frac, f"{100 * frac:.0f} % of slice sides", len(worst), "slice sides",
                quantity=q_frac)
            sv = subject_mean(worst, "ok")
            add("asp", series, float(sv.mean()), f"{100 * sv.mean():.0f} % (mean of subjects)", len(sv),
                "subjects", quantity=q_frac)
    if cnn is not None:
        shown = [s for s in SBR_CNN_SERIES if f"abs_error_{s}" in cnn.columns]
        for series in shown:
            col = f"abs_error_{series}"
            v = fraction_within(cnn[col], 0.75)
            add("sbr_fraction_075", series, v, f"{100 * v:.0f} %", len(cnn), "readings (slice x region)")
            sv = subject_fraction_within(cnn, col, 0.75)
            add("sbr_fraction_075", series, float(sv.mean()), f"{100 * sv.mean():.0f} % (mean of subjects)",
                len(sv), "subjects")
        pub = float(ref["sbr_fraction_075"]["value"])
        for series in [s for s in shown if s not in ("prediction", "original")]:
            for level, what in ((None, "the model's fraction"), (pub, f"the published {100 * pub:.0f} %")):
                t = baseline_fail_threshold(cnn["abs_error_prediction"], cnn[f"abs_error_{series}"], level=level)
                quantity = (f"largest SBR-error threshold at which this baseline's fraction under it is below "
                            f"{what} (grid {THRESHOLD_GRID[0]:g}-{THRESHOLD_GRID[-1]:g})")
                if t is None:
                    if notes is not None:
                        notes.append({"study": "S0", "what": f"{quantity} ({series})",
                                      "reason": "the baseline never fails on the grid: the criterion cannot "
                                                "separate the model from it at any threshold"})
                    continue
                add("sbr_fraction_075", series, t, f"{t:.2f}", len(cnn), "readings (slice x region)",
                    quantity=quantity, pub_text="0.75 (the paper's threshold)", pub_value=0.75, relation="",
                    unit="SBR")
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def s0_verdicts(experiment: str, summary: pd.DataFrame, *, not_computed: Mapping[str, str] | None = None
                ) -> pd.DataFrame:
    """One verdict row per published S0 finding (:func:`spectsynth.verdicts.level_verdict`), on the
    subject-level rows of :func:`s0_published_summary`: Dice left (78 %) and right (82 %), ASP
    (< 3 px, mean |difference|), fraction of CNN binding-ratio errors under 0.75 (52 %).  Each
    is read against its strongest baseline (the best of the damaged input, the mean normal
    slice and, for the binding ratio, the constant training-mean SBR); where that baseline also
    reaches the published level the verdict is "not testable"."""
    from ... import verdicts as V
    from ..published import published

    ref = published("S0")["values"]
    sub = summary[summary["n_counts"] == "subjects"]
    findings = [
        ("dice_L", "Dice of the segmented BG, left, 78 %", "Dice of the segmented BG", True, "Dice"),
        ("dice_R", "Dice of the segmented BG, right, 82 %", "Dice of the segmented BG", True, "Dice"),
        ("asp", "Anatomy Shape Precision < 3 px", "Anatomy Shape Precision, mean |prediction - original|", False,
         "ASP"),
        ("sbr_fraction_075", "52 % of binding-ratio errors < 0.75 (regression CNN)", "fraction of cases with",
         True, "SBR"),
    ]
    baselines = [s for s in S0_SERIES if s != "prediction"]
    rows = []
    for key, finding, prefix, higher, _ in findings:
        pub = ref[key]
        rel = sub[sub["quantity"].str.startswith(prefix) | (sub["quantity"] == pub["quantity"])]
        if key.startswith("dice"):
            rel = rel[rel["quantity"] == pub["quantity"]]
        ours_row = rel[rel["series"] == "prediction"]
        base = rel[rel["series"].isin(baselines)]
        reason = (not_computed or {}).get(key)
        if ours_row.empty and not reason:
            reason = "no subject-level value of the prediction"
        ours = float(ours_row["ours"].iat[0]) if len(ours_row) else None
        n = int(ours_row["n"].iat[0]) if len(ours_row) else 0
        if len(base):
            best = base.loc[base["ours"].idxmax() if higher else base["ours"].idxmin()]
            b_val, b_name = float(best["ours"]), S0_SERIES[str(best["series"])]
        else:
            b_val, b_name = None, ""
        verdict = V.level_verdict(ours=ours, published=float(pub["value"]), baseline=b_val,
                                  higher_is_better=higher, baseline_name=b_name, not_computed=reason)
        rows.append(V.row(study="S0", finding=finding, measure=pub["quantity"], unit=pub["unit"],
                          ours=ours if ours is not None else "", published=pub["published"], n=n,
                          n_counts="test subjects (each subject's mean over its images)", verdict=verdict,
                          baseline=b_val, baseline_name=b_name, statistic="subject-level mean"))
    return V.frame(rows)


def evaluate_s0(experiment: str, files: Mapping[str, str], spec: Mapping, out: Mapping[str, str], *,
                cfg: Mapping, scale_label: str, regressor: str | Path | None = None,
                device: str = "auto", regions: Sequence[np.ndarray] | None = None,
                anatomy: Mapping[str, str] | None = None,
                mean_normal: np.ndarray | None = None, constant: Mapping[str, float] | None = None,
                constant_slice: Mapping[str, float] | None = None) -> dict[str, pd.DataFrame]:
    """S0's evaluation of one (conditional) VAE experiment: prediction vs undegraded original.

    Every measure is taken for the model's prediction and for the baselines it must beat, in
    the same tables (column ``series``, :data:`S0_SERIES`): the damaged input itself taken as
    the "prediction", the training subjects' mean normal slice (``mean_normal``, stored
    orientation; :func:`spectsynth.studies.s0.clinical.mean_training_normal`) and, for binding
    ratios, a constant predictor: the training-mean SBR per region (``constant`` for the
    regression CNN's regions, :func:`constant_sbr`; ``constant_slice`` per side for the slice SBR).

    Per test slice: basal ganglia segmented in candidate and original with the same settings
    (``cfg['bg_segmentation']``, the whole hemisphere), Anatomy Shape Precision (AP, LAT, DLT,
    DRT, centre of mass, px, on the displayed image) and Dice per side; slice binding ratios of
    both (:func:`slice_binding_ratios`) measured in ``regions`` -- one side segmentation per test
    row, or from ``anatomy`` ({subject: striatum dseg}) the subject's anatomical striatum labels
    at the row's slice (:func:`.regions.subject_label_slices`);
    without them, the basal ganglia segmented in the damaged input (:func:`input_regions`), never
    in the original -- with their error, the fraction of cases under each
    ``cfg['sbr_error_thresholds']`` and a Bland-Altman analysis.

    With ``regressor`` (the ``best.pt`` of :func:`spectsynth.studies.s0.sbr_regressor.train_sbr_regressor`)
    also S0's own binding-ratio match: the regression CNN reads the SBR of every prediction,
    every damaged input, the mean normal slice and every original slice (:func:`sbr_cnn_readings`;
    known SBR from the dataset index), and the fraction of cases under each threshold is reported
    for the prediction, the baselines and, as the yardstick, for the CNN on the originals.  These
    are checked and computed first, so a missing SBR column or a slice size the CNN was not
    trained on stops the evaluation before any file is written.  ``device`` runs the CNN
    (``auto``: CUDA when present).

    ``out``: ``asp``, ``asp_summary``, ``dice``, ``dice_summary``, ``sbr``, ``sbr_error``,
    ``bland_altman``, ``bland_altman_plot``, ``examples``, ``not_computed`` and, when given,
    ``summary`` (:func:`s0_published_summary`, per image and per subject, beside the paper's) and
    ``verdicts`` (:func:`s0_verdicts`); with ``regressor`` also ``sbr_cnn``, ``sbr_cnn_error``
    (tables) and ``sbr_cnn_plot`` (figure).
    """
    notes: list[dict] = []
    seg_cfg = cfg["bg_segmentation"]
    conv = cfg["display_convention"]
    arrays, table = load_paired(experiment, files)
    if "input" not in arrays:
        raise EvaluationError(f"{files['h5']} holds no input slices, so the damaged-input baseline cannot be "
                              "computed", experiment=experiment, hint="Rerun predict_experiment")
    cnn = cnn_frac = None
    if regressor is not None:
        missing = [k for k in ("sbr_cnn", "sbr_cnn_error", "sbr_cnn_plot") if k not in out]
        if missing:
            raise EvaluationError(f"a regressor was given but no output path for {missing}", experiment=experiment,
                                  hint="Pass sbr_cnn, sbr_cnn_error and sbr_cnn_plot in the outputs")
        cnn = sbr_cnn_readings(experiment, arrays, table, regressor, batch_size=int(cfg["batch_size"]),
                               device=device, mean_normal=mean_normal, constant=constant)
        cnn_frac = sbr_cnn_error_fractions(cnn, thresholds=cfg["sbr_error_thresholds"], experiment=experiment)
    orig = shard_to_ras(np.asarray(arrays["target"], dtype=np.float64)[:, 0])
    if regions is None and anatomy:
        from .regions import subject_label_slices

        regions = subject_label_slices(table, anatomy, int(orig.shape[-1]), experiment=experiment)
    if regions is None:
        regions = input_regions(shard_to_ras(np.asarray(arrays["input"], dtype=np.float64)[:, 0]), seg_cfg)
    if len(regions) != len(table):
        raise EvaluationError(f"{len(regions)} region slices for {len(table)} test slices", experiment=experiment)
    candidates = [("prediction", arrays["prediction"]), ("input", arrays["input"])]
    if mean_normal is not None:
        mn = np.asarray(mean_normal, dtype=np.float64).reshape(np.asarray(mean_normal).shape[-2:])
        candidates.append(("mean_normal", np.repeat(mn[None, None], len(table), axis=0)))
    asp_parts, dice_parts, sbr_rows = [], [], []
    for series, arr in candidates:
        cand = shard_to_ras(np.asarray(arr, dtype=np.float64)[:, 0])
        a, d, s = s0_agreement(experiment, cand, orig, table, series=series, seg_cfg=seg_cfg, convention=conv,
                               notes=notes, regions=regions)
        if series == "prediction" and not a:
            raise EvaluationError("no predicted test slice could be segmented (see the log)", experiment=experiment,
                                  hint="Check the predictions and evaluate.bg_segmentation")
        asp_parts += a
        dice_parts += d
        sbr_rows += s
    if constant_slice is not None:
        for r in [r for r in sbr_rows if r["series"] == "prediction"]:
            sbr_rows.append(_sbr_row(experiment, "constant", r["subject"], r["case"], r["side"],
                                     r["sbr_original"], float(constant_slice[r["side"]])))
    asp = _series_first(pd.concat(asp_parts, ignore_index=True))
    dice = _series_first(pd.concat(dice_parts, ignore_index=True))
    sbr = pd.DataFrame(sbr_rows, columns=["experiment", "series", "subject", "case", "side", "sbr_original",
                                          "sbr_prediction", "error", "abs_error"])
    write_table(asp, out["asp"], what="S0 anatomy shape precision")
    write_table(dice, out["dice"], what="S0 Dice")
    write_table(sbr, out["sbr"], what="S0 slice binding ratios")
    empty = pd.DataFrame(columns=["experiment", "series", "value", "n", "mean", "sd", "min", "max", "mean_sd"])
    with context(experiment=experiment):
        asp_sum = _per_series(notes, "ASP summary", _summary, asp, ["abs_difference", "difference"],
                              by=["side", "measure"], experiment=experiment)
    write_table(asp_sum if asp_sum is not None else empty, out["asp_summary"], what="S0 ASP summary")
    with context(experiment=experiment):
        dice_sum = _per_series(notes, "Dice summary", _summary, dice, ["dice"], by=["side"],
                               experiment=experiment)
    write_table(dice_sum if dice_sum is not None else empty, out["dice_summary"], what="S0 Dice summary")

    def fractions(sub: pd.DataFrame) -> pd.DataFrame:
        with context(experiment=experiment):
            frac = M.sbr_error_fractions(sub["sbr_prediction"], sub["sbr_original"],
                                         thresholds=tuple(cfg["sbr_error_thresholds"]))
        return with_columns(frac, experiment=experiment)

    frac = _per_series(notes, "SBR error fractions", fractions, sbr) if len(sbr) else None
    write_table(frac if frac is not None else pd.DataFrame(columns=["experiment", "series", "threshold"]),
                out["sbr_error"], what="S0 SBR error fractions")
    label = figure_label(scale_label, int(table["subject"].nunique()), [spec])
    title = f"S0 {experiment}: slice binding ratio vs original, model and damaged-input baseline"
    recs, rec_series = [], []
    for series, sub in sbr.groupby("series", sort=False):
        with context(experiment=experiment):
            rec = attempt(notes, "S0", f"Bland-Altman ({series})", S.bland_altman, sub["sbr_prediction"],
                           sub["sbr_original"], label=f"{S0_SERIES[series]} vs original slice SBR",
                           loa_z=float(cfg["loa_z"]))
        if rec is not None:
            recs.append(rec)
            rec_series.append(series)
    if recs:
        ba = with_columns(S.records_frame(recs), experiment=experiment)
        ba.insert(1, "series", rec_series)
        write_table(ba, out["bland_altman"], what="S0 Bland-Altman")
        fig = bland_altman_series_figure(sbr[sbr["series"].isin(rec_series)], subtitle=label, title=title,
                                         experiment=experiment, loa_z=float(cfg["loa_z"]))
    else:
        write_table(pd.DataFrame(columns=["experiment", "series", "label"]), out["bland_altman"],
                    what="S0 Bland-Altman")
        fig = message_figure("Bland-Altman analysis not computed (see not_computed.tsv).", label, title)
    P.save_figure(fig, out["bland_altman_plot"], dpi=int(cfg["figure_dpi"]))
    pred = shard_to_ras(np.asarray(arrays["prediction"], dtype=np.float64)[:, 0])
    panels = []
    for i in range(min(3, len(table))):
        inp = shard_to_ras(np.asarray(arrays["input"], dtype=np.float64)[i, 0])
        hi = float(max(inp.max(), pred[i].max(), orig[i].max()))
        case = f"{table['subject'].iat[i]} {table['desc'].iat[i] if 'desc' in table else ''}".strip()
        panels += [P.Panel(inp, f"input {case}", cmap="hot", vmin=0, vmax=hi),
                   P.Panel(pred[i], "prediction", cmap="hot", vmin=0, vmax=hi),
                   P.Panel(orig[i], "original", cmap="hot", vmin=0, vmax=hi)]
    fig = P.slice_panel(panels, subtitle=label, title=f"S0 {experiment}: test slices", convention=conv,
                        colorbar=False, ncols=3)
    P.save_figure(fig, out["examples"], dpi=int(cfg["figure_dpi"]))
    result = {"asp": asp, "dice": dice, "sbr": sbr}
    if cnn is not None:
        write_table(cnn, out["sbr_cnn"], what="S0 SBR read by the regression CNN")
        write_table(cnn_frac, out["sbr_cnn_error"], what="S0 regression-CNN SBR error fractions")
        thresholds = [float(t) for t in cfg["sbr_error_thresholds"]]
        fig = sbr_cnn_figure(cnn, cnn_frac, subtitle=label, threshold=max(thresholds) if thresholds else None,
                             title=f"S0 {experiment}: SBR read by the regression CNN vs known SBR")
        P.save_figure(fig, out["sbr_cnn_plot"], dpi=int(cfg["figure_dpi"]))
        result.update(sbr_cnn=cnn, sbr_cnn_error=cnn_frac)
    summary = s0_published_summary(experiment, asp=asp, dice=dice, cnn=cnn, scale_label=scale_label, notes=notes)
    if "summary" in out:
        write_table(summary, out["summary"], what="S0 summary beside the published values")
    result["summary"] = summary
    verdicts = s0_verdicts(experiment, summary, not_computed=None if cnn is not None else {
        "sbr_fraction_075": "no binding-ratio regression CNN was given"})
    if "verdicts" in out:
        write_table(verdicts, out["verdicts"], what="S0 verdicts")
    result["verdicts"] = verdicts
    write_table(notes_frame(notes), out["not_computed"], what="S0 statistics not computed")
    return result


# ----------------------------------------------------------------------------- entry points
def training_baselines(train_h5: str, index_tsv: str, *, striatum: Mapping[str, str] | None, experiment: str
                       ) -> dict:
    """The baselines built from the TRAINING subjects only (no test subject enters): the mean normal
    slice (``mean_normal``, stored orientation), the constant SBR per CNN region (``constant``,
    :func:`constant_sbr`) and, with the anatomy, the training-mean slice SBR per side of the
    originals measured in their anatomical regions (``constant_slice``; one slice per subject)."""
    from ...datasets import SliceShard
    from ...infer import read_index
    from .clinical import mean_training_normal
    from .regions import subject_label_slices

    shards = {"train": train_h5, "index": index_tsv}
    mean_normal, _ = mean_training_normal(shards, index_tsv, channel="original", experiment=experiment)
    index = pd.read_csv(index_tsv, sep="\t", dtype={"subject": str}, keep_default_na=False)
    out = {"mean_normal": mean_normal, "constant": None, "constant_slice": None}
    from . import ORIG_SBR_PREFIX
    from .sbr_regressor import sbr_columns
    if all(c in index.columns for c in sbr_columns(ORIG_SBR_PREFIX)):
        out["constant"] = constant_sbr(index, experiment=experiment)
    if striatum:
        train = read_index(index_tsv, split="train", experiment=experiment).drop_duplicates("subject", keep="first")
        shard = SliceShard(train_h5)
        ch = shard.channel_index(["original"])[0]
        stack = shard.all_images()
        size = stack.shape[-1]
        regions = subject_label_slices(train, striatum, size, experiment=experiment)
        vals = {"L": [], "R": []}
        for (_, row), reg in zip(train.iterrows(), regions, strict=True):
            img = shard_to_ras(stack[int(row["shard_row"]), ch].astype(np.float64))
            r = slice_binding_ratios(img, reg, experiment=experiment, subject=str(row["subject"]))
            for side in vals:
                vals[side].append(r[side])
        out["constant_slice"] = {side: float(np.mean(v)) for side, v in vals.items()}
    return out


def run(inputs: Mapping, output: Mapping, params: Mapping, wildcards: Mapping) -> None:
    """The evaluation rule's entry point (workflow/scripts/evaluate_study.py): rule inputs, outputs,
    the study's evaluation params and the wildcards, as plain mappings."""

    experiment = wildcards["experiment"]
    anatomy = params.get("anatomy") or None
    base = training_baselines(inputs["train"], inputs["index"], striatum=anatomy, experiment=experiment)
    evaluate_s0(experiment, {"h5": inputs["h5"], "tsv": inputs["tsv"]}, params["spec"], output,
                cfg=params["cfg"], scale_label=params["scale_label"], regressor=inputs["regressor"],
                anatomy=anatomy, **base)

