"""What the paired families (``vae``/``cvae`` for S0, ``pix2pix`` for S2/S3) share: datasets of
(input, target) slices, validation by SSIM/L1 and one prediction per test slice."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..datasets import PairedSliceDataset
from ..errors import EvaluationError
from ..recipe import Recipe, move_batch
from ..selection import paired_scores
from .inference import batch_ranges


class PairedRecipe(Recipe):
    """Validation shared by the paired families: predict every validation slice, SSIM/L1."""

    @classmethod
    def make_datasets(cls, spec: Mapping, shards: Mapping, dspec: Mapping, seed: int):
        augment = dspec.get("augment") or {}
        tr_in = spec["target_channels"] if spec["model"] == "vae" else spec["input_channels"]
        aug = {k: v for k, v in augment.items() if k in ("shift_px", "flip")}
        train = PairedSliceDataset(shards["train"], tr_in, spec["target_channels"], augment=aug, seed=seed)
        val = PairedSliceDataset(shards["val"], spec["input_channels"], spec["target_channels"])
        return train, val

    def predict(self, inp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, val_ds) -> dict[str, float]:
        for m in self.nets.values():
            m.eval()
        scores: dict[str, list] = {"ssim": [], "l1": []}
        loader = DataLoader(val_ds, batch_size=64, shuffle=False, num_workers=0,
                            generator=torch.Generator().manual_seed(0))
        for batch in loader:
            b = move_batch(batch, self.setup.device, self.setup.channels_last)
            # float32, as inference predicts: the checkpoint is chosen in the precision it is used in
            pred = self.predict(b["input"]).float()
            s = paired_scores(pred, b["target"].float(), self.metric_data_range)
            for k in scores:
                scores[k].append(s[k].cpu())
        for m in self.nets.values():
            m.train()
        out = {k: float(torch.cat(v).mean()) for k, v in scores.items()}
        out["score"] = out[self.spec["selection_metric"]]
        return out


def predict_paired(nets, spec: Mapping, shard_path: str | Path, index: pd.DataFrame, *,
                   batch_size: int, device) -> dict[str, np.ndarray]:
    """Predict every slice of a test shard with a paired network (pix2pix G or (c)VAE).

    Returns ``input``, ``target``, ``prediction`` arrays ``(N, C, H, W)`` (float32, the
    shard's normalised units), ``row`` (the shard rows) and, when the shard has it, ``brain``
    (the T1w brain mask, ``(N, 1, H, W)``).
    """
    from ..datasets import SliceShard

    name = spec["experiment"]
    shard = SliceShard(shard_path)
    if len(shard) != len(index):
        raise EvaluationError(
            f"test shard {shard_path} holds {len(shard)} slices but its index lists {len(index)} "
            "test rows", experiment=name, hint="Rebuild the dataset (index and shards disagree)")
    if len(shard) == 0:
        raise EvaluationError(f"test shard {shard_path} is empty; there is nothing to predict",
                              experiment=name, hint="Give the dataset test subjects (datasets.*.split)")
    cin = shard.channel_index(spec["input_channels"])
    cout = shard.channel_index(spec["target_channels"])
    images = shard.all_images()
    inp = np.ascontiguousarray(images[:, cin], dtype=np.float32)
    tgt = np.ascontiguousarray(images[:, cout], dtype=np.float32)
    net = nets["G"] if "G" in nets else nets["vae"]
    net.eval()
    out = []
    with torch.inference_mode():
        for a, b in batch_ranges(len(inp), batch_size):
            x = torch.from_numpy(inp[a:b]).to(device)
            y = net.predict(x) if hasattr(net, "predict") else net(x)
            out.append(y.float().cpu().numpy())
    pred = np.concatenate(out, 0).astype(np.float32)
    if pred.shape != tgt.shape:
        raise EvaluationError(f"the network returns slices of shape {pred.shape[1:]} but the targets "
                              f"have shape {tgt.shape[1:]}", experiment=name,
                              hint="The checkpoint does not match this dataset; retrain the experiment")
    if not np.all(np.isfinite(pred)):
        raise EvaluationError(f"{int((~np.isfinite(pred)).sum())} predicted pixels are NaN or Inf",
                              experiment=name, hint="The trained weights are broken; retrain the experiment")
    out = {"input": inp, "target": tgt, "prediction": pred, "row": np.asarray(shard.rows)}
    if "brain" in shard.channels:   # the T1w brain mask travels with the slices for the in-brain metrics
        out["brain"] = np.ascontiguousarray(images[:, shard.channel_index(["brain"])], dtype=np.float32)
    return out


def predict_paired_table(nets, spec: Mapping, test_shard: str | Path, index: pd.DataFrame, *,
                         batch_size: int, device, seed: int = 0) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """The family inference of the paired families (``seed`` is unused: nothing is sampled):
    :func:`predict_paired`'s arrays and the test index with ``experiment``, ``kind`` =
    ``paired`` and ``pred_row`` in front."""
    arrays = predict_paired(nets, spec, test_shard, index, batch_size=int(batch_size), device=device)
    table = index.copy()
    table.insert(0, "experiment", spec["experiment"])
    table.insert(1, "kind", "paired")
    table.insert(2, "pred_row", np.arange(len(table)))
    return arrays, table
