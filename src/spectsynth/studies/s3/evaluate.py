"""S3's evaluation: SSIM of the prediction and its baselines against the PET, atlas ROI means,
regressions beside the published values, scatter plots."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ... import metrics as M
from ... import plots as P
from ... import stats as S
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
S3_SERIES = ("input", "prediction", "null", "target")
S3_SERIES_TEXT = {"input": "input SPECT (baseline: SPECT as PET)", "prediction": "pix2pix prediction",
                  "null": "null model (training-split mean PET slice)", "target": "target PET"}


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
        for i, row in sub.iterrows():
            ls = slice_labels(lab, int(row["slice_index"]), size)
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
                   "n_pixels": int(sum(a.size for a in pools[name][series[0]]))}
            rec.update({k: float(np.concatenate(pools[name][k]).mean()) for k in series})
            rows.append(rec)
    return pd.DataFrame(rows, columns=["experiment", "subject", "region", "n_pixels", *series])


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
    """Training-split calibration and null image of an S3 experiment (nothing from the test targets)."""
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
    null = np.asarray(shard.all_images()[:, ch], dtype=np.float64).mean(0)
    return cal, null


def _published_regression(label: str) -> str:
    from ...published import published_records

    for r in published_records("S3", "regressions"):
        if r["label"] == label:
            return f"y = {r['intercept']:.2f} + {r['slope']:.2f}x, r = {r['r']:.2f}"
    return "not reported"


def s3_published_table(summary: pd.DataFrame, regression: pd.DataFrame, *, experiment: str,
                       scale_label: str) -> pd.DataFrame:
    """The run's SSIMs and ROI regressions next to S3's published values (one row per quantity)."""
    from ...published import published, published_records

    ref = published("S3")
    rows = []
    ssim = {r["name"]: r["value"] for r in published_records("S3", "ssim")}
    for name, value in ssim.items():
        hit = summary[summary["value"] == f"ssim_{name}"] if "value" in summary else summary.iloc[:0]
        if len(hit):
            rows.append({"quantity": f"SSIM {name.replace('_', ' ')} (mean)", "ours": float(hit["mean"].iat[0]),
                         "published": float(value), "units": "SSIM (no unit)"})
    for r in published_records("S3", "regressions"):
        basis = "roi" if "basis" in regression and (regression["basis"] == "roi").any() else "slice"
        hit = regression[(regression["label"] == r["label"]) & (regression["basis"] == basis)] \
            if "basis" in regression else regression.iloc[:0]
        if not len(hit):
            continue
        for key, col in (("intercept", "intercept"), ("slope", "slope"), ("r", "statistic")):
            rows.append({"quantity": f"{r['label']}: {key} ({basis} means)", "ours": float(hit[col].iat[0]),
                         "published": float(r[key]),
                         "units": {"r": "r (no unit)", "slope": "slope (CBF per CBF, no unit)"}.get(
                             key, "ours in the simulated images' CBF units, S3's in its own ROI units: the "
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
    test slice.

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
    * summary of the metrics and paired t-tests of the prediction against the input baseline,
      the null model and the outline floor, whole slice and in the brain (one family, corrected);
    * atlas-region means (``labels``: subject -> label volume, ``label_names``: value ->
      region; default the vascular territories) of every series (:func:`s3_roi_means`);
    * linear regression + Pearson r (input vs target, prediction vs target, prediction vs
      input, null vs target) on the ROI means (``basis = roi``) and on the slice means
      (``basis = slice``), with a scatter figure of the ROI means (slice means without labels);
    * the run's numbers next to S3's published ones (:mod:`spectsynth.published`).

    ``out``: ``slice_metrics``, ``roi_means``, ``summary``, ``ttest``, ``regression``,
    ``published``, ``scatter``, ``not_computed``.
    """
    from ...published import published_records

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
    cal, null_img = _s3_train(train, cin, cout, experiment=experiment)
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
           "null": cal.apply(norm["null"], g_in, b_in, experiment=experiment),
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
    names = {"floor_outline": "outline floor"}
    comps = [{"label": f"{m.upper()} prediction vs target against {names.get(base, base)} vs target",
              "a": data[f"{m}_prediction_vs_target"],
              "b": data[f"{m}_{base}_vs_target"], "names": ("prediction", "baseline"), "base": base}
             for base in ("input", "null", "floor_outline") for m in ("ssim", "rmse", "psnr", *BRAIN_METRICS)]
    with context(experiment=experiment):
        ttest = attempt(notes, "S3", "paired t-tests against the baselines", S.paired_t_tests, comps,
                         alpha=float(cfg["alpha"]), corrections=tuple(cfg["corrections"]))
    if ttest is not None:
        ttest = with_columns(ttest, experiment=experiment)
        ttest.insert(0, "baseline", [S3_SIMILARITY[c["base"]] for c in comps])
        ttest.insert(1, "version", ["inside the brain" if c["label"].split(" ")[0].lower() in BRAIN_METRICS
                                    else "whole slice (as S3)" for c in comps])
        ttest["n_counts"] = "test slices"
    summary = summ if summ is not None else pd.DataFrame(columns=["experiment", "value"])
    write_table(summary, out["summary"], what="S3 summary")
    ttest = ttest if ttest is not None else pd.DataFrame(columns=["experiment", "label"])
    write_table(ttest, out["ttest"], what="S3 paired t-tests")

    rois = pd.DataFrame(columns=["experiment", "subject", "region", "n_pixels", *S3_SERIES])
    if labels:
        from ...labels import TERRITORIES

        rois = s3_roi_means(experiment, raw, table, labels, label_names or TERRITORIES, notes=notes)
    rois["calibration"] = cal.describe()
    write_table(rois, out["roi_means"], what="S3 ROI means")

    def pairs_of(frame: pd.DataFrame, col: Callable[[str], str], what: str) -> list[dict]:
        return [
            {"x": frame[col("target")], "y": frame[col("input")], "label": "input vs target",
             "xlabel": f"target PET CBF ({what})", "ylabel": "input SPECT CBF"},
            {"x": frame[col("target")], "y": frame[col("prediction")], "label": "prediction vs target",
             "xlabel": f"target PET CBF ({what})", "ylabel": "predicted PET CBF (calibrated)"},
            {"x": frame[col("input")], "y": frame[col("prediction")], "label": "prediction vs input",
             "xlabel": f"input SPECT CBF ({what})", "ylabel": "predicted PET CBF (calibrated)"},
            {"x": frame[col("target")], "y": frame[col("null")], "label": "null vs target",
             "xlabel": f"target PET CBF ({what})", "ylabel": "null model CBF (calibrated)"},
        ]

    bases = [("slice", pairs_of(data, lambda k: f"mean_{k}", "slice brain mean"))]
    if len(rois):
        bases.insert(0, ("roi", pairs_of(rois, lambda k: k, "atlas ROI mean")))
    recs, ok, basis_col = [], {}, []
    for basis, pairs in bases:
        for pair in pairs:
            with context(experiment=experiment):
                rec = attempt(notes, "S3", f"regression {pair['label']} ({basis} means)", S.linear_regression,
                               pair["x"], pair["y"], label=pair["label"],
                               confidence=float(cfg["regression_confidence"]))
            if rec is not None:
                recs.append(rec)
                basis_col.append(basis)
                ok.setdefault(basis, []).append(pair)
    reg = with_columns(S.records_frame(recs), experiment=experiment) if recs else pd.DataFrame(
        columns=["experiment", "label"])
    if recs:
        reg.insert(0, "basis", basis_col)
        reg.insert(1, "series", ["baseline" if r.label in ("input vs target", "null vs target") else "model"
                                 for r in recs])
        reg["published"] = [_published_regression(r.label) for r in recs]
        reg["calibration"] = cal.describe()
    label = figure_label(scale_label, int(data["subject"].nunique()), [spec])
    shown = next((b for b, _ in bases if b in ok), None)
    title = (f"S3 {experiment}: {'atlas ROI' if shown == 'roi' else 'slice'}-mean CBF, "
             "least-squares fits (prediction and null model calibrated on the training split)")
    if shown is not None:
        fig = P.scatter_fits(ok[shown], subtitle=label, title=title, experiment=experiment)
    else:
        fig = message_figure("No regression could be computed (see not_computed.tsv).", label, title)
    P.save_figure(fig, out["scatter"], dpi=int(cfg["figure_dpi"]))
    write_table(reg, out["regression"], what="S3 regressions")
    pub = s3_published_table(summary, reg, experiment=experiment, scale_label=scale_label)
    write_table(pub, out["published"], what="S3 results next to the published values")
    write_table(notes_frame(notes), out["not_computed"], what="S3 statistics not computed")
    return {"slice_metrics": data, "roi_means": rois, "summary": summary, "ttest": ttest,
            "regression": reg, "published": pub, "calibration": cal}


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


