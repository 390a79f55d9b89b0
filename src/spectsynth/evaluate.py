"""What every study's evaluation shares: prediction files -> per-slice metrics, the training split's
baselines, the not-computed notes, figure labels and the slice orientation.

Each study's evaluation (``spectsynth.studies.<key>.evaluate``) reads the prediction files written
by :func:`spectsynth.infer.predict_experiment` (and, for S1, the real test slices), computes its
metrics with :mod:`spectsynth.metrics`, its statistics with :mod:`spectsynth.stats` and its
figures with :mod:`spectsynth.plots` through the helpers here, and writes them to the output
paths its rule gives it.

Statistics that cannot be computed on the data at hand (too few samples, an empty group,
constant values) are never written as NaN: they are listed, with the reason, in the study's
``not_computed.tsv`` and left out of the result tables.  Every table is checked for NaN
before it is written (:func:`spectsynth.io.write_table`).

Slices in the shards are stored anterior-up with the subject's left in the left half
(neurological, see :mod:`spectsynth.datasets`); :func:`shard_to_ras` turns them back into
axial RAS slices ``(x, y)``, the layout :mod:`spectsynth.metrics` and :mod:`spectsynth.plots`
expect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from . import plots as P
from .datasets import shard_to_ras  # noqa: F401  (the studies' evaluations read it from here)
from .errors import EvaluationError, context
from .infer import load_predictions

log = logging.getLogger(__name__)

PAIRED_METRICS = ("rmse", "ssim", "psnr")
# the same inside the brain (the T1w brain mask, zero padding cropped): what verdicts use
BRAIN_METRICS = ("rmse_brain", "ssim_brain", "psnr_brain")
FLOOR_BACKGROUND = "floor: all background"
FLOOR_OUTLINE = "floor: outline only"
BACKGROUND_VALUE = -1.0   # the lower bound of the (-1, 1) slices: the value of empty space
NOT_COMPUTED_COLUMNS = ["study", "what", "reason"]


# ----------------------------------------------------------------------------- helpers
def study_experiments(experiments: Mapping[str, Mapping], study: str) -> list[str]:
    """Names of the enabled experiments of one study (``S0`` .. ``S3``), sorted."""
    return sorted(name for name, spec in experiments.items() if spec.get("study") == study)


def with_columns(table: pd.DataFrame, *, at: int = 0, **columns) -> pd.DataFrame:
    """``table`` with ``columns`` (name -> one value for every row) inserted in order from
    column position ``at`` (default: first).

    Metrics and statistics return their rows without pipeline context; the evaluation adds
    the experiment (and subject) it computed them for.
    """
    out = table.copy()
    for pos, (name, value) in enumerate(columns.items(), start=at):
        out.insert(pos, name, value)
    return out


def notes_frame(notes: Sequence[Mapping]) -> pd.DataFrame:
    return pd.DataFrame(list(notes), columns=NOT_COMPUTED_COLUMNS)


def attempt(notes: list, study: str, what: str, fn: Callable, *args, **kwargs):
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


def message_figure(text: str, subtitle: str, title: str):
    fig = P._figure(6.0, 2.5)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    P._stamp(fig, title, subtitle)
    return fig


def load_paired(experiment: str, files: Mapping[str, str]) -> tuple[dict, pd.DataFrame]:
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
    with subject and slice_index from the prediction table.

    When ``arrays`` holds ``brain`` (the T1w brain mask the dataset stores beside the slices and
    inference carries into the prediction file), also the in-brain ``rmse_brain, ssim_brain,
    psnr_brain`` and ``brain_fraction`` (:func:`spectsynth.metrics.masked_metrics`)."""
    src = np.asarray(arrays[against], dtype=np.float64)[:, 0]
    tgt = np.asarray(arrays["target"], dtype=np.float64)[:, 0]
    brain = np.asarray(arrays["brain"], dtype=np.float64)[:, 0] if "brain" in arrays else None
    parts = []
    for subject, sub in table.groupby("subject", sort=True):
        idx = sub.index.to_numpy()
        with context(experiment=experiment, subject=str(subject)):
            part = M.slice_metrics(src[idx], tgt[idx], data_range=data_range,
                                   slice_ids=sub["slice_index"].tolist(), win_size=win_size,
                                   masks=None if brain is None else brain[idx])
        part = with_columns(part, experiment=experiment, subject=str(subject)).rename(columns={"slice": "slice_index"})
        part["pred_row"] = idx
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["rank"] = out.groupby("subject")["slice_index"].rank(method="first").astype(int)
    return out


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




# ----------------------------------------------------------------------------- floors
def background_floor(shape: Sequence[int], value: float = BACKGROUND_VALUE) -> np.ndarray:
    """The all-background floor: every pixel at the background value (``(N, H, W)``)."""
    return np.full(tuple(shape), float(value), dtype=np.float64)


def outline_sigmas(size: int) -> tuple[float, ...]:
    """Candidate blur widths (px) of the outline floor for ``size``-px slices (1/128 .. 1/16 of the side)."""
    return tuple(float(size) * f for f in (1 / 128, 1 / 64, 1 / 32, 1 / 16))


def _blur(masks: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    m = M.brain_mask(masks).astype(np.float64)
    return ndimage.gaussian_filter(m, sigma=(0, float(sigma), float(sigma)), mode="constant")


def fit_outline_floor(chunks, *, size: int, experiment: str = "") -> dict[str, float]:
    """The outline floor's rule, fitted on the training split only.

    ``chunks`` yields ``(n, 2, H, W)`` training arrays: the brain mask, then the target.  The
    floor is ``a + b * blur(mask, sigma)``: the input's brain outline, blurred, with no
    perfusion information; ``sigma`` (from :func:`outline_sigmas`), ``a`` and ``b`` are the
    least-squares choice over every training pixel.  Returns ``{"sigma", "a", "b"}``.
    """
    sigmas = outline_sigmas(size)
    acc = {s: np.zeros(6) for s in sigmas}   # n, sum x, sum y, sum xx, sum xy, sum yy
    for arr in chunks:
        y = np.asarray(arr[:, 1], dtype=np.float64)
        for s in sigmas:
            x = _blur(arr[:, 0], s)
            acc[s] += [x.size, x.sum(), y.sum(), (x * x).sum(), (x * y).sum(), (y * y).sum()]
    best = None
    for s, (n, sx, sy, sxx, sxy, syy) in acc.items():
        var = n * sxx - sx * sx
        if n < 2 or var <= 0:
            continue
        b = (n * sxy - sx * sy) / var
        a = (sy - b * sx) / n
        sse = syy - a * sy - b * sxy
        if best is None or sse < best[0]:
            best = (sse, {"sigma": float(s), "a": float(a), "b": float(b)})
    if best is None:
        raise EvaluationError("the outline floor needs training slices with a brain mask",
                              experiment=experiment, hint="Rebuild the dataset (its shards need the brain channel)")
    return best[1]


def outline_floor(masks: np.ndarray, rule: Mapping[str, float]) -> np.ndarray:
    """The outline floor of ``(N, H, W)`` masks with the rule :func:`fit_outline_floor` fitted."""
    return rule["a"] + rule["b"] * _blur(np.asarray(masks, dtype=np.float64), rule["sigma"])


def describe_outline(rule: Mapping[str, float]) -> str:
    return (f"{rule['a']:.3f} + {rule['b']:.3f} x brain mask blurred with sigma {rule['sigma']:.2g} px "
            "(least squares on the training split)")


def floor_metrics(experiment: str, arrays: Mapping[str, np.ndarray], table: pd.DataFrame,
                  rule: Mapping[str, float], *, data_range: float,
                  win_size: int | None = None) -> dict[str, pd.DataFrame]:
    """Per-slice metrics of the two floors on a run's test slices: :data:`FLOOR_BACKGROUND`
    (every pixel at the background value) and :data:`FLOOR_OUTLINE` (:func:`outline_floor`
    of the input's brain mask).  ``arrays`` needs ``target`` and ``brain``."""
    if "brain" not in arrays:
        raise EvaluationError("the prediction file holds no brain mask", experiment=experiment,
                              hint="Rebuild the dataset and rerun predict_experiment")
    tgt = np.asarray(arrays["target"], dtype=np.float64)
    masks = np.asarray(arrays["brain"], dtype=np.float64)[:, 0]
    series = {FLOOR_BACKGROUND: background_floor(tgt.shape), FLOOR_OUTLINE: outline_floor(masks, rule)[:, None]}
    out = {}
    for name, img in series.items():
        out[name] = paired_slice_metrics(experiment, {**arrays, "floor": img}, table, data_range=data_range,
                                         win_size=win_size, against="floor")
    return out
