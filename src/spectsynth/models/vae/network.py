"""Variational autoencoders of S0 (Dudasova & Trnka 2025).

* :class:`VAE` - the *clinical* task: trained on normal (undegraded) slices only; a
  pathological slice is encoded and decoded through the posterior mean, which projects it
  onto what the model learnt as normal -> the patient's own predicted normal image.
* :class:`ConditionalVAE` - the *restoration* task (S0's "CVAE loss"): the posterior
  ``q(z | original, damaged)`` and the decoder ``p(original | z, damaged)`` are conditioned on the
  damaged slice (a convolutional condition encoder whose feature maps enter the decoder at
  every resolution); the prediction decodes the prior mean ``z = 0`` with the damaged slice.

Both decode to a linear output (no squashing): S0 slices are scaled to the brain background
(background ~ 1, striatum ~ 1 + binding ratio), which has no fixed upper bound.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...losses import log2_int


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.2, True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(True))


def _widths(size: int, base: int, max_ch: int) -> list[int]:
    """Channels after each stride-2 step from ``size`` down to 4 x 4."""
    n = log2_int(size) - 2
    if n < 1:
        raise ValueError(f"VAE slices must be at least 8 px, got {size}")
    return [min(max_ch, base * 2 ** i) for i in range(n)]


class Encoder(nn.Module):
    """Convolutional pyramid to 4 x 4, returning every level's feature map."""

    def __init__(self, in_channels: int, size: int, base: int, max_ch: int):
        super().__init__()
        w = _widths(size, base, max_ch)
        self.blocks = nn.ModuleList(_down(a, b) for a, b in zip([in_channels] + w[:-1], w))
        self.out_channels = w[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats


class _Posterior(nn.Module):
    def __init__(self, in_channels: int, size: int, base: int, max_ch: int, latent_dim: int):
        super().__init__()
        self.enc = Encoder(in_channels, size, base, max_ch)
        self.head = nn.Linear(self.enc.out_channels * 16, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x)[-1].flatten(1)
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 12.0)


class _Decoder(nn.Module):
    """z -> 4 x 4 map -> transposed convolutions up to ``size``; optional condition features
    (one per resolution, coarse to fine) are concatenated before each up-sampling step."""

    def __init__(self, out_channels: int, size: int, base: int, max_ch: int, latent_dim: int,
                 cond_widths: list[int] | None = None):
        super().__init__()
        w = _widths(size, base, max_ch)[::-1]          # coarse -> fine
        cw = cond_widths[::-1] if cond_widths else [0] * len(w)
        self.c0 = w[0]
        self.fc = nn.Linear(latent_dim, w[0] * 16)
        outs = w[1:] + [base]
        self.ups = nn.ModuleList(_up(a + c, b) for a, c, b in zip(w, cw, outs))
        self.out = nn.Conv2d(base, out_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, cond_feats: list[torch.Tensor] | None = None) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.c0, 4, 4)
        feats = cond_feats[::-1] if cond_feats else None
        for i, up in enumerate(self.ups):
            if feats is not None:
                h = torch.cat([h, feats[i]], 1)
            h = up(h)
        return self.out(h)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` from torch's global generator."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


class VAE(nn.Module):
    """Plain VAE: ``forward(x)`` -> (reconstruction, mu, logvar)."""

    def __init__(self, in_channels: int = 1, size: int = 64, *, latent_dim: int = 128,
                 base_channels: int = 32, max_channels: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.posterior = _Posterior(in_channels, size, base_channels, max_channels, latent_dim)
        self.decoder = _Decoder(in_channels, size, base_channels, max_channels, latent_dim)

    def forward(self, x: torch.Tensor):
        mu, logvar = self.posterior(x)
        z = reparameterise(mu, logvar) if self.training else mu
        return self.decoder(z), mu, logvar

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean of ``x`` (deterministic)."""
        mu, _ = self.posterior(x)
        return self.decoder(mu)


class ConditionalVAE(nn.Module):
    """Conditional VAE: ``forward(target, cond)`` -> (reconstruction, mu, logvar)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, size: int = 64, *,
                 latent_dim: int = 128, base_channels: int = 32, max_channels: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.cond_encoder = Encoder(in_channels, size, base_channels, max_channels)
        self.posterior = _Posterior(in_channels + out_channels, size, base_channels, max_channels,
                                    latent_dim)
        self.decoder = _Decoder(out_channels, size, base_channels, max_channels, latent_dim,
                                cond_widths=_widths(size, base_channels, max_channels))

    def forward(self, target: torch.Tensor, cond: torch.Tensor):
        mu, logvar = self.posterior(torch.cat([target, cond], 1))
        z = reparameterise(mu, logvar) if self.training else mu
        return self.decoder(z, self.cond_encoder(cond)), mu, logvar

    @torch.no_grad()
    def predict(self, cond: torch.Tensor) -> torch.Tensor:
        """Decode the prior mean ``z = 0`` given the damaged slice (deterministic)."""
        z = torch.zeros(cond.shape[0], self.latent_dim, device=cond.device, dtype=cond.dtype)
        return self.decoder(z, self.cond_encoder(cond))


def build(family: str, cfg) -> nn.ModuleDict:
    """``{"vae": VAE}`` (family ``vae``) or ``{"vae": ConditionalVAE}`` (``cvae``) for a spec."""
    from ..registry import network_inputs
    from . import DEFAULTS

    size, n_in, n_out, opt = network_inputs(cfg, DEFAULTS)
    if family == "cvae":
        return nn.ModuleDict({"vae": ConditionalVAE(n_in, n_out, size, latent_dim=opt("latent_dim"),
                                                    base_channels=opt("base_channels"),
                                                    max_channels=opt("max_channels"))})
    return nn.ModuleDict({"vae": VAE(n_out, size, latent_dim=opt("latent_dim"),
                                     base_channels=opt("base_channels"),
                                     max_channels=opt("max_channels"))})
