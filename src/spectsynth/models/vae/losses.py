"""Losses of the (conditional) VAE (S0): the ELBO with a weight ``beta`` on the KL term and a
linear KL warm-up."""

from __future__ import annotations

import torch


def kl_weight(epoch_progress: float, beta: float, warmup_epochs: float) -> float:
    """Weight of the KL term: ``beta * min(1, progress / warmup)`` (linear KL warm-up).

    ``epoch_progress`` counts epochs as a float (epoch + fraction of the current epoch), so
    the weight rises smoothly step by step; ``warmup_epochs = 0`` switches the warm-up off.
    """
    if warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, max(0.0, epoch_progress) / float(warmup_epochs))


def elbo(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
         kl_w: float, recon_kind: str = "mse") -> dict[str, torch.Tensor]:
    """Negative ELBO per image: reconstruction summed over pixels + ``kl_w`` x KL(q(z|.) || N(0, I)).

    ``recon_kind='mse'`` is a Gaussian likelihood of unit variance (up to constants: half
    the summed squared error); ``'l1'`` a Laplace likelihood.  Returns the loss and its two
    terms (each averaged over the batch; ``recon_px`` is the per-pixel mean for logs).
    """
    diff = (recon.float() - target.float()).flatten(1)
    if recon_kind == "mse":
        rec = 0.5 * (diff ** 2).sum(1)
        rec_px = (diff ** 2).mean()
    elif recon_kind == "l1":
        rec = diff.abs().sum(1)
        rec_px = diff.abs().mean()
    else:
        raise ValueError(f"unknown VAE reconstruction loss {recon_kind!r}; use mse or l1")
    mu = mu.float()
    logvar = logvar.float()
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
    loss = (rec + kl_w * kl).mean()
    return {"loss": loss, "recon": rec.mean(), "kl": kl.mean(), "recon_px": rec_px}
