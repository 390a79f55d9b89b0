"""Study-level evaluation: prediction files + dataset index -> metric tables, tests, figures.

Each ``evaluate_s*`` function reads the prediction files written by
:func:`spectsynth.infer.predict_experiment` (and, for S1, the real test slices), computes the
study's metrics with :mod:`spectsynth.metrics`, its statistics with :mod:`spectsynth.stats`
and its figures with :mod:`spectsynth.plots`, and writes them to the output paths it is given.

Statistics that cannot be computed on the data at hand (too few samples, an empty group,
constant values) are never written as NaN: they are listed, with the reason, in the study's
``not_computed.tsv`` and left out of the result tables.  Every table is checked for NaN
before it is written (:func:`write_table`).

Slices in the shards are stored anterior-up with the subject's left in the left half
(neurological, see :mod:`spectsynth.datasets`); :func:`shard_to_ras` turns them back into
axial RAS slices ``(x, y)``, the layout :mod:`spectsynth.metrics` and :mod:`spectsynth.plots`
expect.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from . import plots as P
from . import stats as S
from .errors import EvaluationError
from .infer import load_predictions, read_index
from .io import write_table  # the one table writer; re-exported for the study modules
from .labels import LEVELS, PATTERNS

log = logging.getLogger(__name__)

S2_METRICS = ("rmse", "ssim", "psnr")
NOT_COMPUTED_COLUMNS = ["study", "what", "reason"]


# ----------------------------------------------------------------------------- helpers
def study_experiments(experiments: Mapping[str, Mapping], study: str) -> list[str]:
    """Names of the enabled experiments of one study (``S0`` .. ``S3``), sorted."""
    return sorted(name for name, spec in experiments.items() if spec.get("study") == study)


def shard_to_ras(images: np.ndarray) -> np.ndarray:
    """Stored slices ``(..., H, W)`` (row 0 anterior, columns left -> right) -> RAS ``(..., x, y)``."""
    arr = np.asarray(images)
    return np.ascontiguousarray(np.swapaxes(arr[..., ::-1, :], -1, -2))


def _notes_frame(notes: Sequence[Mapping]) -> pd.DataFrame:
    return pd.DataFrame(list(notes), columns=NOT_COMPUTED_COLUMNS)


def _attempt(notes: list, study: str, what: str, fn: Callable, *args, **kwargs):
    """Run one statistic; on :class:`EvaluationError` record why it was not computed."""
    try:
        return fn(*args, **kwargs)
    except EvaluationError as exc:
        log.warning("%s %s not computed: %s", study, what, exc)
        notes.append({"study": study, "what": what, "reason": str(exc)})
        return None


def figure_label(scale_label: str, n_subjects: int, specs: Sequence[Mapping]) -> str:
    """``plots.data_label`` with the experiments' epochs (a range when they differ)."""
    epochs = sorted({int(s["epochs"]) for s in specs if s.get("epochs") is not None})
    scale = scale_label[:-len(" scale")] if scale_label.endswith(" scale") else scale_label
    if len(epochs) == 1:
        text = P.data_label(scale, n_subjects, epochs[0])
    else:
        extra = f"{epochs[0]}-{epochs[-1]} epochs" if epochs else None
        text = P.data_label(scale, n_subjects, None, extra=extra)
    # a label that already names the scale ("test scale (tiny)") is printed as given
    return text.replace(f"{scale} scale", scale) if "scale" in scale else text


def _message_figure(text: str, subtitle: str, title: str):
    fig = P._figure(6.0, 2.5)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    P._stamp(fig, title, subtitle)
    return fig


def _load_paired(experiment: str, files: Mapping[str, str]) -> tuple[dict, pd.DataFrame]:
    arrays, table, _ = load_predictions(files["h5"], files["tsv"], experiment=experiment)
    if "target" not in arrays:
        raise EvaluationError(f"{files['h5']} holds generated images, not paired predictions",
                              experiment=experiment)
    if arrays["prediction"].shape != arrays["target"].shape:
        raise EvaluationError(f"predictions have shape {arrays['prediction'].shape} but targets "
                              f"{arrays['target'].shape}", experiment=experiment,
                              hint="Rerun predict_experiment with the matching checkpoint")
    return arrays, table


def paired_slice_metrics(experiment: str, arrays: Mapping[str, np.ndarray], table: pd.DataFrame, *,
                         data_range: float, win_size: int | None = None,
                         against: str = "prediction") -> pd.DataFrame:
    """RMSE/SSIM/PSNR per slice of ``arrays[against]`` vs ``arrays['target']`` (channel 0),
    with subject and slice_index from the prediction table."""
    src = np.asarray(arrays[against], dtype=np.float64)[:, 0]
    tgt = np.asarray(arrays["target"], dtype=np.float64)[:, 0]
    parts = []
    for subject, sub in table.groupby("subject", sort=True):
        idx = sub.index.to_numpy()
        part = M.slice_metrics(src[idx], tgt[idx], data_range=data_range, experiment=experiment,
                               subject=str(subject), slice_ids=sub["slice_index"].tolist(),
                               win_size=win_size)
        part = part.rename(columns={"slice": "slice_index"})
        part["pred_row"] = idx
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["rank"] = out.groupby("subject")["slice_index"].rank(method="first").astype(int)
    return out


# ------------------------------------------------------------------------------- S2
S2_MODEL = "pix2pix"
S2_BASELINES = {"identity": "baseline: input as SPECT", "linear": "baseline: per-pixel linear map (train)"}
S2_CALIBRATION = "none: prediction and target compared in normalised units (-1, 1)"
S2_PUBLISHED_ROW = "published (S2 Table 4)"


def train_chunks(path: str | Path, channels: Sequence[str], *, experiment: str = "", chunk: int = 64):
    """Yield the training shard's slices of ``channels`` as ``(n, C, H, W)`` float64 chunks
    (read ``chunk`` slices at a time, so a paper-scale shard never sits in memory whole)."""
    import h5py

    from .datasets import SliceShard

    shard = SliceShard(path, preload_max_mb=0)
    if len(shard) == 0:
        raise EvaluationError(f"training shard {path} is empty", experiment=experiment,
                              hint="Give the dataset training subjects (datasets.*.split)")
    idx = shard.channel_index(list(channels))
    with h5py.File(path, "r") as f:
        images = f["images"]
        for a in range(0, len(shard), chunk):
            yield np.asarray(images[a:a + chunk], dtype=np.float64)[:, idx]


def fit_pixel_linear_map(chunks, *, experiment: str = "") -> np.ndarray:
    """Closed-form least squares per pixel, ``target = a + sum_c b_c * input_c``.

    ``chunks`` yields ``(n, C + 1, H, W)`` arrays, the C input channels followed by the
    target; the normal equations are summed over all chunks and solved per pixel with a
    pseudo-inverse (a pixel whose inputs never vary gets the mean target).  Returns the
    coefficients ``(C + 1, H, W)``: intercept, then one slope per input channel.
    """
    A = bvec = None
    n = 0
    for arr in chunks:
        x, y = arr[:, :-1], arr[:, -1]
        z = np.concatenate([np.ones_like(x[:, :1]), x], axis=1)          # (n, C+1, H, W)
        a_part = np.einsum("nihw,njhw->hwij", z, z)
        b_part = np.einsum("nihw,nhw->hwi", z, y)
        A = a_part if A is None else A + a_part
        bvec = b_part if bvec is None else bvec + b_part
        n += arr.shape[0]
    if n < 2:
        raise EvaluationError(f"the per-pixel linear map needs at least 2 training slices, got {n}",
                              experiment=experiment, hint="Give the dataset more training subjects")
    coef = np.einsum("hwij,hwj->hwi", np.linalg.pinv(A, rcond=1e-10, hermitian=True), bvec)
    return np.moveaxis(coef, -1, 0)


def apply_pixel_linear_map(coef: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """``(C + 1, H, W)`` coefficients applied to ``(N, C, H, W)`` inputs -> ``(N, H, W)``."""
    x = np.asarray(inputs, dtype=np.float64)
    return coef[0][None] + np.einsum("chw,nchw->nhw", coef[1:], x)


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
                for metric in S2_METRICS:
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
            for metric in S2_METRICS:
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
    from .published import published, published_records

    t4 = _attempt(notes, "S2", "Table 4 (mean and CV)", S.table4, data, metrics=S2_METRICS,
                  rows=("model", "space", "loss"), column="input", experiment="S2 grid")
    if t4 is None:
        return pd.DataFrame(columns=["model", "space", "loss", "metric"])
    t4["scale"] = scale_label
    ref = published("S2")
    pub = pd.DataFrame(published_records("S2", "table4"))
    inputs = [c for c in t4.columns if c not in ("model", "space", "loss", "metric", "scale")]
    rows = []
    for (space, loss), _ in t4[t4["model"] == S2_MODEL].groupby(["space", "loss"], sort=False):
        for metric in S2_METRICS:
            sel = pub[(pub["space"] == space) & (pub["loss"] == loss) & (pub["metric"] == metric)]
            cells = {r["input"]: f"{r['mean']:.2f} ({r['cv_percent']:.2f}%)" for _, r in sel.iterrows()}
            if all(i in cells for i in inputs):
                rows.append({"model": S2_PUBLISHED_ROW, "space": space, "loss": loss, "metric": metric,
                             **{i: cells[i] for i in inputs}, "scale": ref["scale"]})
    return pd.concat([t4, pd.DataFrame(rows, columns=t4.columns)], ignore_index=True)


def s2_published_table(data: pd.DataFrame, ttests: pd.DataFrame, *, scale_label: str,
                       alpha: float) -> pd.DataFrame:
    """The runs' Table 4 means next to S2's published ones, and the native-vs-template count."""
    from .published import published, published_records

    ref = published("S2")
    pub = pd.DataFrame(published_records("S2", "table4"))
    runs = data[data["model"] == S2_MODEL]
    rows = []
    for (space, loss, inp), g in runs.groupby(["space", "loss", "input"], sort=True):
        for metric in S2_METRICS:
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
        arrays, table = _load_paired(name, predictions[name])
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
            *S2_METRICS, "data_range", "calibration"]
    data = data[cols]
    write_table(data, out["slice_metrics"], what="S2 per-slice metrics")

    families: dict[tuple[str, str], list[dict]] = {}
    for c in _s2_comparisons(data[data["model"] == S2_MODEL]) + _s2_baseline_comparisons(data):
        families.setdefault((c["family"], c["metric"]), []).append(c)
    tables = []
    for (family, metric), comps in families.items():
        res = _attempt(notes, "S2", f"paired t-tests {family}, {metric}", S.paired_t_tests, comps,
                       experiment=f"S2 {family}", alpha=float(cfg["alpha"]),
                       corrections=tuple(cfg["corrections"]))
        if res is not None:
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
    fig = P.violin_metrics(fig_data, metrics=S2_METRICS, x="input", hue="series", subtitle=label,
                           title="S2: pix2pix SPECT prediction and baselines, per-slice metrics", data_range=dr)
    P.save_figure(fig, out["violin"], dpi=int(cfg["figure_dpi"]))
    write_table(_notes_frame(notes), out["not_computed"], what="S2 statistics not computed")
    return {"slice_metrics": data, "ttests": ttests, "table4": t4, "published": pub}


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

    from .datasets import axial_slice, pad_square

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
            M.check_same_grid(lab_img, nib.load(src_path), experiment=experiment, subject=subject,
                              names=("atlas labels", "source volume"))
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


def _s3_train(train: Mapping[str, str], cin: str, cout: str, *, experiment: str):
    """Training-split calibration and null image of an S3 experiment (nothing from the test targets)."""
    from .calibration import fit_scale_calibration
    from .datasets import SliceShard

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
    from .published import published_records

    for r in published_records("S3", "regressions"):
        if r["label"] == label:
            return f"y = {r['intercept']:.2f} + {r['slope']:.2f}x, r = {r['r']:.2f}"
    return "not reported"


def s3_published_table(summary: pd.DataFrame, regression: pd.DataFrame, *, experiment: str,
                       scale_label: str) -> pd.DataFrame:
    """The run's SSIMs and ROI regressions next to S3's published values (one row per quantity)."""
    from .published import published, published_records

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

    * per slice: SSIM/RMSE/PSNR of input, prediction and null vs target (normalised units,
      data range ``cfg['data_range']``) and the mean CBF inside the brain (input pixels above
      :data:`BRAIN_FRACTION` of the input slice's maximum) of every series in physical units;
    * physical units: the input and the target with their own constants; the prediction and
      the null model with :class:`spectsynth.calibration.ScaleCalibration` fitted on the
      training split (the target's scale from the input's), never with the test target's
      constants; the ``calibration`` column names it;
    * summary of the metrics and paired t-tests of the prediction against the input baseline
      and against the null model (one family, corrected);
    * atlas-region means (``labels``: subject -> label volume, ``label_names``: value ->
      region; default the vascular territories) of every series (:func:`s3_roi_means`);
    * linear regression + Pearson r (input vs target, prediction vs target, prediction vs
      input, null vs target) on the ROI means (``basis = roi``) and on the slice means
      (``basis = slice``), with a scatter figure of the ROI means (slice means without labels);
    * the run's numbers next to S3's published ones (:mod:`spectsynth.published`).

    ``out``: ``slice_metrics``, ``roi_means``, ``summary``, ``ttest``, ``regression``,
    ``published``, ``scatter``, ``not_computed``.
    """
    from .published import published_records

    dr = float(cfg["data_range"])
    notes: list[dict] = []
    arrays, table = _load_paired(experiment, files)
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
    metric_arrays = {"target": norm["target"][:, None]}
    metric_arrays.update({k: norm[k][:, None] for k in ("input", "prediction", "null")})
    per = {k: paired_slice_metrics(experiment, metric_arrays, table, data_range=dr, win_size=win, against=k)
           for k in ("input", "prediction", "null")}
    data = per["prediction"][["experiment", "subject", "slice_index", "pred_row"]].copy()
    for m in S2_METRICS:
        for k in ("input", "prediction", "null"):
            data[f"{m}_{k}_vs_target"] = per[k][m].to_numpy()
    data["data_range"] = dr

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
    write_table(data, out["slice_metrics"], what="S3 per-slice metrics")

    metric_cols = [f"{m}_{k}_vs_target" for m in ("ssim", "rmse", "psnr") for k in ("input", "prediction", "null")]
    summ = _attempt(notes, "S3", "summary (mean ± sd)", S.summary_table, data, metric_cols, experiment=experiment)
    if summ is not None:
        pub = {f"ssim_{r['name']}": f"{r['value']:.2f}" for r in published_records("S3", "ssim")}
        summ["published"] = [pub.get(v, "not reported") for v in summ["value"]]
    comps = [{"label": f"{m.upper()} prediction vs target against {base} vs target", "a": data[f"{m}_prediction_vs_target"],
              "b": data[f"{m}_{base}_vs_target"], "names": ("prediction", "baseline"), "base": base}
             for base in ("input", "null") for m in ("ssim", "rmse", "psnr")]
    ttest = _attempt(notes, "S3", "paired t-tests against the baselines", S.paired_t_tests, comps,
                     experiment=experiment, alpha=float(cfg["alpha"]), corrections=tuple(cfg["corrections"]))
    if ttest is not None:
        ttest.insert(0, "baseline", [S3_SERIES_TEXT[c["base"]] for c in comps])
    summary = summ if summ is not None else pd.DataFrame(columns=["experiment", "value"])
    write_table(summary, out["summary"], what="S3 summary")
    ttest = ttest if ttest is not None else pd.DataFrame(columns=["experiment", "label"])
    write_table(ttest, out["ttest"], what="S3 paired t-tests")

    rois = pd.DataFrame(columns=["experiment", "subject", "region", "n_pixels", *S3_SERIES])
    if labels:
        from .labels import TERRITORIES

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
            rec = _attempt(notes, "S3", f"regression {pair['label']} ({basis} means)", S.linear_regression,
                           pair["x"], pair["y"], experiment=experiment, label=pair["label"],
                           confidence=float(cfg["regression_confidence"]))
            if rec is not None:
                recs.append(rec)
                basis_col.append(basis)
                ok.setdefault(basis, []).append(pair)
    reg = S.records_frame(recs) if recs else pd.DataFrame(columns=["experiment", "label"])
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
        fig = _message_figure("No regression could be computed (see not_computed.tsv).", label, title)
    P.save_figure(fig, out["scatter"], dpi=int(cfg["figure_dpi"]))
    write_table(reg, out["regression"], what="S3 regressions")
    pub = s3_published_table(summary, reg, experiment=experiment, scale_label=scale_label)
    write_table(pub, out["published"], what="S3 results next to the published values")
    write_table(_notes_frame(notes), out["not_computed"], what="S3 statistics not computed")
    return {"slice_metrics": data, "roi_means": rois, "summary": summary, "ttest": ttest,
            "regression": reg, "published": pub, "calibration": cal}


# ------------------------------------------------------------------------------- S1
def _source_names(specs: Mapping[str, Mapping]) -> dict[str, str]:
    variants = {n: str(s.get("condition", {}).get("variant", n)) for n, s in specs.items()}
    if len(set(variants.values())) < len(variants):
        return {n: n for n in specs}
    return variants


REAL = "real"
REAL_HALVES = ("real half 1", "real half 2")
COMPARISON_GENERATED = "real vs generated"
COMPARISON_REAL_HALVES = "real half 1 vs real half 2 (reference)"
CRITERION_NONE = "none (real images only)"


def split_subjects_in_halves(subjects: Sequence[str], *, seed: int, experiment: str = "S1") -> dict[str, int]:
    """Split subjects into two halves (1, 2) by a seeded shuffle; with an odd count half 1 has the
    extra subject.  Every image of a subject lands in the same half, so the real-vs-real
    comparison keeps S1's subject structure (no subject on both sides)."""
    uniq = sorted({str(s) for s in subjects})
    if len(uniq) < 2:
        raise EvaluationError(f"the real test split holds {len(uniq)} subject(s); a real-vs-real comparison needs "
                              "at least two, one per half", experiment=experiment,
                              hint="Give the s1 test split more subjects (datasets.s1.split)")
    order = np.random.default_rng(int(seed)).permutation(len(uniq))
    first = {uniq[i] for i in order[: (len(uniq) + 1) // 2]}
    return {s: 1 if s in first else 2 for s in uniq}


def _s1_tests(data: pd.DataFrame, sources: Sequence[str], *, reference: str | None, cfg: Mapping, notes: list,
              comparison: str, criterion: str, headline: bool) -> tuple[list[dict], list[pd.DataFrame], dict]:
    """S1's one-way ANOVA (with its power) and post-hoc comparisons of ``sources`` per level and
    pattern; rows tagged with ``comparison``, ``criterion`` and ``headline``."""
    alpha = float(cfg["anova_alpha"])
    anova, post = [], []
    marks: dict[str, list] = {"mean_counts": [], "lr_ratio": []}
    tag = {"comparison": comparison, "criterion": criterion, "headline": bool(headline)}
    suffix = "" if headline else f" [{comparison}; criterion {criterion}]"
    for lv in LEVELS:
        for pat in PATTERNS:
            sub = data[(data["level"] == lv) & (data["pattern"] == pat)]
            groups_present = [s for s in sources if (sub["source"] == s).any()]
            if len(groups_present) < 2:
                continue
            for value in ("mean_counts", "lr_ratio"):
                groups = {s: sub.loc[sub["source"] == s, value].to_numpy() for s in groups_present}
                what = f"{value} at {lv}, {pat}"
                rec = _attempt(notes, "S1", f"ANOVA {what}{suffix}", S.one_way_anova, groups,
                               experiment="S1", label=what, alpha=alpha)
                if rec is None:
                    continue
                tab = S.anova_table(groups, experiment="S1", label=what)
                row = {**tag, **{k: v for k, v in rec.as_dict().items() if not k.startswith("mean_")}}
                row.update({"level": lv, "pattern": pat, "value": value,
                            "sum_sq": float(tab["sum_sq"].iat[0]),
                            "residual_sum_sq": float(tab["residual_sum_sq"].iat[0])})
                power = _attempt(notes, "S1", f"power of the ANOVA {what}{suffix}", S.anova_sensitivity, groups,
                                 experiment="S1", label=what, alpha=alpha, power=float(cfg.get("anova_power", 0.8)),
                                 reference_f=float(cfg.get("anova_reference_f", 0.25)))
                if power is None:
                    continue   # a row without its power is not written (noted instead)
                row.update(power)
                anova.append(row)
                ref = reference if reference in groups else None
                ph = _attempt(notes, "S1", f"post-hoc {what}{suffix}", S.posthoc, groups, experiment="S1",
                              label=what, method=cfg["posthoc"], alpha=alpha, reference=ref)
                if ph is not None:
                    for pos, (k, v) in enumerate({"level": lv, "pattern": pat, "value": value, **tag}.items()):
                        ph.insert(pos, k, v)
                    post.append(ph)
                    m = ph[["group1", "group2", "p_corrected"]].copy()
                    m["x"] = f"{lv}\n{pat}"
                    marks[value].append(m)
    return anova, post, marks


def s1_published_columns(posthoc: pd.DataFrame, *, scale_label: str) -> pd.DataFrame:
    """S1's published p-value (:data:`spectsynth.published.S1`, per quantity, variant and pattern,
    levels pooled) beside every real-vs-variant post-hoc row: ``published_p`` (as printed),
    ``published_significant`` and ``scale``.  Rows the paper has no value for say so."""
    from .published import published, s1_published_p

    alpha = float(published("S1")["alpha"])
    texts, sig, scale = [], [], []
    for _, r in posthoc.iterrows():
        pair = {str(r["group1"]), str(r["group2"])}
        other = sorted(pair - {REAL})
        pub = s1_published_p(str(r["value"]), other[0], str(r["pattern"])) \
            if REAL in pair and len(other) == 1 else None
        texts.append(pub["published"] if pub else "not reported")
        sig.append(("yes" if pub["significant"] else "no") if pub else "not reported")
        scale.append(scale_label)
    out = posthoc.copy()
    out["published_p"] = texts
    out["published_significant"] = sig
    out["published_alpha"] = alpha
    out["scale"] = scale
    return out


def s1_summary(posthoc: pd.DataFrame, *, scale_label: str) -> pd.DataFrame:
    """S1's finding beside the paper's: one row per quantity, pattern, variant and selection
    criterion; ``levels`` and ``significant_levels`` count our per-level post-hoc tests against
    real (the paper pools the levels), with the smallest corrected p and the published p.  The
    real-vs-real reference appears as variant ``real half 2`` (criterion
    :data:`CRITERION_NONE`, published ``reference``)."""
    from .published import s1_published_p

    rows = []
    for _, r in posthoc.iterrows():
        pair = {str(r["group1"]), str(r["group2"])}
        if r["comparison"] == COMPARISON_REAL_HALVES:        # the reference: real vs real
            rows.append({**r.to_dict(), "variant": REAL_HALVES[1]})
        elif REAL in pair and len(pair - {REAL}) == 1:
            rows.append({**r.to_dict(), "variant": next(iter(pair - {REAL}))})
    cols = ["value", "pattern", "variant", "criterion", "headline", "levels", "significant_levels",
            "min_p_corrected", "ours", "published_p", "published", "scale"]
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows)
    out = []
    for (value, pattern, variant, criterion), g in frame.groupby(["value", "pattern", "variant", "criterion"],
                                                                sort=True):
        pub = s1_published_p(value, variant, pattern)
        reference = variant == REAL_HALVES[1]
        n_sig = int(g["significant"].astype(bool).sum())
        out.append({"value": value, "pattern": pattern, "variant": variant, "criterion": criterion,
                    "headline": bool(g["headline"].iat[0]), "levels": " ".join(g["level"]),
                    "significant_levels": n_sig, "min_p_corrected": float(g["p_corrected"].min()),
                    "ours": "different" if n_sig else "not different",
                    "published_p": pub["published"] if pub else ("reference" if reference else "not reported"),
                    "published": ("different" if pub["significant"] else "not different") if pub
                    else ("reference" if reference else "not reported"),
                    "scale": scale_label})
    return pd.DataFrame(out, columns=cols)


def evaluate_s1(predictions: Mapping[str, Mapping[str, str]], specs: Mapping[str, Mapping],
                real_shard: str, real_index: str, out: Mapping[str, str], *, cfg: Mapping,
                scale_label: str, other_predictions: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
                headline_criterion: str | None = None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """S1's evaluation: real test slices vs the images of each FastGAN variant (A, B).

    * per image: mean counts (MC) and left/right ratio (LR) of the max-normalised slice;
    * per (level, pattern): one-way ANOVA real vs A vs B of MC and LR (sources present at
      that level), with its power (:func:`spectsynth.stats.anova_sensitivity`: observed
      Cohen's f, the smallest f detectable at ``cfg['anova_power']``), post-hoc comparisons
      (``cfg['posthoc']``, against ``posthoc_reference``) and S1's published p beside each;
    * the reference a "not different from real" is read against: the real test set split in
      two halves by subject (:func:`split_subjects_in_halves`, ``seed``) through the same
      ANOVA and post-hoc (``comparison`` = :data:`COMPARISON_REAL_HALVES`);
    * the same tests for the checkpoints picked by the other selection criteria
      (``other_predictions``: criterion -> experiment -> files; ``headline`` false), so a
      reader sees whether the finding depends on how the epoch was chosen;
    * box plots with S1's significance marks; pixel-wise mean and SD maps per source, level
      and pattern (groups of at least two images) with their average pixel-wise SD (headline).

    ``out``: ``images``, ``anova``, ``posthoc``, ``average_sd``, ``boxplot``, ``maps_mean``,
    ``maps_sd``, ``not_computed`` and, when given, ``summary`` (:func:`s1_summary`).
    """
    from .datasets import SliceShard

    notes: list[dict] = []
    headline_criterion = headline_criterion or "configured"
    index = read_index(real_index, experiment="S1 real test set")
    shard = SliceShard(real_shard)
    if len(shard) != len(index):
        raise EvaluationError(f"S1 test shard {real_shard} holds {len(shard)} slices but the index "
                              f"lists {len(index)}", experiment="S1", hint="Rebuild dataset s1")
    ch = shard.channel_index(["slice"])[0]
    real_imgs = shard_to_ras(shard.all_images()[:, ch])
    names = _source_names(specs)

    def generated(files_by_experiment: Mapping[str, Mapping[str, str]]) -> dict[str, tuple]:
        stacks = {}
        for name in sorted(files_by_experiment):
            arrays, table, _ = load_predictions(files_by_experiment[name]["h5"], files_by_experiment[name]["tsv"],
                                                experiment=name)
            stacks[names[name]] = (shard_to_ras(arrays["prediction"][:, 0]), table["level"].tolist(),
                                   table["pattern"].tolist())
        return stacks

    stacks = {REAL: (real_imgs, index["level"].tolist(), index["pattern"].tolist()), **generated(predictions)}
    parts = []
    for source, (imgs, lev, pat) in stacks.items():
        part = M.s1_image_table(imgs, levels=lev, patterns=pat, source=source,
                                experiment="S1" if source == REAL else source)
        part["criterion"] = CRITERION_NONE if source == REAL else headline_criterion
        parts.append(part)
    parts[0]["subject"] = index["subject"].astype(str).to_numpy()
    other_data = {}
    for criterion, files in sorted((other_predictions or {}).items()):
        alt = []
        for source, (imgs, lev, pat) in generated(files).items():
            alt.append(M.s1_image_table(imgs, levels=lev, patterns=pat, source=source, experiment=source)
                       .assign(criterion=criterion))
        other_data[criterion] = pd.concat(alt, ignore_index=True) if alt else None
    data = pd.concat(parts, ignore_index=True)
    sources = list(stacks)
    all_images = pd.concat([data, *(d for d in other_data.values() if d is not None)], ignore_index=True)
    all_images["subject"] = all_images["subject"].fillna("none (generated)")   # generated images have no subject
    halves = _attempt(notes, "S1", "real-vs-real reference (real test set in two halves by subject)",
                      split_subjects_in_halves, index["subject"].astype(str).tolist(), seed=seed)
    all_images["real_half"] = 0
    if halves is not None:
        is_real = all_images["source"] == REAL
        all_images.loc[is_real, "real_half"] = all_images.loc[is_real, "subject"].map(halves).astype(int)
    write_table(all_images, out["images"], what="S1 per-image measures")
    data["condition"] = data["level"] + "\n" + data["pattern"]

    reference = cfg["posthoc_reference"]
    anova, post, comps = _s1_tests(data, sources, reference=reference, cfg=cfg, notes=notes,
                                   comparison=COMPARISON_GENERATED, criterion=headline_criterion, headline=True)
    for criterion, alt in other_data.items():
        if alt is None:
            continue
        alt_data = pd.concat([data[data["source"] == REAL], alt], ignore_index=True)
        a, p, _ = _s1_tests(alt_data, sources, reference=reference, cfg=cfg, notes=notes,
                            comparison=COMPARISON_GENERATED, criterion=criterion, headline=False)
        anova += a
        post += p
    if halves is not None:
        real = data[data["source"] == REAL].copy()
        real["source"] = [REAL_HALVES[halves[s] - 1] for s in real["subject"]]
        a, p, _ = _s1_tests(real, list(REAL_HALVES), reference=REAL_HALVES[0], cfg=cfg, notes=notes,
                            comparison=COMPARISON_REAL_HALVES, criterion=CRITERION_NONE, headline=False)
        anova += a
        post += p
    anova_t = pd.DataFrame(anova) if anova else pd.DataFrame(
        columns=["comparison", "criterion", "headline", "level", "pattern", "value"])
    post_t = pd.concat(post, ignore_index=True) if post else pd.DataFrame(
        columns=["level", "pattern", "value", "comparison", "criterion", "headline", "group1", "group2"])
    post_t = s1_published_columns(post_t, scale_label=scale_label)
    write_table(anova_t, out["anova"], what="S1 ANOVA")
    write_table(post_t, out["posthoc"], what="S1 post-hoc")
    summary = s1_summary(post_t, scale_label=scale_label)
    if "summary" in out:
        write_table(summary, out["summary"], what="S1 summary beside the published finding")

    label = figure_label(scale_label, int(index["subject"].nunique()), list(specs.values()))
    order = [f"{lv}\n{p}" for lv in LEVELS for p in PATTERNS if f"{lv}\n{p}" in set(data["condition"])]
    fig = P.s1_whisker_grid(data, values={"mean_counts": "mean counts (MC)", "lr_ratio": "L/R ratio"},
                            x="condition", hue="source", subtitle=label,
                            comparisons={k: pd.concat(v, ignore_index=True) for k, v in comps.items() if v},
                            title=f"S1: real vs generated perfusion slices (selection: {headline_criterion})",
                            order=order, hue_order=sources)
    P.save_figure(fig, out["boxplot"], dpi=int(cfg["figure_dpi"]))

    maps, avg = {}, []
    for source, (imgs, lev, pat) in stacks.items():
        for lv in LEVELS:
            for p in PATTERNS:
                sel = [i for i, (a, b) in enumerate(zip(lev, pat, strict=True)) if a == lv and b == p]
                if not sel:
                    continue
                res = _attempt(notes, "S1", f"mean/SD map {source} {lv} {p}", M.mean_sd_maps,
                               imgs[sel], levels=[lv] * len(sel), patterns=[p] * len(sel),
                               experiment="S1", source=source)
                if res is None:
                    continue
                r = res[(lv, p)]
                maps[(f"{source} {lv}", p)] = r
                avg.append({"source": source, "level": lv, "pattern": p, "n": r["n"],
                            "average_sd": r["average_sd"]})
    write_table(pd.DataFrame(avg, columns=["source", "level", "pattern", "n", "average_sd"]),
                out["average_sd"], what="S1 average pixel-wise SD")
    rows = [f"{s} {lv}" for s in sources for lv in LEVELS if any(k[0] == f"{s} {lv}" for k in maps)]
    for key, stat in (("maps_mean", "mean"), ("maps_sd", "sd")):
        title = f"S1: pixel-wise {stat.upper() if stat == 'sd' else stat} maps per source, level and pattern"
        if maps:
            fig = P.map_grid({k: v[stat] for k, v in maps.items()}, levels=rows, patterns=list(PATTERNS),
                             subtitle=label, title=title, convention=cfg["display_convention"],
                             colorbar_label=f"pixel-wise {stat} (max-normalised counts)")
        else:
            fig = _message_figure("No condition holds two or more images of one source; pixel-wise "
                                  "mean and SD maps need at least two (see not_computed.tsv).",
                                  label, title)
        P.save_figure(fig, out[key], dpi=int(cfg["figure_dpi"]))
    write_table(_notes_frame(notes), out["not_computed"], what="S1 statistics not computed")
    return {"images": all_images, "anova": anova_t, "posthoc": post_t, "summary": summary}


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
    """S0's binding-ratio match with the regression CNN (:mod:`spectsynth.sbr_regressor`).

    The CNN reads the SBR of every predicted slice, every damaged input slice (the baseline:
    what the CNN makes of the image before any model) and every original slice (all in the
    dataset's normalised units, stored orientation); the known SBR of the original comes from
    the dataset index columns ``orig_sbr_<region>`` that travel with the prediction table.
    One row per case and region: ``known``, ``cnn_original``, ``cnn_prediction``,
    ``cnn_input`` and the errors ``cnn_<series> - known``: the prediction's, the baseline's, and
    the CNN's own on the originals (images it reads without any generative model in
    between).  When present, ``known_input`` is the known SBR of the damaged input slice.
    """
    from .sbr_regressor import REGIONS, check_sbr_columns, load_sbr_regressor, predict_sbr, sbr_columns
    from .study_data import ORIG_SBR_PREFIX, SBR_PREFIX

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
            frac = M.sbr_error_fractions(g[col], g["known"], thresholds=tuple(thresholds), experiment=experiment)
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
                  dilate_px=0, experiment=experiment, subject=subject)
        res = _attempt(notes, "S0", f"ASP/Dice {experiment} {series} subject {subject} case {case}",
                       M.basal_ganglia_agreement, candidate_ras[i], original_ras[i], convention=convention,
                       case=case, **kw)
        if res is None:
            continue
        asp_parts.append(res[0].assign(series=series))
        dice_parts.append(res[1].assign(series=series))
        seg_o = M.segment_basal_ganglia(original_ras[i], **kw)
        ratios = _attempt(notes, "S0", f"SBR {experiment} {series} subject {subject} case {case}",
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


def _per_series(notes: list, what: str, fn: Callable, data: pd.DataFrame, *args, **kwargs) -> pd.DataFrame | None:
    """``fn`` applied to each series of ``data`` (``_attempt``), the results stacked with ``series``."""
    parts = []
    for series, sub in data.groupby("series", sort=False):
        res = _attempt(notes, "S0", f"{what} ({series})", fn, sub, *args, **kwargs)
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
        rec = S.bland_altman(m, r, experiment=experiment, label=S0_SERIES[s], loa_z=loa_z)
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
    from .published import published

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

    With ``regressor`` (the ``best.pt`` of :func:`spectsynth.sbr_regressor.train_sbr_regressor`)
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
    arrays, table = _load_paired(experiment, files)
    if "input" not in arrays:
        raise EvaluationError(f"{files['h5']} holds no input slices, so the damaged-input baseline cannot be "
                              "computed", experiment=experiment, hint="Rerun predict_experiment")
    cnn = cnn_frac = None
    if regressor is not None:
        missing = [k for k in ("sbr_cnn", "sbr_cnn_error", "sbr_cnn_plot") if k not in out]
        if missing:
            raise EvaluationError(f"a regressor was given but no output path for {missing}", experiment=experiment,
                                  hint="Pass sbr_cnn, sbr_cnn_error and sbr_cnn_plot in the outputs")
        cnn = sbr_cnn_readings(experiment, arrays, table, regressor, batch_size=int(cfg.get("batch_size", 64)),
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
    asp_sum = _per_series(notes, "ASP summary", S.summary_table, asp, ["abs_difference", "difference"],
                          by=["side", "measure"], experiment=experiment)
    write_table(asp_sum if asp_sum is not None else empty, out["asp_summary"], what="S0 ASP summary")
    dice_sum = _per_series(notes, "Dice summary", S.summary_table, dice, ["dice"], by=["side"],
                           experiment=experiment)
    write_table(dice_sum if dice_sum is not None else empty, out["dice_summary"], what="S0 Dice summary")

    def fractions(sub: pd.DataFrame) -> pd.DataFrame:
        return M.sbr_error_fractions(sub["sbr_prediction"], sub["sbr_original"],
                                     thresholds=tuple(cfg["sbr_error_thresholds"]), experiment=experiment)

    frac = _per_series(notes, "SBR error fractions", fractions, sbr) if len(sbr) else None
    write_table(frac if frac is not None else pd.DataFrame(columns=["experiment", "series", "threshold"]),
                out["sbr_error"], what="S0 SBR error fractions")
    label = figure_label(scale_label, int(table["subject"].nunique()), [spec])
    title = f"S0 {experiment}: slice binding ratio vs original, model and damaged-input baseline"
    recs, rec_series = [], []
    for series, sub in sbr.groupby("series", sort=False):
        rec = _attempt(notes, "S0", f"Bland-Altman ({series})", S.bland_altman, sub["sbr_prediction"],
                       sub["sbr_original"], experiment=experiment,
                       label=f"{S0_SERIES[series]} vs original slice SBR", loa_z=float(cfg["loa_z"]))
        if rec is not None:
            recs.append(rec)
            rec_series.append(series)
    if recs:
        ba = S.records_frame(recs)
        ba.insert(1, "series", rec_series)
        write_table(ba, out["bland_altman"], what="S0 Bland-Altman")
        fig = bland_altman_series_figure(sbr[sbr["series"].isin(rec_series)], subtitle=label, title=title,
                                         experiment=experiment, loa_z=float(cfg["loa_z"]))
    else:
        write_table(pd.DataFrame(columns=["experiment", "series", "label"]), out["bland_altman"],
                    what="S0 Bland-Altman")
        fig = _message_figure("Bland-Altman analysis not computed (see not_computed.tsv).", label, title)
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
    write_table(_notes_frame(notes), out["not_computed"], what="S0 statistics not computed")
    return result
