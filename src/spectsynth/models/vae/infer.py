"""Inference of S0's VAE beyond the paired prediction: decoding prior samples into a synthetic
normal database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import EvaluationError
from ..inference import batch_ranges, inference_device, load_for_inference


def sample_vae(best_pt: str | Path, n: int, *, experiment: str, seed: int = 0, batch_size: int = 64,
               device: str = "auto") -> np.ndarray:
    """``n`` images decoded from latent samples ``z ~ N(0, I)`` of a trained (plain) VAE.

    The generator's own idea of a normal slice: S0's VAE is trained on normal slices only, so
    its prior samples form a synthetic normal database.  Returns ``(n, C, H, W)`` float32 in
    the dataset's normalised units; the latent stream is seeded (same ``seed``, same images).
    """
    if int(n) < 1:
        raise EvaluationError(f"number of samples must be positive, got {n}", experiment=experiment)
    setup = inference_device(device, experiment)
    nets, spec = load_for_inference(best_pt, device=setup.device, experiment=experiment)
    if spec.get("model") != "vae":
        raise EvaluationError(f"sampling a normal database needs a plain VAE, {best_pt} holds a "
                              f"{spec.get('model')!r}", experiment=experiment,
                              hint="Only S0 experiments with model vae are trained on normal slices only")
    vae = nets["vae"]
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    with torch.inference_mode():
        for a, b in batch_ranges(int(n), int(batch_size)):
            z = torch.randn(b - a, vae.latent_dim, generator=gen).to(setup.device)
            out.append(vae.decoder(z).float().cpu().numpy())
    images = np.concatenate(out, 0).astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise EvaluationError("the VAE decoded NaN or Inf pixels", experiment=experiment,
                              hint="The trained weights are broken; retrain the experiment")
    return images
