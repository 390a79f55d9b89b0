"""S0's binding-ratio regression CNN: reads the striatal binding ratios (SBR) from one DaT slice.

S0 checked the "binding-ratio match" of its predicted normal slices with a regression CNN
trained to read the SBR from a slice, and reported the fraction of cases with an SBR error
under 0.75.  This module is that CNN, trained on the S0 dataset's own simulated slices, whose
SBR is known: :func:`spectsynth.studies.s0.S0.entries` puts the measured volumetric SBR of each
damaged volume (index columns ``sbr_<region>``) and of its undegraded original
(``orig_sbr_<region>``) into the dataset index, for the regions caudate L/R and putamen L/R.

Data
----
Every slice of the S0 train shard is one example: the damaged slice with its own SBR and the
original slice with the original's (so each original appears once per degradation of its
subject, each time scaled by that degradation's background, see :mod:`spectsynth.datasets`:
pixel values are ~1 + binding).  Training draws a horizontal flip with probability 1/2 per
example and epoch and swaps the left/right targets with it (a mirrored brain is a brain with
its sides exchanged).  The order and the flips come from ``numpy.random.default_rng([seed,
epoch])``, the initial weights from ``torch.manual_seed(seed)``: one seed, identical weights
on the CPU.

Network
-------
The input is shifted by -1, so the brain background is ~0 and the striatum ~its binding.
``n_blocks`` blocks (2 at 16 px, 3 at 32 px, 4 from 64 px) of a 3x3 convolution with SiLU
and a 2x2 average pooling (channels ``base_channels`` x 1, 2, 4, 4), global average pooling
and a linear head with 4 outputs.  Two coordinate channels (column and row position, -1..1)
are appended to the input: global average pooling alone cannot tell a left striatum from a
right one.  There is no normalisation layer on purpose: a per-image normalisation
(instance/group norm) divides out the very contrast between striatum and background that
encodes the SBR, and batch norm would make a prediction depend on the batch statistics of a
few dozen slices.  Convolutions start from He (Kaiming) normal weights and zero biases.  The
targets are standardised with the training set's mean and SD (kept as buffers of the
network, so its output is in SBR units); the loss is the mean squared error of the
standardised targets.  One convolution per block rather than two: on the demo's 64 px slices
that is ~3x cheaper on the CPU (about 0.8 s per epoch on one thread) for a validation error
within 0.01 SBR of the deeper variant.  Use one CPU thread per job on a shared machine
(``training.threads``): two threads competing with other jobs made epochs several times slower.

Selection
---------
After every epoch the validation shard is read: mean absolute error per region over all its
slices, and the mean over regions of the damaged slices alone, which selects the saved
weights (lowest wins).  S0's validation split holds other degradations of the training
subjects, so its *original* slices repeat training scans; the damaged ones are unseen
degradations.  The honest yardstick of the CNN is its error on the originals of the test
subjects, which :func:`spectsynth.studies.s0.evaluate.evaluate_s0` reports next to the predictions'.

Outputs (``out_dir``): ``best.pt`` (a :mod:`spectsynth.checkpoints` file of kind
``sbr_regressor``, loadable with ``torch.load(weights_only=True)``; SHA-256 checked by
:func:`load_sbr_regressor`), ``training.tsv`` (one row per epoch) and
``learning_curve.png``; each is written to a temporary name and renamed, so a killed run
leaves no half-written file.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ...artifacts import regressor_files, regressor_files_in
from ...config import fragment_defaults
from ...errors import EvaluationError
from ...io import save_figure, write_table
from . import ORIG_SBR_PREFIX, SBR_PREFIX, SBR_REGIONS

log = logging.getLogger(__name__)

EXPERIMENT = "sbr_regressor"
REGIONS = SBR_REGIONS
KIND = "sbr_regressor"
# The regressor's settings (evaluate.sbr_regressor), declared in S0's options.yaml.
DEFAULTS: dict[str, Any] = fragment_defaults(Path(__file__).with_name("options.yaml"), "evaluate.sbr_regressor")
# Column order after a horizontal flip (left <-> right of each structure).
_FLIP = [REGIONS.index(r[:-1] + {"L": "R", "R": "L"}[r[-1]]) for r in REGIONS]

__all__ = ["SBRRegressor", "train_sbr_regressor", "load_sbr_regressor", "predict_sbr", "sbr_columns",
           "check_sbr_columns", "shard_examples", "plot_learning_curve", "regressor_settings", "REGIONS",
           "DEFAULTS", "EXPERIMENT"]


def sbr_columns(prefix: str = SBR_PREFIX) -> list[str]:
    """Index columns of the known SBR: ``sbr_<region>`` (damaged) or ``orig_sbr_<region>``."""
    return [f"{prefix}{r}" for r in REGIONS]


def n_blocks_for(size: int) -> int:
    """Conv blocks for ``size`` px slices: 2 up to 16 px, 3 at 32, 4 from 64."""
    return int(min(4, max(2, round(np.log2(max(int(size), 4))) - 2)))


# --------------------------------------------------------------------------- network


class SBRRegressor(nn.Module):
    """Small regression CNN: (N, 1, H, W) slices -> (N, 4) SBR (caudate L/R, putamen L/R)."""

    def __init__(self, base_channels: int = 16, n_blocks: int = 3, size: int = 64, n_outputs: int = len(REGIONS)):
        super().__init__()
        self.size = int(size)
        self.base_channels = int(base_channels)
        self.n_blocks = int(n_blocks)
        layers: list[nn.Module] = []
        c_in = 3                                   # slice + column and row coordinates
        for i in range(self.n_blocks):
            c_out = self.base_channels * 2 ** min(i, 2)
            conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.SiLU(), nn.AvgPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, int(n_outputs))
        self.register_buffer("target_mean", torch.zeros(int(n_outputs)))
        self.register_buffer("target_std", torch.ones(int(n_outputs)))

    def config(self) -> dict[str, int]:
        return {"base_channels": self.base_channels, "n_blocks": self.n_blocks, "size": self.size,
                "n_outputs": int(self.head.out_features)}

    @staticmethod
    def _coords(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        rows = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        return torch.cat([x, cols, rows], 1)

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """Output in standardised target units (what the loss sees)."""
        f = self.features(self._coords(x - 1.0))
        return self.head(f.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """SBR per region (the training set's mean and SD undone)."""
        return self.standardised(x) * self.target_std + self.target_mean


# --------------------------------------------------------------------------- data


def _read_index(index_tsv: str | Path, experiment: str) -> pd.DataFrame:
    path = Path(index_tsv)
    if not path.exists():
        raise EvaluationError(f"dataset index {path} does not exist", experiment=experiment,
                              hint="Run the build_dataset rule of dataset s0 first")
    table = pd.read_csv(path, sep="\t", dtype={"subject": str}, keep_default_na=False)
    if "row" not in table.columns:
        raise EvaluationError(f"dataset index {path} has no 'row' column", experiment=experiment,
                              hint="Rebuild dataset s0")
    return table


def check_sbr_columns(table: pd.DataFrame, prefixes: tuple[str, ...], *, experiment: str, where: str) -> None:
    """Stop with one line when ``table`` lacks known-SBR columns or holds non-finite values."""
    need = [c for p in prefixes for c in sbr_columns(p)]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise EvaluationError(
            f"{where} lacks the known-SBR column(s) {missing}", experiment=experiment,
            hint="Rebuild dataset s0 (spectsynth.studies.s0 takes them from the simulation truth tables' "
                 "meas_sbr_* columns) and rerun what reads it")
    vals = table[need].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    if not np.all(np.isfinite(vals)):
        bad = sorted({need[j] for j in np.flatnonzero(~np.isfinite(vals).all(axis=0))})
        raise EvaluationError(f"{where} holds missing or non-numeric known SBR in {bad}", experiment=experiment,
                              hint="Rerun the simulation of the affected subjects and rebuild dataset s0")


def shard_examples(shard_path: str | Path, index: pd.DataFrame, *, experiment: str = EXPERIMENT
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Examples of one S0 shard: ``x`` (2N, 1, H, W) float32 (the N damaged slices, then the N
    originals), ``y`` (2N, 4) float32 known SBR, ``is_damaged`` (2N,) bool."""
    from ...datasets import SliceShard

    shard = SliceShard(shard_path)
    missing_ch = [c for c in ("damaged", "original") if c not in shard.channels]
    if missing_ch:
        raise EvaluationError(f"{shard_path} has channels {shard.channels}, not S0's damaged/original",
                              experiment=experiment, hint="Give the regressor the shards of dataset s0")
    check_sbr_columns(index, (SBR_PREFIX, ORIG_SBR_PREFIX), experiment=experiment, where="the dataset index")
    rows = np.asarray(shard.rows, dtype=np.int64)
    lookup = index.set_index(index["row"].astype(np.int64))
    absent = np.setdiff1d(rows, lookup.index.to_numpy())
    if absent.size:
        raise EvaluationError(f"{shard_path}: {absent.size} slice(s) have no row in the dataset index "
                              f"(first: {int(absent[0])})", experiment=experiment,
                              hint="Index and shards come from different builds; rebuild dataset s0")
    images = shard.all_images()
    d, o = shard.channel_index(["damaged", "original"])
    x = np.concatenate([images[:, d:d + 1], images[:, o:o + 1]], 0).astype(np.float32)
    y_d = lookup.loc[rows, sbr_columns(SBR_PREFIX)].to_numpy(np.float32)
    y_o = lookup.loc[rows, sbr_columns(ORIG_SBR_PREFIX)].to_numpy(np.float32)
    y = np.concatenate([y_d, y_o], 0)
    is_damaged = np.concatenate([np.ones(len(rows), bool), np.zeros(len(rows), bool)])
    if not np.all(np.isfinite(x)):
        raise EvaluationError(f"{shard_path} holds NaN/Inf pixels", experiment=experiment,
                              hint="Rebuild dataset s0")
    return x, y, is_damaged


# --------------------------------------------------------------------------- training


def _predict(model: nn.Module, x: np.ndarray, batch_size: int, device) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for a in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[a:a + batch_size])).to(device)
            out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out, 0) if out else np.zeros((0, len(REGIONS)), np.float32)


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    write_table(table, path, what=f"SBR regressor table {Path(path).name}", float_format="%.6g",
                allow_missing=True)


def train_sbr_regressor(train_h5: str | Path, val_h5: str | Path, index_tsv: str | Path, out_dir: str | Path, *,
                        epochs: int = DEFAULTS["epochs"], batch_size: int = DEFAULTS["batch_size"],
                        base_channels: int = DEFAULTS["base_channels"], lr: float = DEFAULTS["lr"],
                        seed: int = 0, device: str = "auto", threads: int | None = None, flip: bool = True,
                        progress: bool = True, scale_label: str = "", experiment: str = EXPERIMENT) -> dict:
    """Train the SBR regression CNN on S0's train shard, select on its val shard, write outputs.

    Parameters
    ----------
    train_h5, val_h5, index_tsv:
        The S0 dataset's ``train.h5``, ``val.h5`` and ``index.tsv`` (with the known-SBR columns).
    out_dir:
        Gets ``best.pt``, ``training.tsv`` and ``learning_curve.png`` (see the module docstring).
    epochs, batch_size, base_channels, lr:
        Adam's learning rate and the schedule (config ``evaluate.sbr_regressor``).
    seed:
        Initial weights, data order and flips.
    device:
        ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:N]``.
    threads:
        CPU threads for torch (the rule's ``threads``); None leaves torch's setting.
    flip:
        Random horizontal flips with swapped left/right targets.
    scale_label:
        ``report.scale_label``, printed under the learning curve.

    Returns a summary: selected epoch, its validation MAE per region, sizes, device, seconds.
    """
    from ...checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint, seed_everything
    from ...device import select_device
    from ...progress import progress_bar

    t0 = time.perf_counter()
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("base_channels", base_channels)):
        if int(value) < 1:
            raise EvaluationError(f"{name} must be >= 1, got {value}", experiment=experiment,
                                  hint="Fix evaluate.sbr_regressor in the configuration")
    if not float(lr) > 0:
        raise EvaluationError(f"lr must be > 0, got {lr}", experiment=experiment,
                              hint="Fix evaluate.sbr_regressor.lr in the configuration")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    setup = select_device(device, amp="off", context=f"experiment {experiment}")
    dev = setup.device
    index = _read_index(index_tsv, experiment)
    x_tr, y_tr, _ = shard_examples(train_h5, index, experiment=experiment)
    x_va, y_va, dam_va = shard_examples(val_h5, index, experiment=experiment)
    if len(x_tr) == 0 or len(x_va) == 0:
        raise EvaluationError(f"the {'training' if len(x_tr) == 0 else 'validation'} shard of dataset s0 is empty "
                              f"({train_h5 if len(x_tr) == 0 else val_h5})", experiment=experiment,
                              hint="Give dataset s0 more subjects or degradations (datasets.s0.split)")
    if x_tr.shape[2] != x_tr.shape[3] or x_tr.shape[2:] != x_va.shape[2:]:
        raise EvaluationError(f"training slices {x_tr.shape[2:]} and validation slices {x_va.shape[2:]} must be "
                              "square and of one size", experiment=experiment, hint="Rebuild dataset s0")
    size = int(x_tr.shape[-1])
    seed = int(seed)
    seed_everything(seed)
    model = SBRRegressor(int(base_channels), n_blocks_for(size), size)
    mean = y_tr.mean(0)
    std = np.maximum(y_tr.std(0), 1e-3)
    model.target_mean.copy_(torch.from_numpy(mean.astype(np.float32)))
    model.target_std.copy_(torch.from_numpy(std.astype(np.float32)))
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    bs = int(batch_size)
    y_tr_std = ((y_tr - mean) / std).astype(np.float32)
    log.info("experiment %s: %d training / %d validation slices of %d px (damaged and originals) on %s; "
             "%d conv blocks, %d base channels", experiment, len(x_tr), len(x_va), size, setup.describe(),
             model.n_blocks, model.base_channels)
    rows: list[dict] = []
    best: dict[str, Any] = {}
    best_state: dict[str, torch.Tensor] | None = None
    bar = progress_bar(progress, int(epochs), 0, experiment)
    for epoch in range(int(epochs)):
        t_ep = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x_tr))
        flips = rng.random(len(x_tr)) < 0.5 if flip else np.zeros(len(x_tr), bool)
        model.train()
        total, n_seen = 0.0, 0
        for a in range(0, len(order), bs):
            idx = order[a:a + bs]
            xb, yb = x_tr[idx].copy(), y_tr_std[idx].copy()
            fb = flips[idx]
            xb[fb] = xb[fb][..., ::-1]
            yb[fb] = yb[fb][:, _FLIP]
            xt = torch.from_numpy(np.ascontiguousarray(xb)).to(dev)
            yt = torch.from_numpy(yb).to(dev)
            loss = torch.mean((model.standardised(xt) - yt) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            n_seen += len(idx)
        pred = _predict(model, x_va, bs, dev)
        err = np.abs(pred - y_va)
        row = {"epoch": epoch + 1, "train_loss": total / max(1, n_seen)}
        row.update({f"val_mae_{r}": float(err[:, j].mean()) for j, r in enumerate(REGIONS)})
        row["val_mae_mean"] = float(err.mean())
        row["val_mae_damaged"] = float(err[dam_va].mean()) if dam_va.any() else float(err.mean())
        row["val_mae_original"] = float(err[~dam_va].mean()) if (~dam_va).any() else float(err.mean())
        row["seconds"] = time.perf_counter() - t_ep
        if not np.isfinite(row["train_loss"]) or not np.isfinite(row["val_mae_damaged"]):
            raise EvaluationError(f"epoch {epoch + 1}: the loss or the validation error is not finite",
                                  experiment=experiment, hint="Lower evaluate.sbr_regressor.lr")
        if not best or row["val_mae_damaged"] < best["val_mae_damaged"]:
            best = dict(row)
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        rows.append(row)
        log.info("experiment %s: epoch %d/%d train loss %.4g, validation MAE %s (damaged %.3f)", experiment,
                 epoch + 1, epochs, row["train_loss"],
                 ", ".join(f"{r} {row[f'val_mae_{r}']:.3f}" for r in REGIONS), row["val_mae_damaged"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val_mae=f"{row['val_mae_damaged']:.3f}")
    if bar is not None:
        bar.close()
    assert best_state is not None
    history = pd.DataFrame(rows)
    history["selected"] = history["epoch"] == best["epoch"]
    n_subjects = int(index.loc[index["split"].isin(["train", "val"]), "subject"].nunique()) \
        if "split" in index.columns else 0
    ckpt = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "kind": KIND, "experiment": experiment,
            "regions": list(REGIONS), "config": json.dumps(model.config(), sort_keys=True),
            "state_dict": best_state, "epoch": int(best["epoch"]), "seed": seed,
            "val_mae": {r: float(best[f"val_mae_{r}"]) for r in REGIONS},
            "val_mae_damaged": float(best["val_mae_damaged"]), "n_train": int(len(x_tr)),
            "torch_version": str(torch.__version__)}
    files = regressor_files_in(out_dir)
    save_checkpoint(ckpt, Path(files.best))
    _write_tsv(history, Path(files.training))
    plot_learning_curve(history, Path(files.learning_curve), experiment=experiment,
                        scale_label=scale_label, n_subjects=n_subjects, n_train=len(x_tr), n_val=len(x_va))
    wall = time.perf_counter() - t0
    log.info("experiment %s: selected epoch %d (validation MAE on damaged slices %.3f) in %.1f s", experiment,
             best["epoch"], best["val_mae_damaged"], wall)
    return {"experiment": experiment, "best_epoch": int(best["epoch"]),
            "val_mae": {r: float(best[f"val_mae_{r}"]) for r in REGIONS},
            "val_mae_mean": float(best["val_mae_mean"]), "val_mae_damaged": float(best["val_mae_damaged"]),
            "n_train": int(len(x_tr)), "n_val": int(len(x_va)), "size": size, "device": setup.describe(),
            "seconds": wall, "files": {k: str(Path(f)) for k, f in
                                       (("best", files.best), ("training", files.training),
                                        ("curve", files.learning_curve))}}


def plot_learning_curve(history: pd.DataFrame, path: str | Path, *, experiment: str = EXPERIMENT,
                        scale_label: str = "", n_subjects: int = 0, n_train: int = 0, n_val: int = 0,
                        dpi: int = 120) -> Path:
    """Training loss and validation MAE per region per epoch; the selected epoch marked.

    Drawn on a bare Agg :class:`~matplotlib.figure.Figure` with the layout and the data label
    of :mod:`spectsynth.plots` (which is not imported: it needs statsmodels, which the training
    environment does not carry).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = int(history["epoch"].max()) if len(history) else 0
    scale = scale_label or "unlabelled scale"
    if not scale.endswith("scale") and "scale" not in scale:
        scale = f"{scale} scale"
    label = " · ".join(["simulated data", scale, f"{n_subjects} subject{'s' if n_subjects != 1 else ''}",
                        f"{epochs} epoch{'s' if epochs != 1 else ''}",
                        f"{n_train} training / {n_val} validation slices"])
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_l, ax_v = fig.subplots(1, 2)
    ax_l.plot(history["epoch"], history["train_loss"], marker="o", ms=3, lw=1.2, color="C0")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("MSE of standardised SBR")
    ax_l.set_title("training loss", fontsize=10)
    for j, r in enumerate(REGIONS):
        ax_v.plot(history["epoch"], history[f"val_mae_{r}"], marker="o", ms=2, lw=1, color=f"C{j}",
                  label=r.replace("_", " "))
    ax_v.plot(history["epoch"], history["val_mae_damaged"], lw=2, color="k", ls="--",
              label="mean, damaged slices (selects)")
    ax_v.set_xlabel("epoch")
    ax_v.set_ylabel("mean absolute SBR error")
    ax_v.set_title("validation", fontsize=10)
    ax_v.legend(fontsize=7, loc="upper right")
    sel = history.loc[history["selected"].astype(bool), "epoch"] if "selected" in history else pd.Series([])
    for ax in (ax_l, ax_v):
        for e in sel:
            ax.axvline(float(e), color="tab:red", ls=":", lw=1)
    title = f"{experiment}: SBR regression CNN, learning curve"
    if len(sel):
        title += f" (red: selected epoch {int(sel.iloc[0])})"
    fig.suptitle(title, fontsize=12)
    fig.text(0.01, 0.0, label, fontsize=8, color="0.35", ha="left", va="bottom")
    fig.get_layout_engine().set(rect=(0, 0.035, 1, 0.965))
    return save_figure(fig, path, dpi=dpi, format="png")


# --------------------------------------------------------------------------- inference


def load_sbr_regressor(path: str | Path, device: str | torch.device = "cpu", *,
                       experiment: str = EXPERIMENT) -> SBRRegressor:
    """The trained CNN of a ``best.pt`` in eval mode on ``device`` (``auto``, ``cpu``, ``cuda``).

    The file is read with ``torch.load(weights_only=True)`` and its SHA-256 is checked; a
    missing, corrupt or foreign file raises :class:`EvaluationError` naming ``experiment``.
    """
    from ...checkpoints import CheckpointError, load_checkpoint

    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"SBR regressor weights {path} do not exist", experiment=experiment,
                              hint="Run the train_sbr_regressor rule first")
    try:
        ck = load_checkpoint(path)
    except CheckpointError as exc:
        # load_checkpoint's own hint is about resuming a training run; keep only the problem
        problem = str(exc).split(". Delete ", 1)[0]
        raise EvaluationError(f"SBR regressor weights: {problem}", experiment=experiment,
                              hint="Delete the file and rerun train_sbr_regressor") from exc
    if ck.get("kind") != KIND:
        raise EvaluationError(f"{path} is not SBR regressor weights (kind {ck.get('kind')!r})",
                              experiment=experiment, hint=f"Point to {regressor_files(None, EXPERIMENT).best}")
    cfg = json.loads(ck["config"])
    model = SBRRegressor(cfg["base_channels"], cfg["n_blocks"], cfg["size"], cfg.get("n_outputs", len(REGIONS)))
    try:
        model.load_state_dict(ck["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise EvaluationError(f"{path}: the weights do not fit the network they describe ({str(exc)[:160]})",
                              experiment=experiment, hint="Rerun train_sbr_regressor") from exc
    if isinstance(device, str):
        from ...device import select_device
        device = select_device(device, amp="off", context=f"experiment {experiment}").device
    model.to(device).eval()
    model.selected_epoch = int(ck.get("epoch", 0))
    return model


def predict_sbr(model: SBRRegressor, slices: np.ndarray, batch_size: int = 64, *,
                experiment: str = EXPERIMENT) -> pd.DataFrame:
    """SBR read by the CNN from ``slices`` (N, 1, H, W) in the S0 dataset's normalised units
    (background ~1, stored orientation): a DataFrame with one column per region."""
    arr = np.asarray(slices)
    size = int(getattr(model, "size", 0))
    if arr.ndim != 4 or arr.shape[1] != 1 or (size and arr.shape[2:] != (size, size)):
        want = f"(N, 1, {size}, {size})" if size else "(N, 1, H, W)"
        raise EvaluationError(f"the SBR regressor reads slices of shape {want}, got {arr.shape}",
                              experiment=experiment,
                              hint="Train the regressor on the dataset the predictions come from (datasets.s0.size)")
    if not np.all(np.isfinite(arr)):
        raise EvaluationError(f"{int((~np.isfinite(arr)).sum())} pixels given to the SBR regressor are NaN/Inf",
                              experiment=experiment, hint="Check the predictions")
    if int(batch_size) < 1:
        raise EvaluationError(f"batch size must be positive, got {batch_size}", experiment=experiment)
    device = next(model.parameters()).device
    pred = _predict(model, arr.astype(np.float32), int(batch_size), device)
    if not np.all(np.isfinite(pred)):
        raise EvaluationError("the SBR regressor returned NaN/Inf", experiment=experiment,
                              hint="Its weights are broken; rerun train_sbr_regressor")
    return pd.DataFrame(pred.astype(np.float64), columns=list(REGIONS))


def regressor_settings(cfg: Mapping | None) -> dict[str, Any]:
    """``evaluate.sbr_regressor`` merged over :data:`DEFAULTS`."""
    out = copy.deepcopy(DEFAULTS)
    out.update({k: v for k, v in (cfg or {}).items() if v is not None})
    return out
