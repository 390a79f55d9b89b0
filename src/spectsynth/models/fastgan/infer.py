"""Inference of S1's conditional FastGAN: samples per condition from the EMA generator."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...errors import EvaluationError
from ...labels import LEVELS, PATTERNS
from ..inference import batch_ranges
from .data import condition_vector
from .network import sample_latent


def predict_gan(nets, spec: Mapping, index: pd.DataFrame, *, batch_size: int, device,
                seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Draw, per condition, as many FastGAN samples as the real test split has.

    Samples are returned in the shard's units (max-normalised, ``(x + 1) / 2`` of the
    generator's ``[-1, 1]`` output) with one table row per sample (``level, pattern,
    sample, seed``).  Conditions outside the experiment's levels are ignored.
    """
    name = spec["experiment"]
    cond = spec["condition"]
    levels = list(cond["levels"])
    real = index[index["level"].isin(levels)]
    if real.empty:
        raise EvaluationError(f"the test split has no slices at levels {levels}; there is nothing "
                              "to match the number of generated images to", experiment=name,
                              hint="Give dataset s1 test subjects (datasets.s1.split)")
    counts = real.groupby(["level", "pattern"], sort=False).size()
    order = [(lv, p) for lv in LEVELS for p in PATTERNS if (lv, p) in counts.index]
    G = nets["G"]
    G.eval()
    gen = torch.Generator().manual_seed(int(seed))
    images, rows = [], []
    with torch.inference_mode():
        for lv, pat in order:
            n = int(counts[(lv, pat)])
            vec = torch.from_numpy(condition_vector(lv, pat, bool(cond["use_level"])))
            done = 0
            for a, b in batch_ranges(n, batch_size):
                z = sample_latent(b - a, int(spec["latent_dim"]), generator=gen, device=device)
                c = vec[None].expand(b - a, -1).to(device)
                x = G(z, c).float().cpu().numpy()
                images.append((x + 1.0) / 2.0)
                for _ in range(b - a):
                    rows.append({"experiment": name, "kind": "generated", "level": lv,
                                 "pattern": pat, "sample": done, "seed": int(seed)})
                    done += 1
    pred = np.concatenate(images, 0).astype(np.float32)
    if not np.all(np.isfinite(pred)):
        raise EvaluationError("the generator produced NaN or Inf pixels", experiment=name,
                              hint="The trained weights are broken; retrain the experiment")
    return pred, pd.DataFrame(rows)


def predict_gan_table(nets, spec: Mapping, test_shard: str | Path, index: pd.DataFrame, *,
                      batch_size: int, device, seed: int = 0) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """The family inference of FastGAN (``test_shard`` is unused: only the index's condition
    counts are read): the samples of :func:`predict_gan` and their table with ``pred_row``."""
    pred, table = predict_gan(nets, spec, index, batch_size=int(batch_size), device=device, seed=seed)
    table.insert(2, "pred_row", np.arange(len(table)))
    return {"prediction": pred}, table
