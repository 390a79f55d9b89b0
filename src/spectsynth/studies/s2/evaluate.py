"""S2's evaluation: per-slice RMSE/SSIM/PSNR of the pix2pix grid (inputs x spaces x losses), its
baselines and floors, whole slice and inside the brain; paired t-tests on subject means, Table 4
beside the published values, verdicts on the published findings, violin plots."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ... import plots as P
from ... import stats as S
from ... import verdicts as V
from ...errors import EvaluationError, context
from ...evaluate import (
    BRAIN_METRICS,
    FLOOR_BACKGROUND,
    FLOOR_OUTLINE,
    PAIRED_METRICS,
    apply_pixel_linear_map,
    attempt,
    describe_outline,
    figure_label,
    fit_outline_floor,
    fit_pixel_linear_map,
    floor_metrics,
    load_paired,
    notes_frame,
    paired_slice_metrics,
    train_chunks,
    with_columns,
)
from ...io import write_table
from ...verdicts import comparison_verdict, level_verdict

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- S2
S2_MODEL = "pix2pix"
S2_BASELINES = {"identity": "baseline: input as SPECT", "linear": "baseline: per-pixel linear map (train)"}
S2_FLOORS = (FLOOR_BACKGROUND, FLOOR_OUTLINE)
S2_CALIBRATION = "none: prediction and target compared in normalised units (-1, 1)"
S2_PUBLISHED_ROW = "published (S2 Table 4)"
ALL_METRICS = (*PAIRED_METRICS, *BRAIN_METRICS)
VERSIONS = {"whole slice (as S2)": PAIRED_METRICS, "inside the brain": BRAIN_METRICS}
UNIT = S.SUBJECT_UNIT


def _version(metric: str) -> str:
    return next(v for v, ms in VERSIONS.items() if metric in ms)


def _comparison(family: str, metric: str, label: str, a: pd.DataFrame, b: pd.DataFrame, a_name: str,
                b_name: str, compared: str) -> dict | None:
    """One paired comparison on subject means (the patient is the unit)."""
    ma, mb, subjects = S.subject_pairs(a, b, metric)
    if not subjects:
        return None
    return {"family": family, "metric": metric, "version": _version(metric), "label": label,
            "a": ma, "b": mb, "names": ("a", "b"), "a_name": a_name, "b_name": b_name, "experiments": compared,
            "subjects": subjects}


def _s2_comparisons(data: pd.DataFrame) -> list[dict]:
    """Paired comparisons of S2's grid: native vs template, L1 vs L1+SSIM, between inputs.

    Every comparison pairs the per-subject means of the two runs (:func:`spectsynth.stats.subject_pairs`):
    n counts test subjects, and native and template slices (different grids, different
    anatomy at the same rank) are never paired slice by slice.
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
                where = ", ".join(f"{k} {v}" for k, v in cond.items())
                compared = f"{da['experiment'].iat[0]} vs {db['experiment'].iat[0]}"
                for metric in ALL_METRICS:
                    c = _comparison(f"{factor}: {a} vs {b}", metric,
                                    f"{metric.upper()}: {factor} {a} vs {b} ({where})", da, db, str(a), str(b),
                                    compared)
                    if c is not None:
                        comps.append(c)
    return comps


def _s2_baseline_comparisons(data: pd.DataFrame) -> list[dict]:
    """Each pix2pix run against the baselines and floors of its input and space (same test slices,
    subject means)."""
    comps = []
    models = data[data["model"] == S2_MODEL]
    for text in (*S2_BASELINES.values(), *S2_FLOORS):
        base = data[data["model"] == text]
        for name, run in models.groupby("experiment", sort=True):
            inp, space = run["input"].iat[0], run["space"].iat[0]
            ref = base[(base["input"] == inp) & (base["space"] == space)]
            if ref.empty:
                continue
            for metric in ALL_METRICS:
                c = _comparison(f"pix2pix vs {text}", metric,
                                f"{metric.upper()}: {name} vs {text} (input {inp}, space {space})", run, ref,
                                str(name), text, f"{name} vs {ref['experiment'].iat[0]}")
                if c is not None:
                    comps.append(c)
    return comps


def _s2_baselines(name: str, spec: Mapping, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                  train: Mapping[str, Mapping[str, str]], fits: dict, *, data_range: float,
                  win_size) -> list[pd.DataFrame]:
    """Metric rows of the two baselines and the two floors of one run's input and space, on its
    test slices (the linear map and the outline floor fitted on the training shard only)."""
    dataset = spec["dataset"]
    if dataset not in train:
        raise EvaluationError(f"no training shard of dataset {dataset} was given for the baselines",
                              experiment=name, hint=f"Pass datasets/{dataset}/train.h5 to evaluate_s2")
    channels = list(spec["input_channels"])
    key = (dataset, tuple(channels))
    if key not in fits:
        fits[key] = fit_pixel_linear_map(train_chunks(train[dataset]["h5"], [*channels, *spec["target_channels"]],
                                                      experiment=name), experiment=name)
    if dataset not in fits:
        size = int(np.asarray(arrays["target"]).shape[-1])
        fits[dataset] = fit_outline_floor(train_chunks(train[dataset]["h5"], ["brain", *spec["target_channels"]],
                                                       experiment=name), size=size, experiment=name)
    inp = np.asarray(arrays["input"], dtype=np.float64)
    if inp.shape[1] != len(channels) or fits[key].shape[1:] != inp.shape[2:]:
        raise EvaluationError(f"inputs of shape {inp.shape[1:]} do not match channels {channels} and the "
                              f"training slices {fits[key].shape[1:]}", experiment=name,
                              hint="Rebuild the dataset and rerun predict_experiment")
    series = {"identity": inp.mean(axis=1), "linear": apply_pixel_linear_map(fits[key], inp)}
    tag = f"{spec['input']}_{spec['space']}"
    parts = []
    for kind, pred in series.items():
        part = paired_slice_metrics(f"baseline_{kind}_{tag}", {**arrays, "prediction": pred[:, None]}, table,
                                    data_range=data_range, win_size=win_size)
        part["model"] = S2_BASELINES[kind]
        parts.append(part)
    floors = floor_metrics(name, arrays, table, fits[dataset], data_range=data_range, win_size=win_size)
    for text, part in floors.items():
        part["experiment"] = f"{text.split(': ')[1].replace(' ', '_')}_{tag}"
        part["model"] = text
        if text == FLOOR_OUTLINE:
            part["calibration"] = f"{S2_CALIBRATION}; floor {describe_outline(fits[dataset])}"
        parts.append(part)
    return parts


def _s2_table4(data: pd.DataFrame, notes: list, *, scale_label: str) -> pd.DataFrame:
    """Table 4 (mean and CV over test slices, as S2) of the runs, baselines and floors, whole slice
    and inside the brain, with S2's published rows (whole slice)."""
    from ..published import published, published_records

    with context(experiment="S2 grid"):
        t4 = attempt(notes, "S2", "Table 4 (mean and CV)", S.table4, data, metrics=ALL_METRICS,
                      rows=("model", "space", "loss"), column="input")
    if t4 is None:
        return pd.DataFrame(columns=["model", "space", "loss", "metric"])
    t4.insert(4, "version", [_version(m) for m in t4["metric"]])
    t4["n_counts"] = "test slices (mean and CV over slices, as S2's Table 4)"
    t4["scale"] = scale_label
    ref = published("S2")
    pub = pd.DataFrame(published_records("S2", "table4"))
    inputs = [c for c in t4.columns if c not in ("model", "space", "loss", "metric", "version", "n_counts", "scale")]
    rows = []
    for (space, loss), _ in t4[t4["model"] == S2_MODEL].groupby(["space", "loss"], sort=False):
        for metric in PAIRED_METRICS:
            sel = pub[(pub["space"] == space) & (pub["loss"] == loss) & (pub["metric"] == metric)]
            cells = {r["input"]: f"{r['mean']:.2f} ({r['cv_percent']:.2f}%)" for _, r in sel.iterrows()}
            if all(i in cells for i in inputs):
                rows.append({"model": S2_PUBLISHED_ROW, "space": space, "loss": loss, "metric": metric,
                             "version": _version(metric), **{i: cells[i] for i in inputs},
                             "n_counts": "S2's test slices", "scale": ref["scale"]})
    return pd.concat([t4, pd.DataFrame(rows, columns=t4.columns)], ignore_index=True)


def _better(metric: str, statistic) -> np.ndarray:
    """Whether a (t) statistic of a - b says a is better: lower RMSE, higher SSIM and PSNR."""
    stat = np.asarray(statistic, dtype=float)
    return stat < 0 if metric.startswith("rmse") else stat > 0


def s2_published_table(data: pd.DataFrame, ttests: pd.DataFrame, *, scale_label: str,
                       alpha: float) -> pd.DataFrame:
    """The runs' Table 4 means next to S2's published ones (``ours`` whole slice as S2, ``ours_brain``
    inside the brain) and the native-vs-template count (subject-level tests, Holm-corrected)."""
    from ..published import published, published_records

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
                         "ours": float(g[metric].mean()), "ours_brain": float(g[f"{metric}_brain"].mean()),
                         "published": float(hit["mean"].iat[0]), "n": int(len(g)), "n_counts": "test slices"})
    if len(ttests) and "family" in ttests:
        sp = ttests[ttests["family"] == "space: native vs template"]
        if len(sp):
            # a = native, b = template
            col = "significant_holm" if "significant_holm" in sp else "significant"
            wins = {}
            for version in VERSIONS:
                g = sp[sp["version"] == version]
                better = np.array([_better(m, st) for m, st in zip(g["metric"], g["statistic"], strict=True)],
                                  dtype=bool)
                wins[version] = (int((better & g[col].to_numpy(bool)).sum()), len(g))
            nt = ref["native_vs_template"]
            n_subj = int(sp["n"].max())
            rows.append({"quantity": f"native better than template (p < {alpha:g}, {col.split('_')[-1]}), comparisons",
                         "space": "both", "loss": "all", "input": "all",
                         "ours": float(wins["whole slice (as S2)"][0]), "ours_brain": float(wins["inside the brain"][0]),
                         "published": float(nt["significant"]), "n": n_subj, "n_counts": UNIT})
            rows.append({"quantity": "native vs template comparisons made", "space": "both", "loss": "all",
                         "input": "all", "ours": float(wins["whole slice (as S2)"][1]),
                         "ours_brain": float(wins["inside the brain"][1]), "published": float(nt["comparisons"]),
                         "n": n_subj, "n_counts": UNIT})
    table = pd.DataFrame(rows, columns=["quantity", "space", "loss", "input", "ours", "ours_brain", "published",
                                        "n", "n_counts"])
    table["difference"] = table["ours"] - table["published"]
    table["difference_brain"] = table["ours_brain"] - table["published"]
    table["our_scale"] = scale_label
    table["published_scale"] = ref["scale"]
    table["source"] = ref["source"]
    return table


def _published_mean(space: str | None, loss: str | None, inp: str | None, metric: str) -> float | None:
    from ..published import published_records

    vals = [r["mean"] for r in published_records("S2", "table4")
            if (space is None or r["space"] == space) and (loss is None or r["loss"] == loss)
            and (inp is None or r["input"] == inp) and r["metric"] == metric]
    return float(np.mean(vals)) if vals else None


def _pooled_test(notes: list, label: str, a: pd.DataFrame, b: pd.DataFrame, metrics: tuple[str, ...],
                 claims: Mapping[str, str], effects: Mapping[str, float | None], *, alpha: float) -> list[dict]:
    """Subject-level paired tests of ``a`` vs ``b`` for each metric (one family, Holm), with the
    power for the published effect: the inputs of the verdict rows."""
    comps, power = [], {}
    for m in metrics:
        ma, mb, subjects = S.subject_pairs(a, b, m)
        comps.append({"label": f"{label}, {m}", "a": ma, "b": mb, "names": ("a", "b")})
        eff = effects.get(m)
        power[m] = None if eff is None else S.paired_power(ma, mb, eff, alpha=alpha)
    with context(experiment="S2 verdicts"):
        res = attempt(notes, "S2", f"verdict test {label}", S.paired_t_tests, comps, alpha=alpha,
                       corrections=("holm",))
    out = []
    for i, m in enumerate(metrics):
        ma, mb = comps[i]["a"], comps[i]["b"]
        rec = {"metric": m, "ours": float(np.mean(ma - mb)) if len(ma) else None, "n": int(len(ma)),
               "power": power[m], "claim": claims[m]}
        if res is None:
            rec.update(p=None, statistic="", not_computed="see not_computed.tsv")
        else:
            r = res.iloc[i]
            rec.update(p=float(r["p_holm"]), statistic=f"paired t = {float(r['statistic']):.3g} (df {int(r['n']) - 1}), "
                                                        "p Holm-corrected over the finding's measures",
                       not_computed=None)
        out.append(rec)
    return out


def s2_verdicts(data: pd.DataFrame, notes: list, *, alpha: float) -> pd.DataFrame:
    """One verdict row per published finding of S2, inside the brain, on subject means
    (:mod:`spectsynth.verdicts`).

    * native better than template (Figure 5, 14 of 18 comparisons): every subject's mean over the
      runs of each space, the three in-brain measures (Holm);
    * adding the SSIM loss does not help (Figures 6-7, "does not improve image estimation"): every
      subject's mean over the L1+SSIM runs against the L1 runs (a published null; the power is for
      Table 4's mean L1+SSIM minus L1 difference);
    * native L1: MRI input better than PET input in RMSE and PSNR (Figure 7A; Table 4 SSIM 0.87 vs 0.88);
    * Table 4's level, native L1 SSIM per input: our in-brain SSIM against the published value,
      with the stronger of the outline floor and the input baseline as the baseline.
    """
    runs = data[data["model"] == S2_MODEL]
    rows = []

    def add(finding, found, unit, published, baseline_name=""):
        for rec in found:
            m = rec["metric"]
            verdict = comparison_verdict(claim=rec["claim"], estimate=rec["ours"], p=rec["p"], alpha=alpha,
                                         power=rec["power"], not_computed=rec["not_computed"])
            rows.append(V.row(study="S2", finding=finding, measure=f"{m} (A - B, subject means)", unit=unit,
                              ours=rec["ours"] if rec["ours"] is not None else "", published=published(m),
                              n=rec["n"], n_counts=UNIT, verdict=verdict, baseline=0.0,
                              baseline_name=baseline_name or "no difference", statistic=rec["statistic"], p=rec["p"],
                              power=rec["power"]))

    claims = {"rmse_brain": "less", "ssim_brain": "greater", "psnr_brain": "greater"}
    spaces = set(runs["space"])
    if {"native", "template"} <= spaces:
        eff = {m: (_published_mean("native", None, None, m[:-6]) or 0) - (_published_mean("template", None, None, m[:-6]) or 0)
               for m in BRAIN_METRICS}
        found = _pooled_test(notes, "native vs template", runs[runs["space"] == "native"],
                             runs[runs["space"] == "template"], BRAIN_METRICS, claims, eff, alpha=alpha)
        add("native space better than template space (A native, B template)", found, "normalised units / dB",
            lambda m: "native better in 14 of 18 comparisons (p < 0.01)")
    losses = set(runs["loss"])
    if {"l1", "l1+ssim"} <= losses:
        eff = {m: (_published_mean(None, "l1+ssim", None, m[:-6]) or 0) - (_published_mean(None, "l1", None, m[:-6]) or 0)
               for m in BRAIN_METRICS}
        found = _pooled_test(notes, "L1+SSIM vs L1", runs[runs["loss"] == "l1+ssim"], runs[runs["loss"] == "l1"],
                             BRAIN_METRICS, {m: "equal" for m in BRAIN_METRICS}, eff, alpha=alpha)
        add("adding the SSIM loss does not improve the synthesis (A L1+SSIM, B L1)", found, "normalised units / dB",
            lambda m: f"no benefit (Table 4 mean difference {eff[m]:+.3f})")
    nat = runs[(runs["space"] == "native") & (runs["loss"] == "l1")]
    if {"mri", "pet"} <= set(nat["input"]):
        ms = ("rmse_brain", "psnr_brain")
        eff = {m: (_published_mean("native", "l1", "mri", m[:-6]) or 0) - (_published_mean("native", "l1", "pet", m[:-6]) or 0)
               for m in ms}
        found = _pooled_test(notes, "native L1: MRI vs PET input", nat[nat["input"] == "mri"],
                             nat[nat["input"] == "pet"], ms, claims, eff, alpha=alpha)
        add("native L1: MRI input better than PET input in RMSE and PSNR (A MRI, B PET)", found,
            "normalised units / dB",
            lambda m: f"MRI significantly better (Figure 7A); Table 4 MRI {_published_mean('native', 'l1', 'mri', m[:-6]):.2f}"
                      f" vs PET {_published_mean('native', 'l1', 'pet', m[:-6]):.2f}")
    for inp in sorted(set(nat["input"])):
        pub = _published_mean("native", "l1", inp, "ssim")
        if pub is None:
            continue
        run = nat[nat["input"] == inp]
        ours = float(S.subject_means(run, ["ssim_brain"])["ssim_brain"].mean())
        cands = {}
        for text in (FLOOR_OUTLINE, S2_BASELINES["identity"]):
            ref = data[(data["model"] == text) & (data["input"] == inp) & (data["space"] == "native")]
            if len(ref):
                cands[text] = float(S.subject_means(ref, ["ssim_brain"])["ssim_brain"].mean())
        base_name = max(cands, key=cands.get) if cands else ""
        base = cands.get(base_name)
        verdict = level_verdict(ours=ours, published=pub, baseline=base, baseline_name=base_name or "baseline")
        rows.append(V.row(study="S2", finding=f"Table 4 level: native L1 {inp} -> SPECT SSIM", measure="ssim_brain "
                          "(mean of subject means)", unit="SSIM (no unit)", ours=ours, published=pub,
                          n=int(run["subject"].nunique()), n_counts=UNIT, verdict=verdict,
                          baseline=base, baseline_name=f"the stronger of {FLOOR_OUTLINE!r} and the input baseline: "
                                                       f"{base_name}" if base_name else ""))
    return V.frame(rows)


def evaluate_s2(predictions: Mapping[str, Mapping[str, str]], specs: Mapping[str, Mapping],
                out: Mapping[str, str], *, cfg: Mapping, scale_label: str,
                train: Mapping[str, Mapping[str, str]]) -> dict[str, pd.DataFrame]:
    """S2's evaluation of the pix2pix grid (inputs x spaces x losses), with its baselines and floors.

    ``predictions``: experiment -> ``{"h5", "tsv"}``; ``specs``: experiment -> resolved spec
    (with ``input``, ``space``, ``loss``, ``dataset``, ``input_channels``); ``train``: dataset
    -> ``{"h5"}`` of its training shard; ``out``: paths ``slice_metrics``, ``ttests``,
    ``table4``, ``published``, ``verdicts``, ``violin``, ``not_computed``; ``cfg``: the
    ``evaluate`` section.

    Beside every run (``model`` pix2pix), per input and space on the same test slices, in the
    same tables, t-tests and figure: two baselines, the input itself taken as the SPECT (the
    mean of the channels for MRI+PET; same normalisation as the target) and a per-pixel linear
    map input -> SPECT fitted by least squares on the training shard only
    (:func:`fit_pixel_linear_map`); and two floors, every pixel at the background value
    (``floor: all background``) and the input's brain mask blurred and scaled to the SPECT by
    a rule fitted on the training shard (``floor: outline only``, :func:`fit_outline_floor`).
    Every metric twice: whole slice as S2 computed it (``rmse, ssim, psnr``) and inside the
    T1w brain mask with the padding cropped (``rmse_brain, ssim_brain, psnr_brain``), the
    version the verdicts use.  Metrics are computed in the normalised units (-1, 1); no
    prediction is rescaled (column ``calibration``).  Tests pair subject means (n = test
    subjects), Holm-corrected within each family and version.
    """
    dr = float(cfg["data_range"])
    win = cfg["ssim_win_size"]
    alpha = float(cfg["alpha"])
    notes: list[dict] = []
    parts, fits, done = [], {}, set()
    for name in sorted(predictions):
        spec = specs[name]
        arrays, table = load_paired(name, predictions[name])
        if "brain" not in arrays:
            raise EvaluationError("the prediction file holds no brain mask", experiment=name,
                                  hint="Rebuild the dataset (channel brain) and rerun predict_experiment")
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
    data["calibration"] = data["calibration"].fillna(S2_CALIBRATION) if "calibration" in data else S2_CALIBRATION
    cols = ["experiment", "model", "input", "space", "loss", "subject", "slice_index", "rank", "pred_row",
            *PAIRED_METRICS, *BRAIN_METRICS, "brain_fraction", "data_range", "calibration"]
    data = data[cols]
    write_table(data, out["slice_metrics"], what="S2 per-slice metrics")

    families: dict[tuple[str, str], list[dict]] = {}
    for c in _s2_comparisons(data[data["model"] == S2_MODEL]) + _s2_baseline_comparisons(data):
        families.setdefault((c["family"], c["version"]), []).append(c)
    tables = []
    for (family, version), comps in families.items():
        with context(experiment=f"S2 {family}"):
            res = attempt(notes, "S2", f"paired t-tests {family}, {version}", S.paired_t_tests, comps,
                           alpha=alpha, corrections=tuple(cfg["corrections"]))
        if res is not None:
            res = with_columns(res, experiment=f"S2 {family}")
            res.insert(0, "family", family)
            res.insert(1, "version", version)
            res.insert(2, "metric", [c["metric"] for c in comps])
            res.insert(3, "compared", [c["experiments"] for c in comps])
            res.insert(4, "a", [c["a_name"] for c in comps])
            res.insert(5, "b", [c["b_name"] for c in comps])
            res["n_counts"] = UNIT
            res["subjects"] = [" ".join(c["subjects"]) for c in comps]
            res["family_size"] = len(comps)
            tables.append(res)
    ttests = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["family", "version", "metric", "label", "n", "statistic", "p", "significant", "n_counts"])
    write_table(ttests, out["ttests"], what="S2 paired t-tests")

    t4 = _s2_table4(data, notes, scale_label=scale_label)
    if len(t4):
        t4["data_range"] = dr
    write_table(t4, out["table4"], what="S2 Table 4")
    pub = s2_published_table(data, ttests, scale_label=scale_label, alpha=alpha)
    write_table(pub, out["published"], what="S2 results next to the published values")
    verdicts = s2_verdicts(data, notes, alpha=alpha)
    if "verdicts" in out:
        write_table(verdicts, out["verdicts"], what="S2 verdicts")

    runs = data[data["model"] == S2_MODEL]
    label = figure_label(scale_label, int(runs["subject"].nunique()), [specs[n] for n in predictions])
    fig_data = data.copy()
    short = {S2_MODEL: None, S2_BASELINES["identity"]: "input as SPECT",
             S2_BASELINES["linear"]: "linear map", FLOOR_BACKGROUND: "background floor",
             FLOOR_OUTLINE: "outline floor"}
    fig_data["series"] = [f"{s} · {lo}" if short[m] is None else f"{s} · {short[m]}"
                          for s, lo, m in zip(fig_data["space"], fig_data["loss"], fig_data["model"], strict=True)]
    fig = P.violin_metrics(fig_data, metrics=ALL_METRICS, x="input", hue="series", subtitle=label,
                           title="S2: pix2pix SPECT prediction, baselines and floors, per-slice metrics "
                                 "(whole slice as S2; _brain: inside the T1w brain mask)", data_range=dr)
    P.save_figure(fig, out["violin"], dpi=int(cfg["figure_dpi"]))
    write_table(notes_frame(notes), out["not_computed"], what="S2 statistics not computed")
    return {"slice_metrics": data, "ttests": ttests, "table4": t4, "published": pub, "verdicts": verdicts}


# ----------------------------------------------------------------------------- entry points
def run(inputs: Mapping, output: Mapping, params: Mapping, wildcards: Mapping) -> None:
    """The evaluation rule's entry point (workflow/scripts/evaluate_study.py): rule inputs, outputs,
    the study's evaluation params and the wildcards, as plain mappings."""

    files = {e: {"h5": inputs[f"{e}_h5"], "tsv": inputs[f"{e}_tsv"]} for e in params["experiments"]}
    train = {d: {"h5": inputs[f"{d}_train"], "index": inputs[f"{d}_index"]} for d in params["datasets"]}
    evaluate_s2(files, params["specs"], output, cfg=params["cfg"], scale_label=params["scale_label"],
                train=train)


