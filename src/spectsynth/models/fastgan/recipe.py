"""Training recipe of S1's conditional FastGAN: hinge loss, Eq. 4 reconstruction, EMA generator,
selection by :func:`~spectsynth.models.fastgan.scoring.gan_score`."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn

from ...device import DeviceSetup
from ...errors import TrainingError
from ...recipe import Recipe
from . import GAN_CRITERIA
from .data import GANSliceDataset
from .losses import fastgan_recon_loss, hinge_d_fake, hinge_d_real, hinge_g
from .network import crop_in_pixels, random_crop, sample_latent
from .scoring import FeatureNet, condition_label, gan_score, train_feature_net


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

    @classmethod
    def make_datasets(cls, spec: Mapping, shards: Mapping, dspec: Mapping, seed: int):
        name = spec["experiment"]
        augment = dspec.get("augment") or {}
        cond = spec["condition"]
        train = GANSliceDataset(shards["train"], cond, augment=augment, seed=seed)
        val = GANSliceDataset(shards["val"], cond, augment=None, seed=seed)
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
        return train, val

    def prepare(self, train_ds: GANSliceDataset, val_ds: GANSliceDataset) -> None:
        cond = self.spec["condition"]
        levels, patterns = list(cond["levels"]), list(cond["patterns"])
        n_classes = (len(levels) if cond["use_level"] else 1) * len(patterns)
        imgs = torch.from_numpy(np.stack([train_ds[i]["image"] for i in range(len(train_ds))]))
        labels = torch.tensor([condition_label(*train_ds.labels(i), levels, patterns, cond["use_level"])
                               for i in range(len(train_ds))])
        steps = int(self.spec["gan_feature_steps"])
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
        self.ema.load_state_dict(state["ema"])
        fn = state.get("feature_net") or {}
        if fn:
            n_classes = fn["head.weight"].shape[0]
            self.feature_net = FeatureNet(n_classes).to(self.setup.device)
            self.feature_net.load_state_dict(fn)
            self.feature_net.eval()

    def resumed(self, train_ds, val_ds) -> None:
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
        l_real = hinge_d_real(logits_r.float())
        l_fake = hinge_d_fake(logits_f.float())
        l_rec = fastgan_recon_loss(rec_whole.float(), rec_part.float(), real.float(),
                                     crop_in_pixels(crop, real.shape[-1]), self.spec["recon_norm"])
        loss_d = l_real + l_fake + l_rec
        self._step("D", loss_d)
        for p in D.parameters():
            p.requires_grad_(False)
        with self.autocast():
            logits_g = D(fake, cond)
        loss_g = hinge_g(logits_g.float())
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
        # One multi-tensor update (a kernel per group, not per tensor on a GPU); element by element
        # the same lerp as a loop over the parameters.
        torch._foreach_lerp_(list(self.ema.parameters()), [p.detach() for p in self.nets["G"].parameters()],
                             1.0 - decay)
        ema_buffers, buffers = list(self.ema.buffers()), list(self.nets["G"].buffers())
        if ema_buffers:
            torch._foreach_copy_(ema_buffers, buffers)

    def validate(self, val_ds) -> dict[str, float]:
        if not self.real_val:
            self._index_val(val_ds)
        return gan_score(self.ema, self.real_val, self.cond_vectors, self.feature_net,
                         n_samples=int(self.spec["gan_eval_samples"]), latent_dim=int(self.spec["latent_dim"]),
                         seed=int(self.spec["seed"]) + 7, feature_weight=float(self.spec["gan_feature_weight"]),
                         criterion=str(self.spec["selection_criterion"]), device=self.setup.device,
                         amp_dtype=None)   # float32, as inference samples

    def criteria(self) -> tuple[str, ...]:
        return GAN_CRITERIA

    def inference_nets(self) -> dict[str, dict]:
        return {"G": self.ema.state_dict()}
