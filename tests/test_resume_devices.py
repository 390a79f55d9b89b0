"""Resuming across machines: fewer GPUs than the saving machine, and a change of precision."""

from __future__ import annotations

import logging

import torch

from spectsynth.checkpoints import load_scaler_state, restore_cuda_rng


def test_fewer_gpus_than_saved_restores_what_fits(caplog):
    calls = []
    with caplog.at_level(logging.WARNING):
        n = restore_cuda_rng(["s0", "s1"], 1, lambda st, i: calls.append((st, i)))
    assert n == 1 and calls == [("s0", 0)]
    assert "2 GPU(s), this machine has 1" in caplog.text


def test_more_gpus_than_saved_restores_the_saved_ones():
    calls = []
    assert restore_cuda_rng(["s0"], 4, lambda st, i: calls.append(i)) == 1 and calls == [0]


def test_scaler_off_saved_then_fp16_resume_starts_a_fresh_scale():
    off = torch.amp.GradScaler("cpu", enabled=False)
    on = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    saved = off.state_dict()
    assert saved == {}
    load_scaler_state(on, saved)                  # plain load_state_dict would raise here
    assert on.get_scale() == 1024.0
    load_scaler_state(off, on.state_dict())       # a saved scale is dropped when none is needed
    assert not off.is_enabled()
    other = torch.amp.GradScaler("cpu", enabled=True, init_scale=8.0)
    load_scaler_state(other, on.state_dict())
    assert other.get_scale() == 1024.0


def test_a_shard_handle_is_never_used_in_another_process(tmp_path, monkeypatch):
    """A row read in the main process opens the HDF5 file; a forked DataLoader worker (another
    pid) must open its own handle instead of using the inherited one."""
    import os

    import h5py
    import numpy as np

    from spectsynth import datasets
    from spectsynth.datasets import SliceShard

    path = tmp_path / "train.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4))
        f.attrs["channels"] = '["x"]'
        for k in ("level", "pattern", "row"):
            f.create_dataset(k, data=np.zeros(2, np.int64))
    shard = SliceShard(path, preload_max_mb=0)
    first = shard.images(1)
    parent = shard._file
    other = os.getpid() + 1
    monkeypatch.setattr(datasets.os, "getpid", lambda: other)
    assert np.array_equal(shard.images(1), first)
    assert shard._file is not parent


def test_the_runtime_record_lists_each_change_across_a_resume(caplog):
    from spectsynth.device import select_device
    from spectsynth.train import note_runtime

    cpu = select_device("cpu").record()
    assert cpu["device"] == "cpu" and cpu["precision"] == "fp32" and cpu["torch"] == torch.__version__
    state = {"epoch": 0, "global_step": 0}
    note_runtime(state, cpu)
    state.update(epoch=3, global_step=30)
    note_runtime(state, cpu)                               # same machine: one entry
    assert len(state["runtime"]) == 1
    gpu = dict(cpu, device="cuda:0", precision="bfloat16 autocast")
    with caplog.at_level(logging.WARNING):
        note_runtime(state, gpu)
    assert [r["device"] for r in state["runtime"]] == ["cpu", "cuda:0"]
    assert state["runtime"][1]["from_epoch"] == 3 and "resumed on cuda:0" in caplog.text


def test_adversarial_loss_and_selection_run_in_float32():
    from spectsynth.models.pix2pix.losses import bce_adversarial
    from spectsynth.selection import paired_scores

    logits = torch.randn(2, 1, 4, 4).to(torch.bfloat16)
    loss = bce_adversarial(logits, True)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), torch.ones(2, 1, 4, 4)))
    pred = torch.rand(2, 1, 16, 16).to(torch.bfloat16)
    s = paired_scores(pred, torch.rand(2, 1, 16, 16), 2.0)
    assert s["ssim"].dtype == torch.float32 and s["l1"].dtype == torch.float32
