"""What every family's inference shares: the networks of a ``best.pt``, the device and batches.

Here rather than in :mod:`spectsynth.checkpoints` (which knows no model family) or in
:mod:`spectsynth.infer` (the file handling above the families), so that the families' own
inference (``models/<family>/infer.py``) imports nothing above its layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..artifacts import BEST
from ..checkpoints import BEST_KIND, CheckpointError, load_checkpoint

__all__ = ["batch_ranges", "inference_device", "load_for_inference"]


def batch_ranges(n: int, batch_size: int):
    """``(start, stop)`` of consecutive batches of at most ``batch_size`` over ``n`` items."""
    for start in range(0, n, batch_size):
        yield start, min(n, start + batch_size)


def inference_device(requested: str, experiment: str):
    """The device setup of an inference (``auto``, ``cpu`` or ``cuda[:N]``; no mixed precision)."""
    from ..device import select_device

    return select_device(requested, amp="off", context=f"experiment {experiment}")


def load_for_inference(path: str | Path, *, device: str | torch.device = "cpu",
                       experiment: str = "") -> tuple[torch.nn.ModuleDict, dict]:
    """Rebuild the inference networks of a ``best.pt`` (eval mode) and return them with the spec.

    Keys: ``vae`` (S0) or ``G`` (pix2pix U-Net, FastGAN EMA generator).
    """
    from . import build_model

    ck = load_checkpoint(path, experiment=experiment, map_location="cpu")
    if ck.get("kind") != BEST_KIND:
        raise CheckpointError(f"{path} is a training checkpoint, not a {BEST}; use the experiment's {BEST}")
    spec = json.loads(ck["spec"])
    nets = build_model(ck["family"], spec)
    keep = torch.nn.ModuleDict({k: nets[k] for k in ck["nets"]})
    for k, m in keep.items():
        m.load_state_dict(ck["nets"][k])
        m.to(device).eval()
    return keep, spec
