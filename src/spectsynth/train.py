"""One training harness for the VAE/cVAE (S0), the conditional FastGAN (S1) and pix2pix (S2, S3).

:func:`train_experiment` takes a resolved experiment spec (from
:func:`spectsynth.experiments.expand_experiments`) and the dataset shards, and writes under
``out_dir``::

    checkpoints/last.pt            full training state (resume point), every N epochs/steps
    checkpoints/epoch-XXXX.pt      the last ``keep_checkpoints`` epoch checkpoints
    checkpoints/best.pt            weights of the best validation epoch (kept across reruns)
    best.pt                        copy of checkpoints/best.pt (the rule's declared output)
    best-<criterion>.pt            FastGAN: the best epoch under each selection criterion
                                   (spectsynth.selection.GAN_CRITERIA); best.pt is the configured one
    selection.json                 metric, direction, chosen epoch and score, all scores (and
                                   per criterion for FastGAN)
    history.csv                    one row per epoch: losses, lr, score, time, data-wait share
                                   (pix2pix: each loss term's share of the generator loss)
    tensorboard/                   the same scalars for TensorBoard
    config.resolved.yaml           the resolved experiment spec and its config hash
    provenance.json                package versions and git commit of the run
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

import copy
import csv
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader

from . import losses as L
from .datasets import EpochSampler, GANSliceDataset, PairedSliceDataset, SliceShard, dataset_spec
from .device import DeviceSetup, select_device
from .errors import ConfigError, SpectsynthError
from .experiments import expand_experiments
from .io import atomic_output, write_text
from .models import build_model, init_weights
from .models.fastgan import crop_in_pixels, random_crop, sample_latent
from .selection import (
    DIRECTION,
    GAN_CRITERIA,
    condition_label,
    gan_score,
    is_better,
    paired_scores,
    train_feature_net,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "spectsynth-checkpoint"
CHECKPOINT_VERSION = 1
__all__ = ["train_experiment", "expand_experiments", "config_hash", "load_checkpoint",
           "load_for_inference", "CheckpointError", "TrainingError"]

# Spec keys that do not change what is learnt (a change keeps the checkpoints valid).
_HASH_EXCLUDE = {"epochs", "resources", "description", "entry"}
_HASH_EXCLUDE_TRAINING = {"device", "amp", "channels_last", "num_workers", "checkpoint_every",
                          "checkpoint_every_steps", "keep_checkpoints", "on_config_change",
                          "progress", "preload_max_mb", "validate_every"}


class TrainingError(SpectsynthError):
    """Training cannot start or go on (bad data size, empty split, ...)."""


class CheckpointError(SpectsynthError):
    """A checkpoint is unreadable, corrupt, or belongs to another experiment."""


# --------------------------------------------------------------------------- hashing & IO


def config_hash(spec: Mapping, data_fingerprints: Mapping[str, str] | None = None) -> str:
    """SHA-256 (16 hex) of what determines the learnt weights: the spec without run-only
    settings (epochs, device, worker count, checkpoint cadence, resources) and the shards'
    content hashes."""
    view = {k: v for k, v in spec.items() if k not in _HASH_EXCLUDE}
    view["training"] = {k: v for k, v in (spec.get("training") or {}).items()
                        if k not in _HASH_EXCLUDE_TRAINING}
    view["data"] = dict(sorted((data_fingerprints or {}).items()))
    blob = json.dumps(view, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _walk(obj: Any, path: str = ""):
    """Yield (path, tensor) and build a JSON skeleton of everything else (for the digest)."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            yield from _walk(obj[k], f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}/{i}")


def _skeleton(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return ["tensor", str(obj.dtype), list(obj.shape)]
    if isinstance(obj, Mapping):
        return {str(k): _skeleton(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_skeleton(v) for v in obj]
    return obj


def _digest(obj: Mapping) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(_skeleton({k: v for k, v in obj.items() if k != "integrity"}),
                        sort_keys=True, default=repr).encode())
    for path, t in _walk({k: v for k, v in obj.items() if k != "integrity"}):
        h.update(path.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _atomic_torch_save(obj: dict, path: Path) -> None:
    obj = dict(obj)
    obj["integrity"] = _digest(obj)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path, *, experiment: str = "", map_location: str | torch.device = "cpu"
                    ) -> dict:
    """Load and verify a checkpoint or ``best.pt`` (``weights_only=True``, SHA-256 checked).

    Raises :class:`CheckpointError` naming the experiment and the file when it is truncated,
    corrupt, or not a spectsynth checkpoint.
    """
    path = Path(path)
    who = f"experiment {experiment}: " if experiment else ""
    hint = (f"Delete {path} to discard it: the next run then resumes from an older checkpoint in "
            f"{path.parent} if there is one, or trains from the start")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(f"{who}checkpoint {path} is truncated or unreadable "
                              f"({type(exc).__name__}: {str(exc)[:120]}). {hint}") from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{who}{path} is not a spectsynth checkpoint. {hint}")
    if obj.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{who}{path} has checkpoint format {obj.get('format_version')}, this "
                              f"version reads {CHECKPOINT_VERSION}. {hint}")
    if obj.get("integrity") != _digest(obj):
        raise CheckpointError(f"{who}checkpoint {path} is corrupt (its SHA-256 does not match its "
                              f"content). {hint}")
    return obj


# --------------------------------------------------------------------------- RNG state


def _rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and, when initialised, CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- recipes


def _to(batch: Mapping, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def loss_shares(terms: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Each weighted loss term's share of their sum: ``{"G_share_<name>": term / total}`` for
    the terms adv, l1 and ssim (0 for a term that is absent, i.e. weighted 0)."""
    total = sum(abs(float(v)) for v in terms.values())
    return {f"G_share_{k}": torch.tensor(abs(float(terms.get(k, 0.0))) / total if total > 0 else 0.0)
            for k in ("adv", "l1", "ssim")}


class Recipe:
    """Family-specific steps; the harness owns the loop, checkpoints and logs."""

    metric_data_range: float = 2.0

    def __init__(self, spec: dict, nets: nn.ModuleDict, setup: DeviceSetup):
        self.spec, self.nets, self.setup = spec, nets, setup
        betas = tuple(float(b) for b in spec["betas"])
        self.optim = {k: torch.optim.Adam(m.parameters(), lr=float(spec["lr"]), betas=betas)
                      for k, m in nets.items()}
        self.scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.grad_scaler)

    def autocast(self):
        return torch.autocast(device_type=self.setup.device.type, dtype=self.setup.amp_dtype or torch.float32,
                              enabled=self.setup.amp_dtype is not None)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optim[name]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)

    # state beyond nets/optimisers (EMA, feature net)
    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: Mapping) -> None:
        pass

    def inference_nets(self) -> dict[str, dict]:
        raise NotImplementedError

    def prepare(self, train_ds, val_ds) -> None:
        """Called once before the first epoch of a fresh run."""

    def train_step(self, batch: dict, progress: float) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def validate(self, val_ds) -> dict[str, float]:
        raise NotImplementedError

    def criteria(self) -> tuple[str, ...]:
        """Selection criteria whose best checkpoint is kept besides ``best.pt`` (validate returns
        ``score_<criterion>`` for each); none for the paired families."""
        return ()


class PairedRecipe(Recipe):
    """Validation shared by the paired families: predict every validation slice, SSIM/L1."""

    def predict(self, inp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, val_ds) -> dict[str, float]:
        for m in self.nets.values():
            m.eval()
        scores: dict[str, list] = {"ssim": [], "l1": []}
        loader = DataLoader(val_ds, batch_size=64, shuffle=False, num_workers=0,
                            generator=torch.Generator().manual_seed(0))
        for batch in loader:
            b = _to(batch, self.setup.device, self.setup.channels_last)
            with self.autocast():
                pred = self.predict(b["input"]).float()
            s = paired_scores(pred, b["target"].float(), self.metric_data_range)
            for k in scores:
                scores[k].append(s[k].cpu())
        for m in self.nets.values():
            m.train()
        out = {k: float(torch.cat(v).mean()) for k, v in scores.items()}
        out["score"] = out[self.spec["selection_metric"]]
        return out


class VAERecipe(PairedRecipe):
    """S0: VAE (clinical; trained on the normal slices) and conditional VAE (restoration)."""

    def prepare(self, train_ds, val_ds) -> None:
        t = np.stack([val_ds[i]["target"] for i in range(len(val_ds))])
        self.metric_data_range = float(max(t.max() - t.min(), 1e-6))

    def extra_state(self) -> dict:
        return {"metric_data_range": self.metric_data_range}

    def load_extra_state(self, state: Mapping) -> None:
        self.metric_data_range = float(state.get("metric_data_range", self.metric_data_range))

    def train_step(self, batch: dict, progress: float) -> dict[str, torch.Tensor]:
        vae = self.nets["vae"]
        tgt = batch["target"]
        kl_w = L.kl_weight(progress, float(self.spec["beta"]), float(self.spec["kl_warmup_epochs"]))
        with self.autocast():
            if self.spec["model"] == "cvae":
                rec, mu, logvar = vae(tgt, batch["input"])
            else:
                rec, mu, logvar = vae(tgt)
        terms = L.elbo(rec, tgt, mu, logvar, kl_w=kl_w, recon_kind=self.spec["vae_recon"])
        self._step("vae", terms["loss"])
        self.scaler.update()
        return {"loss": terms["loss"].detach(), "recon_px": terms["recon_px"].detach(),
                "kl": terms["kl"].detach(), "kl_weight": torch.tensor(kl_w)}

    def predict(self, inp: torch.Tensor) -> torch.Tensor:
        return self.nets["vae"].predict(inp)

    def inference_nets(self) -> dict[str, dict]:
        return {"vae": self.nets["vae"].state_dict()}


class Pix2PixRecipe(PairedRecipe):
    """S2/S3: BCE adversarial + lambda_L1 x L1 (+ lambda_SSIM x (1 - SSIM)), D loss halved.

    Every step also reports each weighted term's share of the generator loss
    (``G_share_adv``, ``G_share_l1``, ``G_share_ssim``; the epoch means go to history.csv, so
    the first row shows the shares at the start of training) and the SSIM loss itself
    (``G_ssim``) even when its weight is 0, so the runs with and without it can be compared.
    """

    def train_step(self, batch: dict, progress: float) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        inp, tgt = batch["input"], batch["target"]
        with self.autocast():
            fake = G(inp)
            d_fake = D(inp, fake.detach())
            d_real = D(inp, tgt)
        loss_d = 0.5 * (L.bce_adversarial(d_fake, False) + L.bce_adversarial(d_real, True))
        self._step("D", loss_d)
        for p in D.parameters():
            p.requires_grad_(False)
        with self.autocast():
            d_fake_g = D(inp, fake)
        w_adv, w_l1, w_ssim = (float(self.spec[k]) for k in ("lambda_adv", "lambda_l1", "lambda_ssim"))
        g_adv = L.bce_adversarial(d_fake_g, True)
        g_l1 = L.l1(fake.float(), tgt.float())
        terms = {"adv": w_adv * g_adv, "l1": w_l1 * g_l1}
        if w_ssim > 0:
            g_ssim = L.ssim_loss(fake.float(), tgt.float(), 2.0)
            terms["ssim"] = w_ssim * g_ssim
        else:
            with torch.no_grad():
                g_ssim = L.ssim_loss(fake.float(), tgt.float(), 2.0)
        loss_g = sum(terms.values())
        out = {"loss_D": loss_d.detach(), "loss_G": loss_g.detach(), "G_adv": g_adv.detach(),
               "G_l1": g_l1.detach(), "G_ssim": g_ssim.detach()}
        out.update(loss_shares({k: float(v.detach()) for k, v in terms.items()}))
        self._step("G", loss_g)
        for p in D.parameters():
            p.requires_grad_(True)
        self.scaler.update()
        return out

    def predict(self, inp: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](inp)

    def inference_nets(self) -> dict[str, dict]:
        return {"G": self.nets["G"].state_dict()}


class FastGANRecipe(Recipe):
    """S1: hinge loss, Eq. 4 reconstruction of the discriminator's decoders, EMA generator."""

    def __init__(self, spec: dict, nets: nn.ModuleDict, setup: DeviceSetup):
        super().__init__(spec, nets, setup)
        self.ema = copy.deepcopy(nets["G"]).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.feature_net = None
        self.real_val: dict[tuple[str, str], torch.Tensor] = {}
        self.cond_vectors: dict[tuple[str, str], torch.Tensor] = {}

    def prepare(self, train_ds: GANSliceDataset, val_ds: GANSliceDataset) -> None:
        cond = self.spec["condition"]
        levels, patterns = list(cond["levels"]), list(cond["patterns"])
        n_classes = (len(levels) if cond["use_level"] else 1) * len(patterns)
        imgs = torch.from_numpy(np.stack([train_ds[i]["image"] for i in range(len(train_ds))]))
        labels = torch.tensor([condition_label(*train_ds.labels(i), levels, patterns, cond["use_level"])
                               for i in range(len(train_ds))])
        steps = int(self.spec.get("gan_feature_steps", 300))
        self.feature_net = train_feature_net(imgs, labels, n_classes, steps=steps,
                                             seed=int(self.spec["seed"]), device=self.setup.device)
        self._index_val(val_ds)

    def _index_val(self, val_ds: GANSliceDataset) -> None:
        groups: dict[tuple[str, str], list] = {}
        for i in range(len(val_ds)):
            item = val_ds[i]
            key = val_ds.labels(i)
            groups.setdefault(key, []).append(item["image"])
            self.cond_vectors[key] = torch.from_numpy(item["cond"])[None]
        self.real_val = {k: torch.from_numpy(np.stack(v)) for k, v in sorted(groups.items())}

    def extra_state(self) -> dict:
        return {"ema": self.ema.state_dict(),
                "feature_net": self.feature_net.state_dict() if self.feature_net is not None else {}}

    def load_extra_state(self, state: Mapping) -> None:
        from .selection import FeatureNet
        self.ema.load_state_dict(state["ema"])
        fn = state.get("feature_net") or {}
        if fn:
            n_classes = fn["head.weight"].shape[0]
            self.feature_net = FeatureNet(n_classes).to(self.setup.device)
            self.feature_net.load_state_dict(fn)
            self.feature_net.eval()

    def set_val(self, val_ds) -> None:
        self._index_val(val_ds)

    def train_step(self, batch: dict, progress: float) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        real, cond = batch["image"], batch["cond"]
        n = real.shape[0]
        z = sample_latent(n, int(self.spec["latent_dim"]), device=real.device)
        crop = random_crop()
        with self.autocast():
            fake = G(z, cond)
            logits_r, rec_whole, rec_part = D(real, cond, crop)
            logits_f = D(fake.detach(), cond)
        l_real = L.hinge_d_real(logits_r.float())
        l_fake = L.hinge_d_fake(logits_f.float())
        l_rec = L.fastgan_recon_loss(rec_whole.float(), rec_part.float(), real.float(),
                                     crop_in_pixels(crop, real.shape[-1]), self.spec["recon_norm"])
        loss_d = l_real + l_fake + l_rec
        self._step("D", loss_d)
        for p in D.parameters():
            p.requires_grad_(False)
        with self.autocast():
            logits_g = D(fake, cond)
        loss_g = L.hinge_g(logits_g.float())
        self._step("G", loss_g)
        for p in D.parameters():
            p.requires_grad_(True)
        self.scaler.update()
        self._update_ema()
        return {"loss_D": loss_d.detach(), "D_real": l_real.detach(), "D_fake": l_fake.detach(),
                "D_recon": l_rec.detach(), "loss_G": loss_g.detach()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = float(self.spec["ema_decay"])
        for pe, p in zip(self.ema.parameters(), self.nets["G"].parameters()):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.ema.buffers(), self.nets["G"].buffers()):
            be.copy_(b)

    def validate(self, val_ds) -> dict[str, float]:
        if not self.real_val:
            self._index_val(val_ds)
        return gan_score(self.ema, self.real_val, self.cond_vectors, self.feature_net,
                         n_samples=int(self.spec["gan_eval_samples"]), latent_dim=int(self.spec["latent_dim"]),
                         seed=int(self.spec["seed"]) + 7, feature_weight=float(self.spec["gan_feature_weight"]),
                         criterion=str(self.spec["selection_criterion"]), device=self.setup.device,
                         amp_dtype=self.setup.amp_dtype)

    def criteria(self) -> tuple[str, ...]:
        return GAN_CRITERIA

    def inference_nets(self) -> dict[str, dict]:
        return {"G": self.ema.state_dict()}


RECIPES = {"vae": VAERecipe, "cvae": VAERecipe, "pix2pix": Pix2PixRecipe, "fastgan": FastGANRecipe}


# --------------------------------------------------------------------------- data


def _datasets(spec: dict, shards: Mapping[str, str | Path], cfg_datasets: Mapping | None):
    name = spec["experiment"]
    preload = float(spec["training"].get("preload_max_mb", 2048))
    missing = [s for s in ("train", "val") if s not in shards]
    if missing:
        raise TrainingError(f"experiment {name}: no shard given for split(s) {missing}")
    sh = {k: SliceShard(shards[k], preload_max_mb=preload) for k in ("train", "val")}
    dspec = dataset_spec({"datasets": cfg_datasets or {}}, spec["dataset"])
    augment = dspec.get("augment") or {}
    seed = int(spec["seed"])
    for s in sh.values():
        if int(s.attrs.get("size", spec["size"])) != int(spec["size"]):
            raise TrainingError(f"experiment {name}: shard {s.path} holds {s.attrs.get('size')} px slices but "
                                f"the experiment expects {spec['size']} px; rebuild the dataset "
                                f"(datasets.{dspec['key']}.size)")
    if spec["model"] == "fastgan":
        cond = spec["condition"]
        train = GANSliceDataset(sh["train"], cond, augment=augment, seed=seed)
        val = GANSliceDataset(sh["val"], cond, augment=None, seed=seed)
        have = set(train.conditions())
        excl = {tuple(c) for c in dspec.get("exclude_conditions") or []}
        need = [(lv, p) for lv in cond["levels"] for p in cond["patterns"] if (lv, p) not in excl]
        lacking = [c for c in need if c not in have]
        if lacking:
            txt = ", ".join(f"{p} at {lv}" for lv, p in lacking)
            raise TrainingError(
                f"experiment {name}: the training split of dataset {spec['dataset']} has no slices for {txt}. "
                "Add subjects with that pattern, or exclude the pair with datasets.s1.exclude_conditions "
                f"(e.g. [[{lacking[0][0]}, {lacking[0][1]}]]) and rebuild the dataset")
    else:
        tr_in = spec["target_channels"] if spec["model"] == "vae" else spec["input_channels"]
        aug = {k: v for k, v in augment.items() if k in ("shift_px", "flip")}
        train = PairedSliceDataset(sh["train"], tr_in, spec["target_channels"], augment=aug, seed=seed)
        val = PairedSliceDataset(sh["val"], spec["input_channels"], spec["target_channels"])
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
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})


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
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _write_yaml(obj: Any, path: Path) -> None:
    write_text(yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=True), path)


# --------------------------------------------------------------------------- harness


def train_experiment(spec: Mapping, shards: Mapping[str, str | Path], out_dir: str | Path, *,
                     datasets_cfg: Mapping | None = None, threads: int | None = None,
                     callbacks: Sequence[Callable[[dict], None]] = ()) -> dict:
    """Train (or resume) one experiment and write its outputs (see the module docstring).

    Parameters
    ----------
    spec:
        One value of :func:`expand_experiments`.
    shards:
        ``{"train": path, "val": path}`` of the experiment's dataset (``test`` is ignored).
    out_dir:
        ``results/experiments/<experiment>``.
    datasets_cfg:
        The config's ``datasets:`` section (augmentation and condition settings).
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
    ckpt_dir = out_dir / "checkpoints"
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    if family not in RECIPES:
        raise ConfigError(f"experiment {name}: unknown model {family!r}; choose one of {', '.join(RECIPES)}")
    setup = select_device(tcfg["device"], amp=tcfg["amp"], channels_last=tcfg["channels_last"],
                          context=f"experiment {name}")
    seed = int(spec["seed"])
    train_ds, val_ds, fingerprints = _datasets(spec, shards, datasets_cfg)
    chash = config_hash(spec, fingerprints)
    log.info("experiment %s: %s on %s; %d training / %d validation slices; config hash %s", name, family,
             setup.describe(), len(train_ds), len(val_ds), chash)

    seed_everything(seed)
    nets = build_model(family, spec)
    init_weights(nets)
    nets.to(setup.device)
    if setup.channels_last:
        nets.to(memory_format=torch.channels_last)
    recipe = RECIPES[family](spec, nets, setup)
    epochs = int(spec["epochs"])
    decay_start = spec.get("lr_decay_start_epoch")

    def lr_factor(e: int) -> float:
        if decay_start is None or e < int(decay_start):
            return 1.0
        return max(0.0, 1.0 - (e - int(decay_start) + 1) / float(max(1, epochs - int(decay_start) + 1)))

    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, lr_factor) for k, o in recipe.optim.items()}

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best": {},
             "best_by": {}, "accum": {}, "data_wait": 0.0}
    resumed = _maybe_resume(ckpt_dir, name, family, chash, tcfg["on_config_change"], nets, recipe, scheds,
                            state)
    if not resumed:
        recipe.prepare(train_ds, val_ds)
    elif family == "fastgan":
        recipe.set_val(val_ds)

    metric = spec["selection_metric"]
    writer = _tensorboard(out_dir / "tensorboard", state["global_step"])
    bs = int(spec["batch_size"])
    steps_per_epoch = len(train_ds) // bs
    sampler = EpochSampler(len(train_ds), seed)
    ck_every = max(1, int(tcfg["checkpoint_every"]))
    ck_steps = int(tcfg["checkpoint_every_steps"])
    val_every = max(1, int(tcfg["validate_every"]))

    def save(path_name: str = "last.pt") -> None:
        _atomic_torch_save(_checkpoint(name, family, chash, nets, recipe, scheds, state), ckpt_dir / path_name)

    try:
        for epoch in range(state["epoch"], epochs):
            sampler.set_epoch(epoch, start=state["step_in_epoch"] * bs)
            # The loader's own generator keeps it from drawing on the global torch RNG (it
            # draws a worker base seed per iterator), so resuming mid-epoch replays exactly.
            loader = DataLoader(train_ds, batch_size=bs, sampler=sampler, drop_last=True,
                                num_workers=int(tcfg["num_workers"]), pin_memory=setup.is_cuda,
                                generator=torch.Generator().manual_seed(seed + epoch))
            t_epoch = time.perf_counter()
            t_last = t_epoch
            bar = _progress(tcfg["progress"], steps_per_epoch, state["step_in_epoch"], f"{name} {epoch + 1}/{epochs}")
            for batch in loader:
                t_got = time.perf_counter()
                state["data_wait"] += t_got - t_last
                b = _to(batch, setup.device, setup.channels_last)
                progress = epoch + state["step_in_epoch"] / max(1, steps_per_epoch)
                losses = recipe.train_step(b, progress)
                acc = state["accum"]
                for k, v in losses.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                acc["_n"] = acc.get("_n", 0) + 1
                state["step_in_epoch"] += 1
                state["global_step"] += 1
                if bar is not None:
                    bar.update(1)
                if ck_steps and state["global_step"] % ck_steps == 0:
                    save()
                for cb in callbacks:
                    cb({"epoch": epoch, "step_in_epoch": state["step_in_epoch"],
                        "global_step": state["global_step"], "losses": {k: float(v) for k, v in losses.items()}})
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
                    _atomic_torch_save(_best(name, family, chash, spec, recipe, epoch + 1, v["score"], metric,
                                             spec.get("selection_criterion")), ckpt_dir / "best.pt")
                # the best epoch under every criterion is kept, so the finding can be checked under each
                for crit in recipe.criteria():
                    val = float(v[f"score_{crit}"])
                    row[f"val_score_{crit}"] = val
                    if is_better(metric, val, state["best_by"].get(crit, {}).get("score")):
                        state["best_by"][crit] = {"epoch": epoch + 1, "score": val}
                        _atomic_torch_save(_best(name, family, chash, spec, recipe, epoch + 1, val, metric, crit),
                                           ckpt_dir / f"best-{crit}.pt")
            state["history"].append(row)
            state.update(epoch=epoch + 1, step_in_epoch=0, accum={}, data_wait=0.0)
            _log_epoch(writer, row)
            log.info("experiment %s: epoch %d/%d %s", name, epoch + 1, epochs,
                     " ".join(f"{k}={row[k]:.4g}" for k in row if isinstance(row[k], float)))
            if (epoch + 1) % ck_every == 0 or epoch + 1 == epochs:
                save()
                _keep_epoch_copy(ckpt_dir, epoch + 1, int(tcfg["keep_checkpoints"]))
            _write_history(state["history"], out_dir / "history.csv")
    finally:
        if writer is not None:
            writer.close()
    return _finish(spec, out_dir, ckpt_dir, state, chash, metric)


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm
    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, leave=False, mininterval=0.5 if tty else 30.0,
                file=sys.stderr)


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
    row.update({k: v / n for k, v in acc.items()})
    row["lr"] = float(next(iter(recipe.optim.values())).param_groups[0]["lr"])
    row["epoch_seconds"] = float(wall)
    row["images_per_second"] = float(n_images / wall) if wall > 0 else float("nan")
    row["data_wait_share"] = float(state["data_wait"] / wall) if wall > 0 else float("nan")
    return row


def _checkpoint(name: str, family: str, chash: str, nets: nn.ModuleDict, recipe: Recipe,
                scheds: Mapping, state: Mapping) -> dict:
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "experiment": name,
            "family": family, "config_hash": chash, "epoch": int(state["epoch"]),
            "step_in_epoch": int(state["step_in_epoch"]), "global_step": int(state["global_step"]),
            "nets": {k: m.state_dict() for k, m in nets.items()},
            "optim": {k: o.state_dict() for k, o in recipe.optim.items()},
            "sched": {k: s.state_dict() for k, s in scheds.items()},
            "scaler": recipe.scaler.state_dict(), "extra": recipe.extra_state(), "rng": _rng_state(),
            "history": list(state["history"]), "best": dict(state["best"]),
            "best_by": {k: dict(v) for k, v in state.get("best_by", {}).items()},
            "accum": {k: float(v) for k, v in state["accum"].items()},
            "data_wait": float(state["data_wait"]), "torch_version": str(torch.__version__)}


def _best(name: str, family: str, chash: str, spec: Mapping, recipe: Recipe, epoch: int, score: float,
          metric: str, criterion: str | None = None) -> dict:
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "kind": "best",
            "experiment": name, "family": family, "config_hash": chash, "epoch": int(epoch),
            "score": float(score), "metric": metric, "criterion": str(criterion or metric),
            "spec": json.dumps(spec, sort_keys=True), "nets": recipe.inference_nets()}


def _maybe_resume(ckpt_dir: Path, name: str, family: str, chash: str, on_change: str, nets: nn.ModuleDict,
                  recipe: Recipe, scheds: Mapping, state: dict) -> bool:
    last = ckpt_dir / "last.pt"
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
        stale = ckpt_dir / f"stale-{ck['config_hash']}"
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
        recipe.scaler.load_state_dict(ck["scaler"])
        recipe.load_extra_state(ck["extra"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"experiment {name}: {last} does not fit the networks of this configuration "
                              f"({type(exc).__name__}: {str(exc)[:160]}). Delete {ckpt_dir} to train "
                              "afresh") from exc
    _set_rng_state(ck["rng"])
    state.update(epoch=int(ck["epoch"]), step_in_epoch=int(ck["step_in_epoch"]),
                 global_step=int(ck["global_step"]), history=list(ck["history"]), best=dict(ck["best"]),
                 best_by={k: dict(v) for k, v in (ck.get("best_by") or {}).items()}, accum=dict(ck["accum"]), data_wait=float(ck.get("data_wait", 0.0)))
    log.info("experiment %s: resuming from %s (epoch %d, step %d of the epoch)", name, last, state["epoch"],
             state["step_in_epoch"])
    return True


def _keep_epoch_copy(ckpt_dir: Path, epoch: int, keep: int) -> None:
    if keep <= 0:
        return
    dst = ckpt_dir / f"epoch-{epoch:04d}.pt"
    with atomic_output(dst) as tmp:
        shutil.copyfile(ckpt_dir / "last.pt", tmp)
    old = sorted(ckpt_dir.glob("epoch-*.pt"))
    for f in old[:-keep]:
        f.unlink()


def _finish(spec: Mapping, out_dir: Path, ckpt_dir: Path, state: Mapping, chash: str, metric: str) -> dict:
    name = spec["experiment"]
    best_src = ckpt_dir / "best.pt"
    if not best_src.exists():
        raise TrainingError(f"experiment {name}: no validation score was finite, so no best checkpoint "
                            "exists; check the history.csv losses (NaN?) and lower lr")
    copies = {"best.pt": best_src}
    by_criterion = {}
    for crit, best_c in sorted(state.get("best_by", {}).items()):
        src = ckpt_dir / f"best-{crit}.pt"
        if not src.exists():
            raise TrainingError(f"experiment {name}: {src} is missing although criterion {crit} scored epoch "
                                f"{best_c.get('epoch')}; delete {ckpt_dir} to train afresh")
        copies[f"best-{crit}.pt"] = src
        by_criterion[crit] = {"best_epoch": best_c.get("epoch"), "best_score": best_c.get("score"),
                              "checkpoint": f"best-{crit}.pt", "definition": _CRITERION_TEXT.get(crit, crit),
                              "scores": [{"epoch": r["epoch"], "score": r[f"val_score_{crit}"]}
                                         for r in state["history"] if f"val_score_{crit}" in r]}
    for dst, src in copies.items():
        with atomic_output(out_dir / dst) as tmp:
            shutil.copyfile(src, tmp)
    rows = state["history"]
    _write_history(rows, out_dir / "history.csv")
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
    write_json(selection, out_dir / "selection.json")
    _write_yaml({**spec, "config_hash": chash}, out_dir / "config.resolved.yaml")
    from .provenance import git_commit, package_versions
    write_json({"experiment": name, "config_hash": chash, "versions": package_versions(),
                "git": git_commit(Path(__file__).resolve().parents[2])}, out_dir / "provenance.json")
    plot_history(rows, out_dir / "loss_curve.png", experiment=name, metric=metric, best_epoch=best.get("epoch"))
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


def load_for_inference(path: str | Path, *, device: str | torch.device = "cpu",
                       experiment: str = "") -> tuple[nn.ModuleDict, dict]:
    """Rebuild the inference networks of a ``best.pt`` (eval mode) and return them with the spec.

    Keys: ``vae`` (S0) or ``G`` (pix2pix U-Net, FastGAN EMA generator).
    """
    ck = load_checkpoint(path, experiment=experiment, map_location="cpu")
    if ck.get("kind") != "best":
        raise CheckpointError(f"{path} is a training checkpoint, not a best.pt; use the experiment's best.pt")
    spec = json.loads(ck["spec"])
    nets = build_model(ck["family"], spec)
    keep = nn.ModuleDict({k: nets[k] for k in ck["nets"]})
    for k, m in keep.items():
        m.load_state_dict(ck["nets"][k])
        m.to(device).eval()
    return keep, spec
