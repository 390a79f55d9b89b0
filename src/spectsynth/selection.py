"""Validation scores used to pick the checkpoint of each experiment (instead of picking by eye).

Paired models (pix2pix, VAE, conditional VAE)
    mean SSIM (higher is better, the default) or mean L1 (lower is better) between the
    prediction and the target over the validation split.  SSIM uses the Gaussian 11 x 11
    window of :func:`spectsynth.losses.gaussian_ssim` with ``data_range`` = 2 for images in (-1, 1)
    and the range of the validation targets for S0's background-scaled slices.

Conditional GAN (S1): lower is better; the score and its criteria are the FastGAN family's
(:mod:`spectsynth.models.fastgan.scoring`).

The paired SSIM is :func:`spectsynth.losses.gaussian_ssim` (differentiable, Gaussian 11 x 11), not
the SSIM the metric tables report (:func:`spectsynth.metrics.ssim`, uniform 7 x 7): the score
keeps its name ``ssim`` in ``selection.json`` and ``history.csv``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DIRECTION = {"ssim": "max", "l1": "min", "gan": "min"}
__all__ = ["DIRECTION", "is_better", "paired_scores"]


def is_better(metric: str, new: float, old: float | None) -> bool:
    """True when ``new`` improves on ``old`` for ``metric`` (NaN never does)."""
    if not np.isfinite(new):
        return False
    if old is None or not np.isfinite(old):
        return True
    return new > old if DIRECTION[metric] == "max" else new < old


def paired_scores(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> dict[str, torch.Tensor]:
    """Per-image SSIM (:func:`~spectsynth.losses.gaussian_ssim`) and L1 of (N, C, H, W)
    predictions against targets (no gradients).

    torch is imported here, not with the module: :data:`DIRECTION` is read while the workflow's
    DAG is built.
    """
    import torch

    from .losses import gaussian_ssim

    # No TF32 in the SSIM's convolutions: its variance term (E[x^2] - E[x]^2) cancels, and TF32's
    # 10-bit mantissa would decide the selected epoch on a GPU.
    cudnn = torch.backends.cudnn
    with torch.no_grad(), cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                                      deterministic=cudnn.deterministic, allow_tf32=False):
        return {"ssim": gaussian_ssim(pred.float(), target.float(), data_range, reduction="none"),
                "l1": (pred.float() - target.float()).abs().flatten(1).mean(1)}
