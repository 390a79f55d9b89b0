"""Loss functions of the three model families.

* adversarial: hinge (S1's Eqs. 1-3, FastGAN) and binary cross-entropy on logits (pix2pix, S2)
* pixel losses: L1 and an SSIM loss (``1 - SSIM``) whose SSIM equals scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
* the ELBO of the (conditional) VAE with a weight ``beta`` on the KL term and a linear KL warm-up
* S1's Eq. 4 self-supervised reconstruction loss of the discriminator's decoders (a pixel norm
  instead of the LPIPS term of the original FastGAN, which would need downloaded weights)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- adversarial


def hinge_d_real(logits: torch.Tensor) -> torch.Tensor:
    """S1 Eq. 2: ``L_real = -E[min(0, -1 + D(x))] = E[relu(1 - D(x))]``."""
    return F.relu(1.0 - logits).mean()


def hinge_d_fake(logits: torch.Tensor) -> torch.Tensor:
    """S1 Eq. 3: ``L_fake = -E[min(0, -1 - D(G(z|y)))] = E[relu(1 + D(G(z|y)))]``."""
    return F.relu(1.0 + logits).mean()


def hinge_g(logits: torch.Tensor) -> torch.Tensor:
    """S1 Eq. 1: generator loss ``-E[D(G(z|y))]``."""
    return -logits.mean()


def bce_adversarial(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Binary cross-entropy on discriminator logits against an all-real or all-fake label."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


# --------------------------------------------------------------------------- pixel losses


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


def _gaussian_window(sigma: float, truncate: float, device, dtype) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float, *, sigma: float = 1.5,
         truncate: float = 3.5, k1: float = 0.01, k2: float = 0.03,
         reduction: str = "mean") -> torch.Tensor:
    """Structural similarity of (N, C, H, W) images with a Gaussian window (differentiable).

    Same definition as scikit-image's ``structural_similarity`` with ``gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False`` (11 x 11 window): statistics are computed with a
    'valid' Gaussian filter, i.e. the border that scikit-image crops is never used.
    ``reduction='none'`` returns one value per image (mean over channels and pixels).
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"ssim expects two (N, C, H, W) tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    pred = pred.float()
    target = target.float()
    c = pred.shape[1]
    g = _gaussian_window(sigma, truncate, pred.device, pred.dtype)
    if pred.shape[-1] < g.numel() or pred.shape[-2] < g.numel():
        raise ValueError(f"images of {tuple(pred.shape[-2:])} px are smaller than the {g.numel()} px "
                         "SSIM window")
    wx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    mu_x, mu_y = filt(pred), filt(target)
    sxx = filt(pred * pred) - mu_x * mu_x
    syy = filt(target * target) - mu_y * mu_y
    sxy = filt(pred * target) - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    per_image = s.flatten(1).mean(1)
    if reduction == "none":
        return per_image
    return per_image.mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> torch.Tensor:
    """``1 - SSIM`` (0 for identical images)."""
    return 1.0 - ssim(pred, target, data_range)


# --------------------------------------------------------------------------- VAE


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


# --------------------------------------------------------------------------- FastGAN


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


def log2_int(n: int) -> int:
    """``log2(n)`` for a power of two, else ValueError (image sizes must be powers of two)."""
    k = int(round(math.log2(n))) if n > 0 else -1
    if n <= 0 or 2 ** k != n:
        raise ValueError(f"{n} is not a power of two")
    return k
