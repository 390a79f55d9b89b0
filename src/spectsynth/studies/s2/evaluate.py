"""S2's evaluation: per-slice RMSE/SSIM/PSNR of the pix2pix grid (inputs x spaces x losses) and
its baselines, paired t-tests, Table 4 beside the published values, violin plots."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ... import plots as P
from ... import stats as S
from ...errors import EvaluationError, context
from ...evaluate import (
    PAIRED_METRICS,
    apply_pixel_linear_map,
    attempt,
    figure_label,
    fit_pixel_linear_map,
    load_paired,
    notes_frame,
    paired_slice_metrics,
    train_chunks,
    with_columns,
)
from ...io import write_table

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- S2
S2_MODEL = "pix2pix"
S2_BASELINES = {"identity": "baseline: input as SPECT", "linear": "baseline: per-pixel linear map (train)"}
S2_CALIBRATION = "none: prediction and target compared in normalised units (-1, 1)"
S2_PUBLISHED_ROW = "published (S2 Table 4)"


def _s2_comparisons(data: pd.DataFrame) -> list[dict]:
    """Paired comparisons of S2's grid: native vs template, L1 vs L1+SSIM, between inputs.

    Slices are paired by subject and by their rank within the subject (the same slices when
    both runs read the same dataset; the k-th selected slice of each space for native vs
    template, whose grids differ).
    """
    comps = []
    factors = {"space": sorted(data["space"].unique()), "loss": sorted(data["loss"].unique()),
               "input": sorted(data["input"].unique())}
    for factor, values in factors.items():
        others = [f for f in factors if f != factor]
        for a, b in itertools.combinations(values, 2):
            for fixed in itertools.product(*(factors[o] for o in others)):
                cond = dict(zip(others, fixed, strict=True))
                sel = np.logical_and.reduce([data[k] == v for k, v in cond.items()])
                da = data[sel & (data[factor] == a)]
                db = data[sel & (data[factor] == b)]
                if da.empty or db.empty:
                    continue
                merged = da.merge(db, on=["subject", "rank"], suffixes=("_a", "_b"))
                where = ", ".join(f"{k} {v}" for k, v in cond.items())
                for metric in PAIRED_METRICS:
                    comps.append({"family": f"{factor}: {a} vs {b}", "metric": metric,
                                  "label": f"{metric.upper()}: {factor} {a} vs {b} ({where})",
                                  "a": merged[f"{metric}_a"].to_numpy(),
                                  "b": merged[f"{metric}_b"].to_numpy(),
                                  "names": ("a", "b"), "a_name": str(a), "b_name": str(b),
                                  "experiments": f"{merged['experiment_a'].iat[0] if len(merged) else ''} vs "
                                                 f"{merged['experiment_b'].iat[0] if len(merged) else ''}"})
    return comps


def _s2_baseline_comparisons(data: pd.DataFrame) -> list[dict]:
    """Each pix2pix run against the baselines of its input and space, on the same test slices."""
    comps = []
    models = data[data["model"] == S2_MODEL]
    for text in S2_BASELINES.values():
        base = data[data["model"] == text]
        for name, run in models.groupby("experiment", sort=True):
            inp, space = run["input"].iat[0], run["space"].iat[0]
            ref = base[(base["input"] == inp) & (base["space"] == space)]
            merged = run.merge(ref, on=["subject", "slice_index"], suffixes=("_a", "_b"))
            if merged.empty:
                continue
            for metric in PAIRED_METRICS:
                comps.append({"family": f"pix2pix vs {text}", "metric": metric,
                              "label": f"{metric.upper()}: {name} vs {text} (input {inp}, space {space})",
                              "a": merged[f"{metric}_a"].to_numpy(), "b": merged[f"{metric}_b"].to_numpy(),
                              "names": ("a", "b"), "a_name": str(name), "b_name": text,
                              "experiments": f"{name} vs {merged['experiment_b'].iat[0]}"})
    return comps


def _s2_baselines(name: str, spec: Mapping, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                  train: Mapping[str, Mapping[str, str]], fits: dict, *, data_range: float,
                  win_size) -> list[pd.DataFrame]:
    """Metric rows of the two baselines of one run's input and space, on its test slices."""
    dataset = spec["dataset"]
    if dataset not in train:
        raise EvaluationError(f"no training shard of dataset {dataset} was given for the baselines",
                              experiment=name, hint=f"Pass datasets/{dataset}/train.h5 to evaluate_s2")
    channels = list(spec["input_channels"])
    key = (dataset, tuple(channels))
    if key not in fits:
        fits[key] = fit_pixel_linear_map(train_chunks(train[dataset]["h5"], [*channels, *spec["target_channels"]],
                                                      experiment=name), experiment=name)
    inp = np.asarray(arrays["input"], dtype=np.float64)
    if inp.shape[1] != len(channels) or fits[key].shape[1:] != inp.shape[2:]:
        raise EvaluationError(f"inputs of shape {inp.shape[1:]} do not match channels {channels} and the "
                              f"training slices {fits[key].shape[1:]}", experiment=name,
                              hint="Rebuild the dataset and rerun predict_experiment")
    series = {"identity": inp.mean(axis=1), "linear": apply_pixel_linear_map(fits[key], inp)}
    parts = []
    for kind, pred in series.items():
        label = f"baseline_{kind}_{spec['input']}_{spec['space']}"
        part = paired_slice_metrics(label, {"prediction": pred[:, None], "target": arrays["target"]}, table,
                                    data_range=data_range, win_size=win_size)
        part["model"] = S2_BASELINES[kind]
        parts.append(part)
    return parts


def _s2_table4(data: pd.DataFrame, notes: list, *, scale_label: str) -> pd.DataFrame:
    """Table 4 (mean and CV) of the runs and their baselines, with S2's published rows."""
    from ...published import published, published_records

    with context(experiment="S2 grid"):
        t4 = attempt(notes, "S2", "Table 4 (mean and CV)", S.table4, data, metrics=PAIRED_METRICS,
                      rows=("model", "space", "loss"), column="input")
    if t4 is None:
        return pd.DataFrame(columns=["model", "space", "loss", "metric"])
    t4["scale"] = scale_label
    ref = published("S2")
    pub = pd.DataFrame(published_records("S2", "table4"))
    inputs = [c for c in t4.columns if c not in ("model", "space", "loss", "metric", "scale")]
    rows = []
    for (space, loss), _ in t4[t4["model"] == S2_MODEL].groupby(["space", "loss"], sort=False):
        for metric in PAIRED_METRICS:
            sel = pub[(pub["space"] == space) & (pub["loss"] == loss) & (pub["metric"] == metric)]
            cells = {r["input"]: f"{r['mean']:.2f} ({r['cv_percent']:.2f}%)" for _, r in sel.iterrows()}
            if all(i in cells for i in inputs):
                rows.append({"model": S2_PUBLISHED_ROW, "space": space, "loss": loss, "metric": metric,
                             **{i: cells[i] for i in inputs}, "scale": ref["scale"]})
    return pd.concat([t4, pd.DataFrame(rows, columns=t4.columns)], ignore_index=True)


def s2_published_table(data: pd.DataFrame, ttests: pd.DataFrame, *, scale_label: str,
                       alpha: float) -> pd.DataFrame:
    """The runs' Table 4 means next to S2's published ones, and the native-vs-template count."""
    from ...published import published, published_records

    ref = published("S2")
    pub = pd.DataFrame(published_records("S2", "table4"))
    runs = data[data["model"] == S2_MODEL]
    rows = []
    for (space, loss, inp), g in runs.groupby(["space", "loss", "input"], sort=True):
        for metric in PAIRED_METRICS:
            hit = pub[(pub["space"] == space) & (pub["loss"] == loss) & (pub["input"] == inp)
                      & (pub["metric"] == metric)]
            if hit.empty:
                continue
            rows.append({"quantity": f"Table 4 mean {metric.upper()}", "space": space, "loss": loss, "input": inp,
                         "ours": float(g[metric].mean()), "published": float(hit["mean"].iat[0])})
    if len(ttests) and "family" in ttests:
        sp = ttests[ttests["family"] == "space: native vs template"]
        if len(sp):
            # a = native, b = template: native is better with lower RMSE, higher SSIM and PSNR
            better = np.where(sp["metric"] == "rmse", sp["statistic"] < 0, sp["statistic"] > 0)
            wins = int((better & (sp["p"] < alpha)).sum())
            nt = ref["native_vs_template"]
            rows.append({"quantity": f"native better than template (p < {alpha:g}), comparisons", "space": "both",
                         "loss": "all", "input": "all", "ours": float(wins), "published": float(nt["significant"])})
            rows.append({"quantity": "native vs template comparisons made", "space": "both", "loss": "all",
                         "input": "all", "ours": float(len(sp)), "published": float(nt["comparisons"])})
    table = pd.DataFrame(rows, columns=["quantity", "space", "loss", "input", "ours", "published"])
    table["difference"] = table["ours"] - table["published"]
    table["our_scale"] = scale_label
    table["published_scale"] = ref["scale"]
    table["source"] = ref["source"]
    return table


def evaluate_s2(predictions: Mapping[str, Mapping[str, str]], specs: Mapping[str, Mapping],
                out: Mapping[str, str], *, cfg: Mapping, scale_label: str,
                train: Mapping[str, Mapping[str, str]]) -> dict[str, pd.DataFrame]:
    """S2's evaluation of the pix2pix grid (inputs x spaces x losses), with its baselines.

    ``predictions``: experiment -> ``{"h5", "tsv"}``; ``specs``: experiment -> resolved spec
    (with ``input``, ``space``, ``loss``, ``dataset``, ``input_channels``); ``train``: dataset
    -> ``{"h5"}`` of its training shard; ``out``: paths ``slice_metrics``, ``ttests``,
    ``table4``, ``published``, ``violin``, ``not_computed``; ``cfg``: the ``evaluate`` section.

    Beside every run (``model`` pix2pix), two baselines per input and space on the same test
    slices, in the same tables, t-tests and figure: the input itself taken as the SPECT (the
    mean of the channels for MRI+PET; same normalisation as the target) and a per-pixel
    linear map input -> SPECT fitted by least squares on the training shard only
    (:func:`fit_pixel_linear_map`).  Metrics are computed in the normalised units (-1, 1);
    no prediction is rescaled (column ``calibration``).
    """
    dr = float(cfg["data_range"])
    win = cfg["ssim_win_size"]
    notes: list[dict] = []
    parts, fits, done = [], {}, set()
    for name in sorted(predictions):
        spec = specs[name]
        arrays, table = load_paired(name, predictions[name])
        part = paired_slice_metrics(name, arrays, table, data_range=dr, win_size=win)
        part["model"] = S2_MODEL
        part["input"], part["space"], part["loss"] = spec["input"], spec["space"], spec["loss"]
        parts.append(part)
        if (spec["input"], spec["space"]) not in done:
            done.add((spec["input"], spec["space"]))
            for base in _s2_baselines(name, spec, arrays, table, train, fits, data_range=dr, win_size=win):
                base["input"], base["space"], base["loss"] = spec["input"], spec["space"], "none"
                parts.append(base)
    if not parts:
        raise EvaluationError("no S2 predictions were given", hint="Enable an S2 experiment")
    data = pd.concat(parts, ignore_index=True)
    data["calibration"] = S2_CALIBRATION
    cols = ["experiment", "model", "input", "space", "loss", "subject", "slice_index", "rank", "pred_row",
            *PAIRED_METRICS, "data_range", "calibration"]
    data = data[cols]
    write_table(data, out["slice_metrics"], what="S2 per-slice metrics")

    families: dict[tuple[str, str], list[dict]] = {}
    for c in _s2_comparisons(data[data["model"] == S2_MODEL]) + _s2_baseline_comparisons(data):
        families.setdefault((c["family"], c["metric"]), []).append(c)
    tables = []
    for (family, metric), comps in families.items():
        with context(experiment=f"S2 {family}"):
            res = attempt(notes, "S2", f"paired t-tests {family}, {metric}", S.paired_t_tests, comps,
                           alpha=float(cfg["alpha"]), corrections=tuple(cfg["corrections"]))
        if res is not None:
            res = with_columns(res, experiment=f"S2 {family}")
            res.insert(0, "family", family)
            res.insert(1, "metric", metric)
            res.insert(2, "compared", [c["experiments"] for c in comps])
            res.insert(3, "a", [c["a_name"] for c in comps])
            res.insert(4, "b", [c["b_name"] for c in comps])
            res["family_size"] = len(comps)
            tables.append(res)
    ttests = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["family", "metric", "label", "n", "statistic", "p", "significant"])
    write_table(ttests, out["ttests"], what="S2 paired t-tests")

    t4 = _s2_table4(data, notes, scale_label=scale_label)
    if len(t4):
        t4["data_range"] = dr
    write_table(t4, out["table4"], what="S2 Table 4")
    pub = s2_published_table(data, ttests, scale_label=scale_label, alpha=float(cfg["alpha"]))
    write_table(pub, out["published"], what="S2 results next to the published values")

    runs = data[data["model"] == S2_MODEL]
    label = figure_label(scale_label, int(runs["subject"].nunique()), [specs[n] for n in predictions])
    fig_data = data.copy()
    short = {S2_MODEL: None, S2_BASELINES["identity"]: "input as SPECT",
             S2_BASELINES["linear"]: "linear map"}
    fig_data["series"] = [f"{s} · {lo}" if short[m] is None else f"{s} · {short[m]}"
                          for s, lo, m in zip(fig_data["space"], fig_data["loss"], fig_data["model"], strict=True)]
    fig = P.violin_metrics(fig_data, metrics=PAIRED_METRICS, x="input", hue="series", subtitle=label,
                           title="S2: pix2pix SPECT prediction and baselines, per-slice metrics", data_range=dr)
    P.save_figure(fig, out["violin"], dpi=int(cfg["figure_dpi"]))
    write_table(notes_frame(notes), out["not_computed"], what="S2 statistics not computed")
    return {"slice_metrics": data, "ttests": ttests, "table4": t4, "published": pub}


# ----------------------------------------------------------------------------- entry points
def run(inputs: Mapping, output: Mapping, params: Mapping, wildcards: Mapping) -> None:
    """The evaluation rule's entry point (workflow/scripts/evaluate_study.py): rule inputs, outputs,
    the study's evaluation params and the wildcards, as plain mappings."""

    files = {e: {"h5": inputs[f"{e}_h5"], "tsv": inputs[f"{e}_tsv"]} for e in params["experiments"]}
    train = {d: {"h5": inputs[f"{d}_train"], "index": inputs[f"{d}_index"]} for d in params["datasets"]}
    evaluate_s2(files, params["specs"], output, cfg=params["cfg"], scale_label=params["scale_label"],
                train=train)


