"""One training loop for the VAE/cVAE (S0), the conditional FastGAN (S1) and pix2pix (S2, S3).

The family-specific steps are the family's recipe (``spectsynth.models.<family>.recipe``, a
:class:`spectsynth.recipe.Recipe` found through the model registry): its datasets, optimisation
step, validation and the networks that go into ``best.pt``.  This module owns what is the same
for every family: data order, learning-rate schedule, resuming, checkpoint cadence, history,
selection and the run's outputs.  Checkpoint content and files are :mod:`spectsynth.checkpoints`;
the outputs' paths are :mod:`spectsynth.artifacts`'s.

:func:`train_experiment` takes a resolved experiment spec (from
:func:`spectsynth.experiments.expand_experiments`) and the dataset shards, and writes under
``out_dir``::

    checkpoints/last.pt            full training state (resume point), every N epochs/steps
    checkpoints/epoch-XXXX.pt      the last ``keep_checkpoints`` epoch checkpoints
    checkpoints/best.pt            weights of the best validation epoch (kept across reruns)
    best.pt                        copy of checkpoints/best.pt (the rule's declared output)
    best-<criterion>.pt            FastGAN: the best epoch under each selection criterion
                                   (spectsynth.models.fastgan.GAN_CRITERIA); best.pt is the configured one
    selection.json                 metric, direction, chosen epoch and score, all scores (and
                                   per criterion for FastGAN)
    history.csv                    one row per epoch: losses, lr, score, time, data-wait share
                                   (pix2pix: each loss term's share of the generator loss)
    tensorboard/                   the same scalars for TensorBoard
    config.resolved.yaml           the resolved experiment spec and its config hash
    provenance.json                package versions, git commit, and the device, precision and versions
                                   that actually ran (one entry per change across a resume)
    loss_curve.png                 losses and validation score per epoch, best epoch marked

Checkpoints hold only tensors and plain containers (loadable with
``torch.load(weights_only=True)``): network, EMA, optimiser, scheduler and loss-scaler
states, epoch and step, the Python/NumPy/torch RNG states, the history and the config hash,
plus a SHA-256 over all of it that is checked on load, so a truncated or corrupted file is
reported and never used.  Files are written to a temporary name and renamed.

Rerunning after a kill resumes from ``last.pt`` and gives, on the CPU, bit-for-bit the weights
an uninterrupted run gives (the data order and augmentation are functions of seed, epoch and
slice; the RNG states are restored).  A checkpoint written under another configuration of
the same experiment (different config hash) is moved aside to ``checkpoints/stale-<hash>/``
and training starts afresh (``training.on_config_change: restart``) or stops
(``error``); a checkpoint of another experiment or model family always stops.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader

from .artifacts import EPOCH_GLOB, HISTORY, CheckpointFiles, ExperimentFiles, best_name, experiment_files_in
from .checkpoints import (
    CheckpointError,
    best_checkpoint,
    config_hash,
    load_checkpoint,
    load_scaler_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    training_checkpoint,
)
from .datasets import EpochSampler, SliceShard
from .device import compile_networks, select_device
from .errors import ConfigError, TrainingError
from .io import atomic_output, save_figure, write_csv, write_text
from .models import FAMILIES, build_model, get_family, init_weights
from .progress import progress_bar
from .recipe import Recipe, move_batch
from .selection import DIRECTION, is_better

log = logging.getLogger(__name__)

__all__ = ["train_experiment", "plot_history"]


# --------------------------------------------------------------------------- data


def _datasets(spec: dict, shards: Mapping[str, str | Path], dspec: Mapping):
    name = spec["experiment"]
    preload = float(spec["training"]["preload_max_mb"])
    missing = [s for s in ("train", "val") if s not in shards]
    if missing:
        raise TrainingError(f"experiment {name}: no shard given for split(s) {missing}")
    sh = {k: SliceShard(shards[k], preload_max_mb=preload) for k in ("train", "val")}
    seed = int(spec["seed"])
    for s in sh.values():
        if int(s.attrs.get("size", spec["size"])) != int(spec["size"]):
            raise TrainingError(f"experiment {name}: shard {s.path} holds {s.attrs.get('size')} px slices but "
                                f"the experiment expects {spec['size']} px; rebuild the dataset "
                                f"(datasets.{dspec['key']}.size)")
    train, val = get_family(spec["model"]).recipe().make_datasets(spec, sh, dspec, seed)
    bs = int(spec["batch_size"])
    for split, ds in (("train", train), ("val", val)):
        if len(ds) == 0:
            raise TrainingError(f"experiment {name}: the {split} split of dataset {spec['dataset']} is empty "
                                f"({sh[split].path}); add subjects or change datasets.*.split")
    if bs > len(train):
        raise TrainingError(f"experiment {name}: batch_size {bs} is larger than the training split "
                            f"({len(train)} slices in {sh['train'].path}); lower experiments.{spec['entry']}."
                            "batch_size or add subjects")
    return train, val, {k: s.fingerprint for k, s in sh.items()}


# --------------------------------------------------------------------------- outputs


def _write_history(rows: Sequence[Mapping], path: Path) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    write_csv([{k: r.get(k, "") for k in keys} for r in rows], path, keys)


def plot_history(rows: Sequence[Mapping], path: Path, *, experiment: str, metric: str,
                 best_epoch: int | None) -> None:
    """Loss curves (one panel per loss) and the validation score; the chosen epoch marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss_keys = [k for k in (rows[0] if rows else {}) if k.startswith(("loss", "G_", "D_", "recon", "kl"))
                 and k != "kl_weight"]
    n = len(loss_keys) + 1
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
    ep = [r["epoch"] for r in rows]
    for ax, k in zip(axes.flat, loss_keys + ["val_score"]):
        y = [float(r.get(k, "nan")) if r.get(k, "") != "" else np.nan for r in rows]
        ax.plot(ep, y, marker="o", ms=2, lw=1)
        ax.set_title(k if k != "val_score" else f"validation {metric} ({DIRECTION[metric]} is best)", fontsize=9)
        ax.set_xlabel("epoch")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:red", ls="--", lw=0.8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{experiment}: training history (red: selected epoch {best_epoch})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110, format="png")
    plt.close(fig)


def _write_yaml(obj: Any, path: Path) -> None:
    write_text(yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=True), path)


# --------------------------------------------------------------------------- harness


def train_experiment(spec: Mapping, shards: Mapping[str, str | Path], out_dir: str | Path, *,
                     dataset: Mapping, threads: int | None = None,
                     callbacks: Sequence[Callable[[dict], None]] = ()) -> dict:
    """Train (or resume) one experiment and write its outputs (see the module docstring).

    Parameters
    ----------
    spec:
        One value of :func:`spectsynth.models.expand_experiments`.
    shards:
        ``{"train": path, "val": path}`` of the experiment's dataset (``test`` is ignored).
    out_dir:
        ``results/experiments/<experiment>``.
    dataset:
        The resolved settings of the experiment's dataset (augmentation and condition settings;
        :func:`spectsynth.studies.dataset_spec`).
    threads:
        CPU threads for torch (the rule's ``threads``).
    callbacks:
        Called after every optimisation step (and after a due checkpoint was written) with
        ``{"epoch", "step_in_epoch", "global_step", "losses"}``.

    Returns the content of ``selection.json``.
    """
    spec = json.loads(json.dumps(spec))
    name = spec["experiment"]
    family = spec["model"]
    tcfg = spec["training"]
    out_dir = Path(out_dir)
    files = experiment_files_in(out_dir)
    ckpts = files.checkpoints
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    recipe_cls = _recipe_class(name, family)
    setup = select_device(tcfg["device"], amp=tcfg["amp"], channels_last=tcfg["channels_last"],
                          cudnn_benchmark=tcfg["cudnn_benchmark"], compile=tcfg["compile"],
                          context=f"experiment {name}")
    seed = int(spec["seed"])
    train_ds, val_ds, fingerprints = _datasets(spec, shards, dataset)
    chash = config_hash(spec, fingerprints)
    log.info("experiment %s: %s on %s; %d training / %d validation slices; config hash %s", name, family,
             setup.describe(), len(train_ds), len(val_ds), chash)

    seed_everything(seed)
    nets = build_model(family, spec)
    init_weights(nets)
    nets.to(setup.device)
    if setup.channels_last:
        nets.to(memory_format=torch.channels_last)
    recipe = recipe_cls(spec, nets, setup)
    # after the recipe: its own copies of a network (FastGAN's EMA generator) stay plain modules
    compile_networks(nets, setup.compile)
    epochs = int(spec["epochs"])
    decay_start = spec.get("lr_decay_start_epoch")

    def lr_factor(e: int) -> float:
        if decay_start is None or e < int(decay_start):
            return 1.0
        return max(0.0, 1.0 - (e - int(decay_start) + 1) / float(max(1, epochs - int(decay_start) + 1)))

    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, lr_factor) for k, o in recipe.optim.items()}

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best": {},
             "best_by": {}, "accum": {}, "data_wait": 0.0, "runtime": []}
    resumed = _maybe_resume(ckpts, name, family, chash, tcfg["on_config_change"], nets, recipe, scheds,
                            state)
    note_runtime(state, setup.record(), name=name)
    if not resumed:
        recipe.prepare(train_ds, val_ds)
    else:
        recipe.resumed(train_ds, val_ds)

    metric = spec["selection_metric"]
    writer = _tensorboard(Path(files.tensorboard), state["global_step"])
    bs = int(spec["batch_size"])
    steps_per_epoch = len(train_ds) // bs
    sampler = EpochSampler(len(train_ds), seed)
    ck_every = max(1, int(tcfg["checkpoint_every"]))
    ck_steps = int(tcfg["checkpoint_every_steps"])
    val_every = max(1, int(tcfg["validate_every"]))

    def save() -> None:
        save_checkpoint(training_checkpoint(name, family, chash, nets, recipe, scheds, state), Path(ckpts.last))

    # One loader for the whole run; its workers (if any) persist across epochs instead of being
    # forked again every epoch. What a batch holds does not depend on them: the sampler (in this
    # process) gives the epoch's order, and each item draws its augmentation from
    # default_rng([seed, epoch, index]), so a resumed run replays the same batches with any
    # number of workers. The loader's own generator keeps it off the global torch RNG.
    workers = int(tcfg["num_workers"])
    loader = DataLoader(train_ds, batch_size=bs, sampler=sampler, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=setup.is_cuda,
                        generator=torch.Generator().manual_seed(seed))
    try:
        for epoch in range(state["epoch"], epochs):
            sampler.set_epoch(epoch, start=state["step_in_epoch"] * bs)
            t_epoch = time.perf_counter()
            t_last = t_epoch
            bar = progress_bar(tcfg["progress"], steps_per_epoch, state["step_in_epoch"], f"{name} {epoch + 1}/{epochs}")
            for batch in loader:
                t_got = time.perf_counter()
                state["data_wait"] += t_got - t_last
                b = move_batch(batch, setup.device, setup.channels_last)
                progress = epoch + state["step_in_epoch"] / max(1, steps_per_epoch)
                losses = recipe.train_step(b, progress)
                acc = state["accum"]
                # accumulated where the losses are (float64): no host sync per step
                for k, v in losses.items():
                    acc[k] = acc.get(k, 0.0) + (v.detach().double() if torch.is_tensor(v) else float(v))
                acc["_n"] = acc.get("_n", 0) + 1
                state["step_in_epoch"] += 1
                state["global_step"] += 1
                if bar is not None:
                    bar.update(1)
                if ck_steps and state["global_step"] % ck_steps == 0:
                    save()
                if callbacks:
                    info = {"epoch": epoch, "step_in_epoch": state["step_in_epoch"],
                            "global_step": state["global_step"], "losses": {k: float(v) for k, v in losses.items()}}
                    for cb in callbacks:
                        cb(info)
                t_last = time.perf_counter()
            if bar is not None:
                bar.close()
            wall = time.perf_counter() - t_epoch
            row = _epoch_row(epoch, state, recipe, wall, steps_per_epoch * bs)   # lr of this epoch
            for s in scheds.values():
                s.step()
            if (epoch + 1) % val_every == 0 or epoch + 1 == epochs:
                v = recipe.validate(val_ds)
                row["val_score"] = v["score"]
                row.update({f"val_{k}": x for k, x in v.items() if k != "score" and "_" not in k})
                if is_better(metric, v["score"], state["best"].get("score")):
                    state["best"] = {"epoch": epoch + 1, "score": float(v["score"])}
                    save_checkpoint(best_checkpoint(name, family, chash, spec, recipe, epoch + 1, v["score"],
                                                    metric, spec.get("selection_criterion")), Path(ckpts.best()))
                # the best epoch under every criterion is kept, so the finding can be checked under each
                for crit in recipe.criteria():
                    val = float(v[f"score_{crit}"])
                    row[f"val_score_{crit}"] = val
                    if is_better(metric, val, state["best_by"].get(crit, {}).get("score")):
                        state["best_by"][crit] = {"epoch": epoch + 1, "score": val}
                        save_checkpoint(best_checkpoint(name, family, chash, spec, recipe, epoch + 1, val, metric,
                                                        crit), Path(ckpts.best(crit)))
            state["history"].append(row)
            state.update(epoch=epoch + 1, step_in_epoch=0, accum={}, data_wait=0.0)
            _log_epoch(writer, row)
            log.info("experiment %s: epoch %d/%d %s", name, epoch + 1, epochs,
                     " ".join(f"{k}={row[k]:.4g}" for k in row if isinstance(row[k], float)))
            if (epoch + 1) % ck_every == 0 or epoch + 1 == epochs:
                save()
                _keep_epoch_copy(ckpts, epoch + 1, int(tcfg["keep_checkpoints"]))
            _write_history(state["history"], Path(files.history))
    finally:
        if writer is not None:
            writer.close()
    return _finish(spec, files, state, chash, metric)


def _tensorboard(path: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; a broken install only loses the TB logs
        log.warning("tensorboard is not importable; TensorBoard logs are not written")
        return None
    return SummaryWriter(log_dir=str(path), purge_step=purge_step or None)


def _log_epoch(writer, row: Mapping) -> None:
    if writer is None:
        return
    for k, v in row.items():
        if isinstance(v, float) and np.isfinite(v) and k != "epoch":
            writer.add_scalar(k, v, row["epoch"])
    writer.flush()


def _epoch_row(epoch: int, state: dict, recipe: Recipe, wall: float, n_images: int) -> dict:
    acc = dict(state["accum"])
    n = max(1, acc.pop("_n", 0))
    row: dict[str, Any] = {"epoch": epoch + 1, "global_step": state["global_step"]}
    row.update({k: float(v) / n for k, v in acc.items()})   # one host sync per epoch
    row["lr"] = float(next(iter(recipe.optim.values())).param_groups[0]["lr"])
    row["epoch_seconds"] = float(wall)
    row["images_per_second"] = float(n_images / wall) if wall > 0 else float("nan")
    row["data_wait_share"] = float(state["data_wait"] / wall) if wall > 0 else float("nan")
    return row


def _recipe_class(name: str, family: str) -> type[Recipe]:
    if family not in FAMILIES:
        raise ConfigError(f"experiment {name}: unknown model {family!r}; choose one of {', '.join(FAMILIES)}")
    return get_family(family).recipe()


def _maybe_resume(ckpts: CheckpointFiles, name: str, family: str, chash: str, on_change: str,
                  nets: nn.ModuleDict, recipe: Recipe, scheds: Mapping, state: dict) -> bool:
    ckpt_dir = Path(ckpts.root)
    last = Path(ckpts.last)
    if not last.exists():
        return False
    ck = load_checkpoint(last, experiment=name)
    if ck.get("kind") == "best" or ck.get("experiment") != name or ck.get("family") != family:
        raise CheckpointError(
            f"experiment {name}: {last} belongs to experiment {ck.get('experiment')!r} (model "
            f"{ck.get('family')!r}), not to {name!r} ({family}). Move that folder away or give this "
            "experiment its own output folder")
    if ck["config_hash"] != chash:
        if on_change == "error":
            raise CheckpointError(
                f"experiment {name}: {last} was written with another configuration (hash "
                f"{ck['config_hash']}, now {chash}). Restore the old settings to resume, or set "
                "training.on_config_change: restart to train afresh")
        stale = Path(ckpts.stale(ck["config_hash"]))
        stale.mkdir(parents=True, exist_ok=True)
        for f in ckpt_dir.iterdir():
            if f.is_file():
                os.replace(f, stale / f.name)
        log.warning("experiment %s: the configuration changed since the last checkpoint (hash %s -> %s); "
                    "starting fresh. The old checkpoints were moved to %s", name, ck["config_hash"], chash, stale)
        return False
    try:
        for k, m in nets.items():
            m.load_state_dict(ck["nets"][k])
        for k, o in recipe.optim.items():
            o.load_state_dict(ck["optim"][k])
        for k, s in scheds.items():
            s.load_state_dict(ck["sched"][k])
        load_scaler_state(recipe.scaler, ck.get("scaler"))
        recipe.load_extra_state(ck["extra"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"experiment {name}: {last} does not fit the networks of this configuration "
                              f"({type(exc).__name__}: {str(exc)[:160]}). Delete {ckpt_dir} to train "
                              "afresh") from exc
    set_rng_state(ck["rng"])
    state.update(epoch=int(ck["epoch"]), step_in_epoch=int(ck["step_in_epoch"]),
                 global_step=int(ck["global_step"]), history=list(ck["history"]), best=dict(ck["best"]),
                 best_by={k: dict(v) for k, v in (ck.get("best_by") or {}).items()}, accum=dict(ck["accum"]), data_wait=float(ck.get("data_wait", 0.0)),
                 runtime=[dict(r) for r in ck.get("runtime") or []])
    log.info("experiment %s: resuming from %s (epoch %d, step %d of the epoch)", name, last, state["epoch"],
             state["step_in_epoch"])
    return True


def note_runtime(state: dict, record: dict, *, name: str = "") -> None:
    """Append what runs now (device, precision, versions; from which epoch and step) to the run's
    runtime record when it differs from the last entry; a change across a resume is logged."""
    runs = state.setdefault("runtime", [])
    now = {"from_epoch": int(state.get("epoch", 0)), "from_step": int(state.get("global_step", 0)), **record}
    if runs:
        last = {k: v for k, v in runs[-1].items() if k not in ("from_epoch", "from_step")}
        if last == record:
            return
        log.warning("experiment %s: resumed on %s (%s) after %s (%s); the record in provenance.json lists both",
                    name, record["device"], record["precision"], last.get("device"), last.get("precision"))
    runs.append(now)


def _keep_epoch_copy(ckpts: CheckpointFiles, epoch: int, keep: int) -> None:
    if keep <= 0:
        return
    dst = Path(ckpts.epoch(epoch))
    with atomic_output(dst) as tmp:
        shutil.copyfile(ckpts.last, tmp)
    old = sorted(Path(ckpts.root).glob(EPOCH_GLOB))
    for f in old[:-keep]:
        f.unlink()


def _finish(spec: Mapping, files: ExperimentFiles, state: Mapping, chash: str, metric: str) -> dict:
    name = spec["experiment"]
    out_dir, ckpts = Path(files.root), files.checkpoints
    ckpt_dir = Path(ckpts.root)
    best_src = Path(ckpts.best())
    if not best_src.exists():
        raise TrainingError(f"experiment {name}: no validation score was finite, so no best checkpoint "
                            f"exists; check the {HISTORY} losses (NaN?) and lower lr")
    copies = {files.best: best_src}
    by_criterion = {}
    for crit, best_c in sorted(state.get("best_by", {}).items()):
        src = Path(ckpts.best(crit))
        if not src.exists():
            raise TrainingError(f"experiment {name}: {src} is missing although criterion {crit} scored epoch "
                                f"{best_c.get('epoch')}; delete {ckpt_dir} to train afresh")
        copies[files.best_by_criterion(crit)] = src
        by_criterion[crit] = {"best_epoch": best_c.get("epoch"), "best_score": best_c.get("score"),
                              "checkpoint": best_name(crit), "definition": _CRITERION_TEXT.get(crit, crit),
                              "scores": [{"epoch": r["epoch"], "score": r[f"val_score_{crit}"]}
                                         for r in state["history"] if f"val_score_{crit}" in r]}
    for dst, src in copies.items():
        with atomic_output(Path(dst)) as tmp:
            shutil.copyfile(src, tmp)
    rows = state["history"]
    _write_history(rows, Path(files.history))
    best = dict(state["best"])
    selection = {
        "experiment": name, "metric": metric, "direction": DIRECTION[metric],
        "best_epoch": best.get("epoch"), "best_score": best.get("score"), "epochs_trained": state["epoch"],
        "config_hash": chash,
        "scores": [{"epoch": r["epoch"], "score": r["val_score"]} for r in rows if "val_score" in r],
        "definition": _METRIC_TEXT[metric],
    }
    if by_criterion:
        selection["criterion"] = spec.get("selection_criterion")
        selection["definition"] = _CRITERION_TEXT[spec["selection_criterion"]]
        selection["by_criterion"] = by_criterion
    from .io import write_json
    write_json(selection, Path(files.selection))
    _write_yaml({**spec, "config_hash": chash}, Path(files.config))
    from .provenance import PROVENANCE_FILE, git_commit, package_versions
    write_json({"experiment": name, "config_hash": chash, "runtime": state.get("runtime", []),
                "versions": package_versions(),
                "git": git_commit(Path(__file__).resolve().parents[2])}, out_dir / PROVENANCE_FILE)
    plot_history(rows, Path(files.loss_curve), experiment=name, metric=metric, best_epoch=best.get("epoch"))
    log.info("experiment %s: selected epoch %s (%s = %.4g)", name, best.get("epoch"), metric,
             best.get("score", float("nan")))
    return selection


_METRIC_TEXT = {
    "ssim": "mean SSIM (Gaussian 11x11 window) of prediction vs target over the validation split; higher is better",
    "l1": "mean absolute error of prediction vs target over the validation split; lower is better",
    "gan": "FastGAN validation score of the configured selection_criterion (see by_criterion); lower is better",
}
_CRITERION_TEXT = {
    "feature_distance": "Frechet distance of the feature network's features, real vs generated validation "
                        "images, / trace(real covariance); independent of the quantities S1's ANOVA tests; "
                        "lower is better",
    "study_quantities": "mean over conditions of S1 distances (standardised MC and LR differences, relative "
                        "SD-map and mean-map differences) + weight x Frechet feature distance / trace(real "
                        "covariance); scores the quantities S1's ANOVA tests; lower is better",
}
