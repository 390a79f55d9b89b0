"""Reading and writing of checkpoints: one format for training, inference and the SBR regressor.

A checkpoint is a dict of tensors and plain containers (loadable with
``torch.load(weights_only=True)``) with ``format`` = :data:`CHECKPOINT_FORMAT`,
``format_version`` = :data:`CHECKPOINT_VERSION` and ``integrity``, a SHA-256 over everything
else (tensor bytes and the structure of the plain values) that :func:`load_checkpoint` checks,
so a truncated or corrupted file is reported and never used.  Files are written to a temporary
name and renamed (:func:`spectsynth.io.atomic_output`).

Three kinds are written:

* training state (``checkpoints/last.pt`` and its epoch copies; no ``kind`` key): networks,
  optimisers, schedulers, loss scaler, the family's extra state (EMA, feature net), epoch and
  step, the Python/NumPy/torch RNG states (:func:`rng_state`), history and best scores;
  built by :func:`training_checkpoint`;
* ``kind: best`` (``best.pt``): the inference networks of the selected epoch with the resolved
  spec, built by :func:`best_checkpoint` and rebuilt into networks by
  :func:`spectsynth.models.inference.load_for_inference` (this module knows no model family);
* ``kind: sbr_regressor``: S0's binding-ratio CNN (:mod:`spectsynth.studies.s0.sbr_regressor`).

:func:`config_hash` fingerprints what determines the learnt weights, so a checkpoint written
under another configuration is recognised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import SpectsynthError
from .io import atomic_output

CHECKPOINT_FORMAT = "spectsynth-checkpoint"
CHECKPOINT_VERSION = 1
BEST_KIND = "best"

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "BEST_KIND", "CheckpointError", "config_hash",
           "save_checkpoint", "load_checkpoint", "training_checkpoint",
           "best_checkpoint", "rng_state", "set_rng_state", "restore_cuda_rng", "load_scaler_state", "seed_everything", "digest"]

log = logging.getLogger(__name__)

# Spec keys that do not change what is learnt (a change keeps the checkpoints valid).
HASH_EXCLUDE = {"epochs", "resources", "description", "entry"}
HASH_EXCLUDE_TRAINING = {"device", "amp", "channels_last", "cudnn_benchmark", "compile", "num_workers",
                         "checkpoint_every", "checkpoint_every_steps", "keep_checkpoints", "on_config_change",
                         "progress", "preload_max_mb", "validate_every"}


class CheckpointError(SpectsynthError):
    """A checkpoint is unreadable, corrupt, or belongs to another experiment."""


# --------------------------------------------------------------------------- hashing


def config_hash(spec: Mapping, data_fingerprints: Mapping[str, str] | None = None) -> str:
    """SHA-256 (16 hex) of what determines the learnt weights: the spec without run-only
    settings (epochs, device, worker count, checkpoint cadence, resources) and the shards'
    content hashes."""
    view = {k: v for k, v in spec.items() if k not in HASH_EXCLUDE}
    view["training"] = {k: v for k, v in (spec.get("training") or {}).items()
                        if k not in HASH_EXCLUDE_TRAINING}
    view["data"] = dict(sorted((data_fingerprints or {}).items()))
    blob = json.dumps(view, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _walk(obj: Any, path: str = ""):
    """Yield (path, tensor) for every tensor in nested mappings and sequences."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            yield from _walk(obj[k], f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}/{i}")


def _skeleton(obj: Any) -> Any:
    """A JSON skeleton of everything but the tensors' values (for the digest)."""
    if isinstance(obj, torch.Tensor):
        return ["tensor", str(obj.dtype), list(obj.shape)]
    if isinstance(obj, Mapping):
        return {str(k): _skeleton(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_skeleton(v) for v in obj]
    return obj


def digest(obj: Mapping) -> str:
    """SHA-256 of a checkpoint dict without its ``integrity`` entry."""
    h = hashlib.sha256()
    h.update(json.dumps(_skeleton({k: v for k, v in obj.items() if k != "integrity"}),
                        sort_keys=True, default=repr).encode())
    for path, t in _walk({k: v for k, v in obj.items() if k != "integrity"}):
        h.update(path.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- save / load


def save_checkpoint(obj: Mapping, path: str | Path) -> None:
    """Add the ``integrity`` digest to ``obj`` and write it atomically (fsynced) with torch.save."""
    obj = dict(obj)
    obj["integrity"] = digest(obj)
    with atomic_output(Path(path)) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path, *, experiment: str = "", map_location: str | torch.device = "cpu"
                    ) -> dict:
    """Load and verify a checkpoint or ``best.pt`` (``weights_only=True``, SHA-256 checked).

    Raises :class:`CheckpointError` naming the experiment and the file when it is truncated,
    corrupt, or not a spectsynth checkpoint.
    """
    path = Path(path)
    who = f"experiment {experiment}: " if experiment else ""
    hint = (f"Delete {path} to discard it: the next run then resumes from an older checkpoint in "
            f"{path.parent} if there is one, or trains from the start")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(f"{who}checkpoint {path} is truncated or unreadable "
                              f"({type(exc).__name__}: {str(exc)[:120]}). {hint}") from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{who}{path} is not a spectsynth checkpoint. {hint}")
    if obj.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{who}{path} has checkpoint format {obj.get('format_version')}, this "
                              f"version reads {CHECKPOINT_VERSION}. {hint}")
    if obj.get("integrity") != digest(obj):
        raise CheckpointError(f"{who}checkpoint {path} is corrupt (its SHA-256 does not match its "
                              f"content). {hint}")
    return obj


# --------------------------------------------------------------------------- content


def training_checkpoint(name: str, family: str, chash: str, nets: torch.nn.ModuleDict, recipe,
                        scheds: Mapping, state: Mapping) -> dict:
    """The full training state (``last.pt``): everything a resume needs, RNG states included."""
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "experiment": name,
            "family": family, "config_hash": chash, "epoch": int(state["epoch"]),
            "step_in_epoch": int(state["step_in_epoch"]), "global_step": int(state["global_step"]),
            "nets": {k: m.state_dict() for k, m in nets.items()},
            "optim": {k: o.state_dict() for k, o in recipe.optim.items()},
            "sched": {k: s.state_dict() for k, s in scheds.items()},
            "scaler": recipe.scaler.state_dict(), "extra": recipe.extra_state(), "rng": rng_state(),
            "history": list(state["history"]), "best": dict(state["best"]),
            "best_by": {k: dict(v) for k, v in state.get("best_by", {}).items()},
            "accum": {k: float(v) for k, v in state["accum"].items()},
            "data_wait": float(state["data_wait"]), "torch_version": str(torch.__version__),
            "runtime": [dict(r) for r in state.get("runtime", [])]}


def best_checkpoint(name: str, family: str, chash: str, spec: Mapping, recipe, epoch: int, score: float,
                    metric: str, criterion: str | None = None) -> dict:
    """A ``best.pt``: the recipe's inference networks of one epoch and the resolved spec."""
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "kind": BEST_KIND,
            "experiment": name, "family": family, "config_hash": chash, "epoch": int(epoch),
            "score": float(score), "metric": metric, "criterion": str(criterion or metric),
            "spec": json.dumps(spec, sort_keys=True), "nets": recipe.inference_nets()}


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict:
    """The Python, NumPy and torch (and initialised CUDA) RNG states as checkpoint content."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    """Restore the RNG states saved by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        restore_cuda_rng(list(state["cuda"]), torch.cuda.device_count(), torch.cuda.set_rng_state)


def restore_cuda_rng(states: list, n_devices: int, setter) -> int:
    """Give each visible GPU its saved RNG state, as far as both go; returns how many were set.

    A run saved on a machine with more GPUs (a 2-GPU workstation, resumed under SLURM with
    ``--gpus=1``) restores the first ``n_devices`` states; GPUs the saving machine lacked keep
    their seeded state.  Either way a warning says that the random stream differs from an
    uninterrupted run's.
    """
    n = min(len(states), int(n_devices))
    for i in range(n):
        setter(states[i], i)
    if len(states) != n_devices:
        log.warning("the checkpoint holds RNG states of %d GPU(s), this machine has %d: restored %d; the "
                    "random stream differs from an uninterrupted run's", len(states), n_devices, n)
    return n


def load_scaler_state(scaler, saved: Mapping | None) -> None:
    """Restore a loss scaler, across a change of precision (device and precision are not part of
    the configuration hash): a run saved without a scaler (CPU, bf16) resumed under fp16 starts a
    fresh loss scale; a saved scale is dropped when this run needs none."""
    saved = dict(saved or {})
    if not scaler.is_enabled():
        return
    if not saved:
        log.info("the checkpoint was saved without a loss scaler (CPU or bf16); fp16 starts a fresh loss scale")
        return
    scaler.load_state_dict(saved)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and, when initialised, CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
