"""Training recipe of pix2pix (S2, S3): adversarial + L1 (+ SSIM) generator loss."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...losses import l1, ssim_loss
from ..paired import PairedRecipe
from .losses import bce_adversarial


def loss_shares(terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each weighted loss term's share of their sum: ``{"G_share_<name>": term / total}`` for
    the terms adv, l1 and ssim (0 for a term that is absent, i.e. weighted 0).  Computed on the
    terms' device in float64 (no host sync), returned as float32 scalars."""
    parts = {k: torch.as_tensor(v).detach().double().abs() for k, v in terms.items()}
    total = sum(parts.values())
    zero = torch.zeros((), dtype=torch.float64, device=total.device)
    return {f"G_share_{k}": torch.where(total > 0, parts[k] / total, zero).float() if k in parts else zero.float()
            for k in ("adv", "l1", "ssim")}


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
        loss_d = 0.5 * (bce_adversarial(d_fake, False) + bce_adversarial(d_real, True))
        self._step("D", loss_d)
        for p in D.parameters():
            p.requires_grad_(False)
        with self.autocast():
            d_fake_g = D(inp, fake)
        w_adv, w_l1, w_ssim = (float(self.spec[k]) for k in ("lambda_adv", "lambda_l1", "lambda_ssim"))
        g_adv = bce_adversarial(d_fake_g, True)
        g_l1 = l1(fake.float(), tgt.float())
        terms = {"adv": w_adv * g_adv, "l1": w_l1 * g_l1}
        if w_ssim > 0:
            g_ssim = ssim_loss(fake.float(), tgt.float(), 2.0)
            terms["ssim"] = w_ssim * g_ssim
        else:
            with torch.no_grad():
                g_ssim = ssim_loss(fake.float(), tgt.float(), 2.0)
        loss_g = sum(terms.values())
        out = {"loss_D": loss_d.detach(), "loss_G": loss_g.detach(), "G_adv": g_adv.detach(),
               "G_l1": g_l1.detach(), "G_ssim": g_ssim.detach()}
        out.update(loss_shares(terms))
        self._step("G", loss_g)
        for p in D.parameters():
            p.requires_grad_(True)
        self.scaler.update()
        return out

    def predict(self, inp: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](inp)

    def inference_nets(self) -> dict[str, dict]:
        return {"G": self.nets["G"].state_dict()}
