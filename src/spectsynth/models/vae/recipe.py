"""Training recipe of S0's VAE (clinical; trained on the normal slices) and conditional VAE
(restoration)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..paired import PairedRecipe
from .losses import elbo, kl_weight


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
        kl_w = kl_weight(progress, float(self.spec["beta"]), float(self.spec["kl_warmup_epochs"]))
        with self.autocast():
            if self.spec["model"] == "cvae":
                rec, mu, logvar = vae(tgt, batch["input"])
            else:
                rec, mu, logvar = vae(tgt)
        terms = elbo(rec, tgt, mu, logvar, kl_w=kl_w, recon_kind=self.spec["vae_recon"])
        self._step("vae", terms["loss"])
        self.scaler.update()
        return {"loss": terms["loss"].detach(), "recon_px": terms["recon_px"].detach(),
                "kl": terms["kl"].detach(), "kl_weight": torch.tensor(kl_w)}

    def predict(self, inp: torch.Tensor) -> torch.Tensor:
        return self.nets["vae"].predict(inp)

    def inference_nets(self) -> dict[str, dict]:
        return {"vae": self.nets["vae"].state_dict()}
