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

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- S0
def slice_binding_ratios(image_ras: np.ndarray, segmentation: np.ndarray, *, experiment: str,
                         subject: str | None = None, background_fraction: float = 0.1) -> dict[str, float]:
    """Slice-level binding ratio per hemisphere: ``mean(region) / background - 1``.

    ``segmentation`` is a :func:`spectsynth.metrics.segment_basal_ganglia` label slice
    (1 left, 2 right); the background is the median of the slice's pixels above
    ``background_fraction`` of its maximum outside the segmentation (the brain background
    S0's dataset normalisation uses).  A 2-D stand-in for the volumetric SBR of
    :mod:`spectsynth.quant`, which needs the anatomical label volumes.
    """
    img = np.asarray(image_ras, dtype=np.float64)
    seg = np.asarray(segmentation)
    if img.shape != seg.shape:
        raise EvaluationError(f"image {img.shape} and segmentation {seg.shape} differ in shape",
                              experiment=experiment, subject=subject)
    mx = float(img.max())
    outside = (img > background_fraction * mx) & (seg == 0)
    if mx <= 0 or not outside.any():
        raise EvaluationError("the slice has no background signal to normalise by",
                              experiment=experiment, subject=subject,
                              hint="Check the slice (blank prediction?)")
    bkg = float(np.median(img[outside]))
    if bkg <= 0:
        raise EvaluationError(f"background {bkg:.4g} is not positive", experiment=experiment,
                              subject=subject)
    out = {}
    for value, side in ((1, "L"), (2, "R")):
        region = seg == value
        if not region.any():
            raise EvaluationError(f"no {side} basal-ganglia pixel in the segmentation",
                                  experiment=experiment, subject=subject)
        out[side] = float(img[region].mean()) / bkg - 1.0
    return out


def _pair_ratios(prediction, original, segmentation, *, experiment: str, subject: str):
    return (slice_binding_ratios(prediction, segmentation, experiment=experiment, subject=subject),
            slice_binding_ratios(original, segmentation, experiment=experiment, subject=subject))


# What S0's tables compare with the undegraded original: the model's prediction and, as the
# baseline every number is read against, the damaged input itself taken as the "prediction".
S0_SERIES = {"prediction": "model prediction", "input": "damaged input (baseline)"}
SBR_CNN_COLUMNS = ["experiment", "subject", "case", "region", "known", "cnn_original", "cnn_prediction",
                   "cnn_input", "error_original", "error_prediction", "error_input", "abs_error_original",
                   "abs_error_prediction", "abs_error_input"]
SBR_CNN_SERIES = {"prediction": "CNN on the prediction", "input": "CNN on the damaged input (baseline)",
                  "original": "CNN on the original (yardstick)"}


def sbr_cnn_readings(experiment: str, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                     regressor: str | Path, *, batch_size: int = 64, device: str = "auto") -> pd.DataFrame:
    """S0's binding-ratio match with the regression CNN (:mod:`spectsynth.studies.s0.sbr_regressor`).

    The CNN reads the SBR of every predicted slice, every damaged input slice (the baseline:
    what the CNN makes of the image before any model) and every original slice (all in the
    dataset's normalised units, stored orientation); the known SBR of the original comes from
    the dataset index columns ``orig_sbr_<region>`` that travel with the prediction table.
    One row per case and region: ``known``, ``cnn_original``, ``cnn_prediction``,
    ``cnn_input`` and the errors ``cnn_<series> - known``: the prediction's, the baseline's, and
    the CNN's own on the originals (images it reads without any generative model in
    between).  When present, ``known_input`` is the known SBR of the damaged input slice.
    """
    from . import ORIG_SBR_PREFIX, SBR_PREFIX
    from .sbr_regressor import REGIONS, check_sbr_columns, load_sbr_regressor, predict_sbr, sbr_columns

    check_sbr_columns(table, (ORIG_SBR_PREFIX,), experiment=experiment,
                      where="the prediction table (the test rows of the dataset index)")
    model = load_sbr_regressor(regressor, device=device, experiment=experiment)
    reads = {series: predict_sbr(model, np.asarray(arrays[key]), batch_size, experiment=experiment)
             for series, key in (("prediction", "prediction"), ("input", "input"), ("original", "target"))}
    known = table[sbr_columns(ORIG_SBR_PREFIX)].astype(float).to_numpy()
    has_input = all(c in table.columns for c in sbr_columns(SBR_PREFIX))
    rows = []
    for i, row in table.reset_index(drop=True).iterrows():
        case = f"{row.get('desc', '')}#{row['pred_row'] if 'pred_row' in row else i}"
        for j, region in enumerate(REGIONS):
            k = float(known[i, j])
            rec = {"experiment": experiment, "subject": str(row["subject"]), "case": case, "region": region,
                   "known": k}
            for series in ("original", "prediction", "input"):
                rec[f"cnn_{series}"] = float(reads[series][region].iat[i])
            for series in ("original", "prediction", "input"):
                rec[f"error_{series}"] = rec[f"cnn_{series}"] - k
            for series in ("original", "prediction", "input"):
                rec[f"abs_error_{series}"] = abs(rec[f"error_{series}"])
            if has_input:
                rec["known_input"] = float(row[f"{SBR_PREFIX}{region}"])
            rows.append(rec)
    cols = SBR_CNN_COLUMNS[:5] + (["known_input"] if has_input else []) + SBR_CNN_COLUMNS[5:]
    return pd.DataFrame(rows, columns=cols)


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
                 series: str, seg_cfg: Mapping, convention: str, notes: list
                 ) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[dict]]:
    """ASP, Dice and slice SBR of one series of slices (the prediction, or the damaged input as
    the baseline) against the originals; each row carries ``series``.  A slice that cannot be
    segmented is noted and left out."""
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
            if res is None:
                continue
            asp_parts.append(with_columns(res[0], experiment=experiment, subject=subject).assign(series=series))
            dice_parts.append(with_columns(res[1], experiment=experiment, subject=subject).assign(series=series))
            seg_o = M.segment_basal_ganglia(original_ras[i], **kw)
            ratios = attempt(notes, "S0", f"SBR {experiment} {series} subject {subject} case {case}",
                              _pair_ratios, candidate_ras[i], original_ras[i], seg_o, experiment=experiment,
                              subject=subject)
        if ratios is None:
            continue
        for side in M.SIDES:
            sbr_rows.append({"experiment": experiment, "series": series, "subject": subject, "case": case,
                             "side": side, "sbr_original": ratios[1][side], "sbr_prediction": ratios[0][side],
                             "error": ratios[0][side] - ratios[1][side],
                             "abs_error": abs(ratios[0][side] - ratios[1][side])})
    return asp_parts, dice_parts, sbr_rows


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


def s0_published_summary(experiment: str, *, asp: pd.DataFrame, dice: pd.DataFrame,
                         cnn_frac: pd.DataFrame | None, scale_label: str, asp_limit_px: float = 3.0
                         ) -> pd.DataFrame:
    """S0's headline numbers beside the published ones (:data:`spectsynth.published.S0`).

    One row per quantity and series (``prediction``, the ``input`` baseline and, for the
    regression CNN, the ``original`` yardstick): Dice left/right (mean ± sd), ASP (mean
    |difference| over the measures and sides, and the fraction of slice sides whose every
    measure is under ``asp_limit_px``) and the fraction of CNN readings with |error| < 0.75,
    with ``published`` (as printed), ``published_value`` and the run's ``scale``.
    """
    from ...published import published

    ref = published("S0")["values"]
    rows = []

    def add(key: str, series: str, ours: float, text: str, n: int, quantity: str | None = None):
        pub = ref[key]
        rows.append({"experiment": experiment, "quantity": quantity or pub["quantity"], "series": series,
                     "n": int(n), "ours": float(ours), "ours_text": text, "published": pub["published"],
                     "published_value": float(pub["value"]), "relation": pub["relation"], "unit": pub["unit"],
                     "scale": scale_label})

    for series in S0_SERIES:
        d = dice[dice["series"] == series]
        for side in ("L", "R"):
            v = d.loc[d["side"] == side, "dice"].to_numpy(float)
            if v.size:
                sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
                add(f"dice_{side}", series, float(v.mean()),
                    f"{100 * v.mean():.0f} ± {100 * sd:.0f} % ({100 * v.min():.0f}-{100 * v.max():.0f} %)", v.size)
        a = asp[asp["series"] == series]
        if len(a):
            add("asp", series, float(a["abs_difference"].mean()), f"{a['abs_difference'].mean():.2f} px", len(a),
                quantity="Anatomy Shape Precision, mean |prediction - original| over measures and sides")
            worst = a.groupby(["case", "side"])["abs_difference"].max()
            frac = float((worst < asp_limit_px).mean())
            add("asp", series, frac, f"{100 * frac:.0f} % of slice sides", len(worst),
                quantity=f"Anatomy Shape Precision, fraction of slice sides with every measure < {asp_limit_px:g} px")
    if cnn_frac is not None:
        for series in SBR_CNN_SERIES:
            f = cnn_frac[(cnn_frac["series"] == series) & (cnn_frac["region"] == "all")
                         & np.isclose(cnn_frac["threshold"], 0.75)]
            if len(f):
                v = float(f["fraction"].iat[0])
                add("sbr_fraction_075", series, v, f"{100 * v:.0f} %", int(f["n"].iat[0]))
    return pd.DataFrame(rows, columns=["experiment", "quantity", "series", "n", "ours", "ours_text", "published",
                                       "published_value", "relation", "unit", "scale"])


def evaluate_s0(experiment: str, files: Mapping[str, str], spec: Mapping, out: Mapping[str, str], *,
                cfg: Mapping, scale_label: str, regressor: str | Path | None = None,
                device: str = "auto") -> dict[str, pd.DataFrame]:
    """S0's evaluation of one (conditional) VAE experiment: prediction vs undegraded original.

    Every measure is taken twice, in the same tables (column ``series``): for the model's
    prediction and for the baseline, the damaged input itself taken as the "prediction"
    (:data:`S0_SERIES`), so a number is always read against what the model started from.

    Per test slice: basal ganglia segmented in prediction (or input) and original with the
    same settings (``cfg['bg_segmentation']``, no anatomical search mask: the whole
    hemisphere), Anatomy Shape Precision (AP, LAT, DLT, DRT, centre of mass, px, on the
    displayed image) and Dice per side; slice binding ratios of both
    (:func:`slice_binding_ratios`, both measured in the original's segmentation) with their
    error, the fraction of cases under each ``cfg['sbr_error_thresholds']`` and a
    Bland-Altman analysis.

    With ``regressor`` (the ``best.pt`` of :func:`spectsynth.studies.s0.sbr_regressor.train_sbr_regressor`)
    also S0's own binding-ratio match: the regression CNN reads the SBR of every prediction,
    every damaged input and every original slice (:func:`sbr_cnn_readings`; known SBR from the
    dataset index), and the fraction of cases under each threshold is reported for the
    prediction, the baseline and, as the yardstick, for the CNN on the originals.  These are
    checked and computed first, so a missing SBR column or a slice size the CNN was not
    trained on stops the evaluation before any file is written.  ``device`` runs the CNN
    (``auto``: CUDA when present).

    ``out``: ``asp``, ``asp_summary``, ``dice``, ``dice_summary``, ``sbr``, ``sbr_error``,
    ``bland_altman``, ``bland_altman_plot``, ``examples``, ``not_computed`` and, when given,
    ``summary`` (:func:`s0_published_summary`, ours beside the paper's); with ``regressor``
    also ``sbr_cnn``, ``sbr_cnn_error`` (tables) and ``sbr_cnn_plot`` (figure).
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
                               device=device)
        cnn_frac = sbr_cnn_error_fractions(cnn, thresholds=cfg["sbr_error_thresholds"], experiment=experiment)
    orig = shard_to_ras(np.asarray(arrays["target"], dtype=np.float64)[:, 0])
    asp_parts, dice_parts, sbr_rows = [], [], []
    for series, key in (("prediction", "prediction"), ("input", "input")):
        cand = shard_to_ras(np.asarray(arrays[key], dtype=np.float64)[:, 0])
        a, d, s = s0_agreement(experiment, cand, orig, table, series=series, seg_cfg=seg_cfg, convention=conv,
                               notes=notes)
        if series == "prediction" and not a:
            raise EvaluationError("no predicted test slice could be segmented (see the log)", experiment=experiment,
                                  hint="Check the predictions and evaluate.bg_segmentation")
        asp_parts += a
        dice_parts += d
        sbr_rows += s
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
    summary = s0_published_summary(experiment, asp=asp, dice=dice, cnn_frac=cnn_frac, scale_label=scale_label)
    if "summary" in out:
        write_table(summary, out["summary"], what="S0 summary beside the published values")
    result["summary"] = summary
    write_table(notes_frame(notes), out["not_computed"], what="S0 statistics not computed")
    return result


# ----------------------------------------------------------------------------- entry points
def run(inputs: Mapping, output: Mapping, params: Mapping, wildcards: Mapping) -> None:
    """The evaluation rule's entry point (workflow/scripts/evaluate_study.py): rule inputs, outputs,
    the study's evaluation params and the wildcards, as plain mappings."""

    evaluate_s0(wildcards["experiment"], {"h5": inputs["h5"], "tsv": inputs["tsv"]}, params["spec"], output,
                cfg=params["cfg"], scale_label=params["scale_label"], regressor=inputs["regressor"])

