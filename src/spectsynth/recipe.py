"""The interface between the generic training loop (:mod:`spectsynth.train`) and a model family.

A family's recipe (``spectsynth.models.<family>.recipe``) subclasses :class:`Recipe`: it makes
the family's training and validation datasets from the shards, owns the optimisers (one Adam
per network, in the order of the networks), does one optimisation step, validates, and names
the networks that go into ``best.pt``.  The loop owns the epochs, the data order, the learning
rate schedule, resuming, checkpoints, history and selection.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from .device import DeviceSetup


def move_batch(batch: Mapping, device: torch.device, channels_last: bool) -> dict:
    """A batch's tensors on ``device`` (4-D ones in channels-last layout when asked)."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


class Recipe:
    """Family-specific steps; the harness owns the loop, checkpoints and logs."""

    metric_data_range: float = 2.0

    def __init__(self, spec: dict, nets: nn.ModuleDict, setup: DeviceSetup):
        self.spec, self.nets, self.setup = spec, nets, setup
        betas = tuple(float(b) for b in spec["betas"])
        # On a GPU, one fused kernel per optimizer step instead of a launch per parameter tensor; on
        # the CPU the per-tensor reference (the numbers every CPU run and test has given).
        fused = True if setup.is_cuda else None
        self.optim = {k: torch.optim.Adam(m.parameters(), lr=float(spec["lr"]), betas=betas, fused=fused)
                      for k, m in nets.items()}
        self.scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.grad_scaler)

    @classmethod
    def make_datasets(cls, spec: Mapping, shards: Mapping, dspec: Mapping, seed: int):
        """``(train, val)`` datasets of the family from the opened ``{"train", "val"}`` shards
        (:class:`~spectsynth.datasets.SliceShard`); ``dspec`` is the dataset's config
        (:func:`spectsynth.datasets.dataset_spec`)."""
        raise NotImplementedError

    def autocast(self):
        return torch.autocast(device_type=self.setup.device.type, dtype=self.setup.amp_dtype or torch.float32,
                              enabled=self.setup.amp_dtype is not None)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optim[name]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)

    # state beyond nets/optimisers (EMA, feature net)
    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: Mapping) -> None:
        pass

    def inference_nets(self) -> dict[str, dict]:
        raise NotImplementedError

    def prepare(self, train_ds, val_ds) -> None:
        """Called once before the first epoch of a fresh run."""

    def resumed(self, train_ds, val_ds) -> None:
        """Called instead of :meth:`prepare` when a run resumes from a checkpoint."""

    def train_step(self, batch: dict, progress: float) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def validate(self, val_ds) -> dict[str, float]:
        raise NotImplementedError

    def criteria(self) -> tuple[str, ...]:
        """Selection criteria whose best checkpoint is kept besides ``best.pt`` (validate returns
        ``score_<criterion>`` for each); none for the paired families."""
        return ()
