"""Loss functions shared by the model families (each family's own losses live with it).

* L1 and the SSIM loss ``1 - gaussian_ssim`` (pix2pix's optional SSIM term, S2's L1+SSIM runs)
* :func:`gaussian_ssim`: the differentiable SSIM (Gaussian 11 x 11 window) that training and
  checkpoint selection use; the SSIM *reported* in the metric tables is a different,
  non-differentiable one, :func:`spectsynth.metrics.ssim` (uniform 7 x 7 window)
* :func:`log2_int` for the networks' power-of-two image sizes

Family losses: :mod:`spectsynth.models.pix2pix.losses` (binary cross-entropy adversarial loss),
:mod:`spectsynth.models.fastgan.losses` (hinge loss, S1's Eq. 4 reconstruction),
:mod:`spectsynth.models.vae.losses` (ELBO with KL warm-up).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- pixel losses


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


def _gaussian_window(sigma: float, truncate: float, device, dtype) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gaussian_ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float, *, sigma: float = 1.5,
                  truncate: float = 3.5, k1: float = 0.01, k2: float = 0.03,
                  reduction: str = "mean") -> torch.Tensor:
    """Structural similarity of (N, C, H, W) images with a Gaussian window (differentiable).

    Same definition as scikit-image's ``structural_similarity`` with ``gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False`` (11 x 11 window): statistics are computed with a
    'valid' Gaussian filter, i.e. the border that scikit-image crops is never used.
    ``reduction='none'`` returns one value per image (mean over channels and pixels).

    Used where a torch SSIM is needed: the SSIM term of the pix2pix generator loss
    (:func:`ssim_loss`) and the validation score that selects a paired experiment's checkpoint
    (:func:`spectsynth.selection.paired_scores`; its value is the ``ssim`` / ``val_ssim`` /
    ``val_score`` of ``selection.json`` and ``history.csv``).  The metric tables report
    :func:`spectsynth.metrics.ssim` instead (scikit-image's default uniform 7 x 7 window, on
    NumPy images and with the evaluation's data range), so a selection SSIM and a reported SSIM of the same images
    differ slightly: they are two definitions, kept apart by name.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"gaussian_ssim expects two (N, C, H, W) tensors of one shape, got {tuple(pred.shape)} "
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
    """``1 - gaussian_ssim`` (0 for identical images)."""
    return 1.0 - gaussian_ssim(pred, target, data_range)


def log2_int(n: int) -> int:
    """``log2(n)`` for a power of two, else ValueError (image sizes must be powers of two)."""
    k = int(round(math.log2(n))) if n > 0 else -1
    if n <= 0 or 2 ** k != n:
        raise ValueError(f"{n} is not a power of two")
    return k
