"""Losses of pix2pix (S2, S3): binary cross-entropy on the PatchGAN's logits.

The pixel terms (L1, ``1 - SSIM``) are shared and live in :mod:`spectsynth.losses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_adversarial(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Binary cross-entropy on discriminator logits against an all-real or all-fake label, in
    float32 (the logits may come out of bf16/fp16 autocast; the loss is computed outside it)."""
    logits = logits.float()
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
