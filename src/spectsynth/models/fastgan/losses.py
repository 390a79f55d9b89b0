"""Losses of the conditional FastGAN (S1).

* hinge adversarial loss (S1's Eqs. 1-3)
* S1's Eq. 4 self-supervised reconstruction loss of the discriminator's decoders (a pixel norm
  instead of the LPIPS term of the original FastGAN, which would need downloaded weights)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_real(logits: torch.Tensor) -> torch.Tensor:
    """S1 Eq. 2: ``L_real = -E[min(0, -1 + D(x))] = E[relu(1 - D(x))]``."""
    return F.relu(1.0 - logits).mean()


def hinge_d_fake(logits: torch.Tensor) -> torch.Tensor:
    """S1 Eq. 3: ``L_fake = -E[min(0, -1 - D(G(z|y)))] = E[relu(1 + D(G(z|y)))]``."""
    return F.relu(1.0 + logits).mean()


def hinge_g(logits: torch.Tensor) -> torch.Tensor:
    """S1 Eq. 1: generator loss ``-E[D(G(z|y))]``."""
    return -logits.mean()


def pixel_distance(a: torch.Tensor, b: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """Mean pixel norm between two images (``l1`` or ``l2`` = mean squared error)."""
    if norm == "l1":
        return F.l1_loss(a.float(), b.float())
    if norm == "l2":
        return F.mse_loss(a.float(), b.float())
    raise ValueError(f"unknown reconstruction norm {norm!r}; use l1 or l2")


def fastgan_recon_loss(rec_whole: torch.Tensor, rec_part: torch.Tensor, real: torch.Tensor,
                       crop: tuple[int, int], norm: str = "l1") -> torch.Tensor:
    """S1 Eq. 4: ``||G1(B1(x)) - T(x)|| + ||G2(B2(x)) - x||`` on real images only.

    ``crop = (row, col)`` is the top-left corner, in image pixels, of the half-size crop
    ``T(x)`` whose feature-map counterpart the discriminator decoded.  Targets are resized to
    the decoders' output size (bilinear, as FastGAN resizes its targets to 128 px).
    """
    size = real.shape[-1]
    half = size // 2
    r, c = crop
    part = real[..., r:r + half, c:c + half]
    tgt_whole = real if rec_whole.shape[-1] == size else F.interpolate(
        real, size=rec_whole.shape[-2:], mode="bilinear", align_corners=False)
    tgt_part = part if rec_part.shape[-1] == half else F.interpolate(
        part, size=rec_part.shape[-2:], mode="bilinear", align_corners=False)
    return pixel_distance(rec_part, tgt_part, norm) + pixel_distance(rec_whole, tgt_whole, norm)
