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


def write_table(table: pd.DataFrame, path: str | Path, *, what: str) -> Path:
    """Write a TSV, refusing tables that hold NaN (a statistic that failed silently)."""
    bad = [c for c in table.columns if table[c].isna().any()]
    if bad:
        raise EvaluationError(f"{what}: columns {bad} hold missing values; refusing to write {path}",
                              hint="Report the statistic as not computed instead of writing NaN")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    table.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)
    return path


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


def evaluate_s1(predictions: Mapping[str, Mapping[str, str]], specs: Mapping[str, Mapping],
                real_shard: str, real_index: str, out: Mapping[str, str], *, cfg: Mapping,
                scale_label: str) -> dict[str, pd.DataFrame]:
    """S1's evaluation: real test slices vs the images of each FastGAN variant (A, B).

    * per image: mean counts (MC) and left/right ratio (LR) of the max-normalised slice;
    * per (level, pattern): one-way ANOVA real vs A vs B of MC and LR (sources present at
      that level), post-hoc comparisons (``cfg['posthoc']``, against ``posthoc_reference``);
    * box plots with S1's significance marks; pixel-wise mean and SD maps per source, level
      and pattern (groups of at least two images) with their average pixel-wise SD.

    ``out``: ``images``, ``anova``, ``posthoc``, ``average_sd``, ``boxplot``, ``maps_mean``,
    ``maps_sd``, ``not_computed``.
    """
    from .datasets import SliceShard

    notes: list[dict] = []
    index = read_index(real_index, experiment="S1 real test set")
    shard = SliceShard(real_shard)
    if len(shard) != len(index):
        raise EvaluationError(f"S1 test shard {real_shard} holds {len(shard)} slices but the index "
                              f"lists {len(index)}", experiment="S1", hint="Rebuild dataset s1")
    ch = shard.channel_index(["slice"])[0]
    stacks = {"real": (shard_to_ras(shard.all_images()[:, ch]), index["level"].tolist(),
                       index["pattern"].tolist())}
    names = _source_names(specs)
    for name in sorted(predictions):
        arrays, table, _ = load_predictions(predictions[name]["h5"], predictions[name]["tsv"],
                                            experiment=name)
        stacks[names[name]] = (shard_to_ras(arrays["prediction"][:, 0]), table["level"].tolist(),
                               table["pattern"].tolist())
    parts = []
    for source, (imgs, lev, pat) in stacks.items():
        parts.append(M.s1_image_table(imgs, levels=lev, patterns=pat, source=source,
                                      experiment="S1" if source == "real" else source))
    data = pd.concat(parts, ignore_index=True)
    write_table(data, out["images"], what="S1 per-image measures")
    sources = list(stacks)
    data["condition"] = data["level"] + "\n" + data["pattern"]

    anova, post = [], []
    comps: dict[str, list] = {"mean_counts": [], "lr_ratio": []}
    for lv in LEVELS:
        for pat in PATTERNS:
            sub = data[(data["level"] == lv) & (data["pattern"] == pat)]
            groups_present = [s for s in sources if (sub["source"] == s).any()]
            if len(groups_present) < 2:
                continue
            for value in ("mean_counts", "lr_ratio"):
                groups = {s: sub.loc[sub["source"] == s, value].to_numpy() for s in groups_present}
                what = f"{value} at {lv}, {pat}"
                rec = _attempt(notes, "S1", f"ANOVA {what}", S.one_way_anova, groups,
                               experiment="S1", label=what, alpha=float(cfg["anova_alpha"]))
                if rec is None:
                    continue
                tab = S.anova_table(groups, experiment="S1", label=what)
                row = {k: v for k, v in rec.as_dict().items() if not k.startswith("mean_")}
                row.update({"level": lv, "pattern": pat, "value": value,
                            "sum_sq": float(tab["sum_sq"].iat[0]),
                            "residual_sum_sq": float(tab["residual_sum_sq"].iat[0])})
                anova.append(row)
                ref = cfg["posthoc_reference"] if cfg["posthoc_reference"] in groups else None
                ph = _attempt(notes, "S1", f"post-hoc {what}", S.posthoc, groups, experiment="S1",
                              label=what, method=cfg["posthoc"], alpha=float(cfg["anova_alpha"]),
                              reference=ref)
                if ph is not None:
                    ph.insert(0, "level", lv)
                    ph.insert(1, "pattern", pat)
                    ph.insert(2, "value", value)
                    post.append(ph)
                    marks = ph[["group1", "group2", "p_corrected"]].copy()
                    marks["x"] = f"{lv}\n{pat}"
                    comps[value].append(marks)
    anova_t = pd.DataFrame(anova) if anova else pd.DataFrame(columns=["level", "pattern", "value"])
    post_t = pd.concat(post, ignore_index=True) if post else pd.DataFrame(
        columns=["level", "pattern", "value", "group1", "group2"])
    write_table(anova_t, out["anova"], what="S1 ANOVA")
    write_table(post_t, out["posthoc"], what="S1 post-hoc")

    label = figure_label(scale_label, int(index["subject"].nunique()), list(specs.values()))
    order = [f"{lv}\n{p}" for lv in LEVELS for p in PATTERNS if f"{lv}\n{p}" in set(data["condition"])]
    fig = P.s1_whisker_grid(data, values={"mean_counts": "mean counts (MC)", "lr_ratio": "L/R ratio"},
                            x="condition", hue="source", subtitle=label,
                            comparisons={k: pd.concat(v, ignore_index=True) for k, v in comps.items() if v},
                            title="S1: real vs generated perfusion slices", order=order,
                            hue_order=sources)
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
    return {"images": data, "anova": anova_t, "posthoc": post_t}


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


SBR_CNN_COLUMNS = ["experiment", "subject", "case", "region", "known", "cnn_original", "cnn_prediction",
                   "error_original", "error_prediction", "abs_error_original", "abs_error_prediction"]
SBR_CNN_SERIES = {"prediction": "CNN on the prediction", "original": "CNN on the original (yardstick)"}


def sbr_cnn_readings(experiment: str, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                     regressor: str | Path, *, batch_size: int = 64, device: str = "auto") -> pd.DataFrame:
    """S0's binding-ratio match with the regression CNN (:mod:`spectsynth.sbr_regressor`).

    The CNN reads the SBR of every predicted slice and of every original slice (both in the
    dataset's normalised units, stored orientation); the known SBR of the original comes from
    the dataset index columns ``orig_sbr_<region>`` that travel with the prediction table.
    One row per case and region: ``known``, ``cnn_original``, ``cnn_prediction``, and the
    errors ``cnn_prediction - known`` (the prediction's) and ``cnn_original - known`` (the
    CNN's own, on images it reads without any generative model in between).  When present,
    ``known_input`` is the known SBR of the damaged input slice.
    """
    from .sbr_regressor import REGIONS, check_sbr_columns, load_sbr_regressor, predict_sbr, sbr_columns
    from .study_data import ORIG_SBR_PREFIX, SBR_PREFIX

    check_sbr_columns(table, (ORIG_SBR_PREFIX,), experiment=experiment,
                      where="the prediction table (the test rows of the dataset index)")
    model = load_sbr_regressor(regressor, device=device, experiment=experiment)
    pred = predict_sbr(model, np.asarray(arrays["prediction"]), batch_size, experiment=experiment)
    orig = predict_sbr(model, np.asarray(arrays["target"]), batch_size, experiment=experiment)
    known = table[sbr_columns(ORIG_SBR_PREFIX)].astype(float).to_numpy()
    has_input = all(c in table.columns for c in sbr_columns(SBR_PREFIX))
    rows = []
    for i, row in table.reset_index(drop=True).iterrows():
        case = f"{row.get('desc', '')}#{row['pred_row'] if 'pred_row' in row else i}"
        for j, region in enumerate(REGIONS):
            k = float(known[i, j])
            co, cp = float(orig[region].iat[i]), float(pred[region].iat[i])
            rec = {"experiment": experiment, "subject": str(row["subject"]), "case": case, "region": region,
                   "known": k, "cnn_original": co, "cnn_prediction": cp, "error_original": co - k,
                   "error_prediction": cp - k, "abs_error_original": abs(co - k), "abs_error_prediction": abs(cp - k)}
            if has_input:
                rec["known_input"] = float(row[f"{SBR_PREFIX}{region}"])
            rows.append(rec)
    cols = SBR_CNN_COLUMNS[:5] + (["known_input"] if has_input else []) + SBR_CNN_COLUMNS[5:]
    return pd.DataFrame(rows, columns=cols)


def sbr_cnn_error_fractions(readings: pd.DataFrame, *, thresholds: Sequence[float], experiment: str
                            ) -> pd.DataFrame:
    """Fraction of (case, region) readings with |error| under each threshold, for the prediction
    and, as the yardstick, for the CNN on the originals; over all regions and per region."""
    parts = []
    for series in SBR_CNN_SERIES:
        col = f"cnn_{series}"
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
    own error) and on the predictions, markers per region, identity line."""
    fig = P._figure(5.8, 5.0)
    ax = fig.subplots()
    markers = dict(zip(readings["region"].unique(), "osD^v<>"))
    for c, (series, text) in enumerate(SBR_CNN_SERIES.items()):
        f = fractions[(fractions["series"] == series) & (fractions["region"] == "all")]
        label = f"{text}: MAE {float(f['mean_abs_error'].iat[0]):.2f}" if len(f) else text
        if threshold is not None and len(f):
            hit = f[np.isclose(f["threshold"], threshold)]
            if len(hit):
                label += f", {100 * float(hit['fraction'].iat[0]):.0f} % under {threshold:g}"
        for k, (region, g) in enumerate(readings.groupby("region", sort=False)):
            ax.scatter(g["known"], g[f"cnn_{series}"], s=16, alpha=0.75, color=f"C{c}", marker=markers[region],
                       edgecolor="none", label=label if k == 0 else None)
    lo = float(np.nanmin(readings[["known", "cnn_original", "cnn_prediction"]].to_numpy()))
    hi = float(np.nanmax(readings[["known", "cnn_original", "cnn_prediction"]].to_numpy()))
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


def evaluate_s0(experiment: str, files: Mapping[str, str], spec: Mapping, out: Mapping[str, str], *,
                cfg: Mapping, scale_label: str, regressor: str | Path | None = None,
                device: str = "auto") -> dict[str, pd.DataFrame]:
    """S0's evaluation of one (conditional) VAE experiment: prediction vs undegraded original.

    Per test slice: basal ganglia segmented in prediction and original with the same settings
    (``cfg['bg_segmentation']``, no anatomical search mask: the whole hemisphere), Anatomy
    Shape Precision (AP, LAT, DLT, DRT, centre of mass, px, on the displayed image) and Dice
    per side; slice binding ratios of both (:func:`slice_binding_ratios`, both measured in
    the original's segmentation) with their error, the fraction of cases under each
    ``cfg['sbr_error_thresholds']`` and a Bland-Altman analysis.

    With ``regressor`` (the ``best.pt`` of :func:`spectsynth.sbr_regressor.train_sbr_regressor`)
    also S0's own binding-ratio match: the regression CNN reads the SBR of every prediction and
    every original slice (:func:`sbr_cnn_readings`; known SBR from the dataset index), and the
    fraction of cases under each threshold is reported for the prediction and, as the
    yardstick, for the CNN on the originals.  These are checked and computed first, so a
    missing SBR column or a slice size the CNN was not trained on stops the evaluation before
    any file is written.  ``device`` runs the CNN (``auto``: CUDA when present).

    ``out``: ``asp``, ``asp_summary``, ``dice``, ``dice_summary``, ``sbr``, ``sbr_error``,
    ``bland_altman``, ``bland_altman_plot``, ``examples``, ``not_computed``; with
    ``regressor`` also ``sbr_cnn``, ``sbr_cnn_error`` (tables) and ``sbr_cnn_plot`` (figure).
    """
    notes: list[dict] = []
    seg_cfg = cfg["bg_segmentation"]
    conv = cfg["display_convention"]
    arrays, table = _load_paired(experiment, files)
    cnn = cnn_frac = None
    if regressor is not None:
        missing = [k for k in ("sbr_cnn", "sbr_cnn_error", "sbr_cnn_plot") if k not in out]
        if missing:
            raise EvaluationError(f"a regressor was given but no output path for {missing}", experiment=experiment,
                                  hint="Pass sbr_cnn, sbr_cnn_error and sbr_cnn_plot in the outputs")
        cnn = sbr_cnn_readings(experiment, arrays, table, regressor, batch_size=int(cfg.get("batch_size", 64)),
                               device=device)
        cnn_frac = sbr_cnn_error_fractions(cnn, thresholds=cfg["sbr_error_thresholds"], experiment=experiment)
    pred = shard_to_ras(np.asarray(arrays["prediction"], dtype=np.float64)[:, 0])
    orig = shard_to_ras(np.asarray(arrays["target"], dtype=np.float64)[:, 0])
    asp_parts, dice_parts, sbr_rows = [], [], []
    for i, row in table.iterrows():
        subject = str(row["subject"])
        case = f"{row.get('desc', '')}#{row['pred_row']}"
        kw = dict(fraction=float(seg_cfg["threshold_fraction"]), min_size_px=int(seg_cfg["min_size_px"]),
                  dilate_px=0, experiment=experiment, subject=subject)
        res = _attempt(notes, "S0", f"ASP/Dice {experiment} subject {subject} case {case}",
                       M.basal_ganglia_agreement, pred[i], orig[i], convention=conv, case=case, **kw)
        if res is None:
            continue
        asp_parts.append(res[0])
        dice_parts.append(res[1])
        seg_o = M.segment_basal_ganglia(orig[i], **kw)
        ratios = _attempt(notes, "S0", f"SBR {experiment} subject {subject} case {case}",
                          _pair_ratios, pred[i], orig[i], seg_o, experiment=experiment, subject=subject)
        if ratios is None:
            continue
        for side in M.SIDES:
            sbr_rows.append({"experiment": experiment, "subject": subject, "case": case, "side": side,
                             "sbr_original": ratios[1][side], "sbr_prediction": ratios[0][side],
                             "error": ratios[0][side] - ratios[1][side],
                             "abs_error": abs(ratios[0][side] - ratios[1][side])})
    if not asp_parts:
        raise EvaluationError("no test slice could be segmented (see the log)", experiment=experiment,
                              hint="Check the predictions and evaluate.bg_segmentation")
    asp = pd.concat(asp_parts, ignore_index=True)
    dice = pd.concat(dice_parts, ignore_index=True)
    sbr = pd.DataFrame(sbr_rows, columns=["experiment", "subject", "case", "side", "sbr_original",
                                          "sbr_prediction", "error", "abs_error"])
    write_table(asp, out["asp"], what="S0 anatomy shape precision")
    write_table(dice, out["dice"], what="S0 Dice")
    write_table(sbr, out["sbr"], what="S0 slice binding ratios")
    empty = pd.DataFrame(columns=["experiment", "value", "n", "mean", "sd", "min", "max", "mean_sd"])
    asp_sum = _attempt(notes, "S0", "ASP summary", S.summary_table, asp, ["abs_difference", "difference"],
                       by=["side", "measure"], experiment=experiment)
    write_table(asp_sum if asp_sum is not None else empty, out["asp_summary"], what="S0 ASP summary")
    dice_sum = _attempt(notes, "S0", "Dice summary", S.summary_table, dice, ["dice"], by=["side"],
                        experiment=experiment)
    write_table(dice_sum if dice_sum is not None else empty, out["dice_summary"], what="S0 Dice summary")
    frac = _attempt(notes, "S0", "SBR error fractions", M.sbr_error_fractions, sbr["sbr_prediction"],
                    sbr["sbr_original"], thresholds=tuple(cfg["sbr_error_thresholds"]),
                    experiment=experiment) if len(sbr) else None
    write_table(frac if frac is not None else pd.DataFrame(columns=["experiment", "threshold"]),
                out["sbr_error"], what="S0 SBR error fractions")
    label = figure_label(scale_label, int(table["subject"].nunique()), [spec])
    title = f"S0 {experiment}: slice binding ratio, prediction vs original"
    ba = _attempt(notes, "S0", "Bland-Altman", S.bland_altman, sbr["sbr_prediction"], sbr["sbr_original"],
                  experiment=experiment, label="predicted vs original slice SBR",
                  loa_z=float(cfg["loa_z"])) if len(sbr) else None
    if ba is not None:
        write_table(S.records_frame([ba]), out["bland_altman"], what="S0 Bland-Altman")
        fig = P.bland_altman_plot(sbr["sbr_prediction"], sbr["sbr_original"], subtitle=label, title=title,
                                  experiment=experiment, label="predicted vs original slice SBR",
                                  xlabel="mean of predicted and original SBR",
                                  ylabel="predicted - original SBR", loa_z=float(cfg["loa_z"]))
    else:
        write_table(pd.DataFrame(columns=["experiment", "label"]), out["bland_altman"],
                    what="S0 Bland-Altman")
        fig = _message_figure("Bland-Altman analysis not computed (see not_computed.tsv).", label, title)
    P.save_figure(fig, out["bland_altman_plot"], dpi=int(cfg["figure_dpi"]))
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
    write_table(_notes_frame(notes), out["not_computed"], what="S0 statistics not computed")
    return result
