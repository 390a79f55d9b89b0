"""The training harness: outputs, kill-and-resume with identical weights, bad input."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import phantom

from spectsynth.checkpoints import CheckpointError, load_checkpoint
from spectsynth.errors import ConfigError, TrainingError
from spectsynth.experiments import expand_experiments
from spectsynth.labels import PATTERNS
from spectsynth.models.inference import load_for_inference
from spectsynth.studies import build_dataset, dataset_spec
from spectsynth.train import train_experiment

LEVELS_TABLE = {"CER": (5, 12), "BG": (14, 22), "COR": (24, 32)}


# 4 training slices per level x pattern (4 training subjects, one scan of each pattern)
S1_COUNTS = {lv: {p: 4 for p in PATTERNS} for lv in ("CER", "BG", "COR")}
DATASETS = {"s0": {"size": 32}, "s1": {"size": 32, "slices_per_level": 1, "counts": S1_COUNTS},
            "s2": {"size": 32, "n_slices": 6, "spaces": ["native"]}}
# Pinned to the CPU: the bit-identity checks below hold on one device and fp32; the CUDA path
# has its own tests (marker `cuda`) with the tolerance mixed precision needs.
TRAINING = {"progress": False, "checkpoint_every": 1, "device": "cpu"}
ENTRIES = {
    "gan": {"study": "S1", "model": "fastgan", "variants": ["A"], "epochs": 2, "base_channels": 4,
            "gan_feature_steps": 5, "gan_eval_samples": 4},
    "p2p": {"study": "S2", "model": "pix2pix", "inputs": ["mri+pet"], "spaces": ["native"], "losses": ["l1+ssim"],
            "epochs": 2, "ngf": 4, "ndf": 4, "batch_size": 4},
    "rest": {"study": "S0", "model": "cvae", "epochs": 2, "base_channels": 4, "latent_dim": 8, "batch_size": 4},
    "clin": {"study": "S0", "model": "vae", "epochs": 2, "base_channels": 4, "latent_dim": 8, "batch_size": 4},
}
NAMES = {"gan": "gan_A", "p2p": "p2p_mripet_native_l1ssim", "rest": "rest", "clin": "clin"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    # S0: the simulator's design sets (main for train/test, validation for val)
    cfg = {"datasets": DATASETS, "simulate": {"dat": {"n_main": 2, "n_validation": 1}}}
    s1 = [{"subject": f"{i:02d}", "volumes": {"spect": phantom(i * 3 + j, p)}, "pattern": p,
           "levels": LEVELS_TABLE} for i in range(6) for j, p in enumerate(PATTERNS)]
    s0 = [{"subject": f"{i:02d}", "volumes": {"damaged": phantom(i, striatum=s), "original": phantom(i)},
           "params": {"pbr": s, "cbr": s, "slr": 1.0, "design_set": ds}} for i in range(6)
          for s, ds in ((0.2, "main"), (0.5, "main"), (0.8, "validation"))]
    s2 = [{"subject": f"{i:02d}", "space": "native",
           "volumes": {"mri": phantom(i), "pet": phantom(i + 50), "spect": phantom(i + 99),
                       "brain": (phantom(i) > 0).astype(np.float32)}} for i in range(6)]
    for name, recs in (("s1", s1), ("s0", s0), ("s2_native", s2)):
        build_dataset(name, recs, cfg, root / name)
    return root


def _spec(key: str, **override) -> dict:
    cfg = {"datasets": DATASETS, "training": TRAINING, "experiments": {key: {**ENTRIES[key], **override}}}
    return expand_experiments(cfg)[NAMES[key]]


def _run(spec: dict, shards, out, datasets=DATASETS, **kw):
    ds = shards / spec["dataset"]
    return train_experiment(spec, {"train": ds / "train.h5", "val": ds / "val.h5"}, out,
                            dataset=dataset_spec({"datasets": datasets}, spec["dataset"]), threads=1, **kw)


class _Kill(Exception):
    pass


def _kill_at(step: int):
    def cb(info):
        if info["global_step"] == step:
            raise _Kill
    return cb


def _final_state(out) -> dict:
    return load_checkpoint(out / "checkpoints" / "last.pt")


def _assert_same_tensors(a, b, path=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"tensors differ at {path}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{path}/{i}")


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("key", list(ENTRIES))
def test_training_writes_every_output(key, shards, tmp_path):
    spec = _spec(key)
    sel = _run(spec, shards, tmp_path)
    for f in ("best.pt", "selection.json", "history.csv", "config.resolved.yaml", "loss_curve.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    assert any((tmp_path / "tensorboard").iterdir())
    hist = pd.read_csv(tmp_path / "history.csv")
    assert hist["epoch"].tolist() == [1, 2] and hist["val_score"].notna().all()
    assert hist["data_wait_share"].between(0, 1).all() and (hist["images_per_second"] > 0).all()
    if key == "p2p":   # each loss term's share of the generator loss, from the first epoch on
        shares = hist[["G_share_adv", "G_share_l1", "G_share_ssim"]]
        np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-5)
        assert (shares["G_share_ssim"] > 0.1).all()   # lambda_ssim 50 makes the SSIM arm count
    on_disk = json.loads((tmp_path / "selection.json").read_text())
    assert on_disk["best_epoch"] in (1, 2) and on_disk == json.loads(json.dumps(sel))
    resolved = yaml.safe_load((tmp_path / "config.resolved.yaml").read_text())
    assert resolved["experiment"] == NAMES[key] and len(resolved["config_hash"]) == 16
    nets, spec2 = load_for_inference(tmp_path / "best.pt")
    assert spec2["experiment"] == NAMES[key]
    net = nets["G"] if "G" in nets else nets["vae"]
    with torch.no_grad():
        if key == "gan":
            out = net(torch.randn(2, 256), torch.eye(6)[:2])
        elif key == "p2p":
            out = net(torch.zeros(2, 2, 32, 32))
        else:
            out = net.predict(torch.zeros(2, 1, 32, 32))
    assert out.shape == (2, 1, 32, 32)


def test_gan_keeps_the_best_checkpoint_under_both_criteria(shards, tmp_path):
    from spectsynth.models.fastgan import GAN_CRITERIA

    spec = _spec("gan")
    assert spec["selection_criterion"] == "feature_distance"          # the default: independent of MC/LR
    sel = _run(spec, shards, tmp_path / "fd")
    assert sel["criterion"] == "feature_distance" and set(sel["by_criterion"]) == set(GAN_CRITERIA)
    hist = pd.read_csv(tmp_path / "fd" / "history.csv")
    for crit in GAN_CRITERIA:
        ck = load_checkpoint(tmp_path / "fd" / f"best-{crit}.pt")
        scores = hist[f"val_score_{crit}"].to_numpy()
        assert ck["criterion"] == crit and ck["epoch"] == int(np.argmin(scores)) + 1
        assert sel["by_criterion"][crit]["best_epoch"] == ck["epoch"]
    np.testing.assert_allclose(hist["val_score"], hist["val_score_feature_distance"])
    best = load_checkpoint(tmp_path / "fd" / "best.pt")
    assert best["epoch"] == load_checkpoint(tmp_path / "fd" / "best-feature_distance.pt")["epoch"]
    # the other criterion as the setting: best.pt follows it, the training itself is the same
    spec = _spec("gan", selection_criterion="study_quantities")
    sel = _run(spec, shards, tmp_path / "sq")
    hist_sq = pd.read_csv(tmp_path / "sq" / "history.csv")
    np.testing.assert_allclose(hist_sq["val_score"], hist_sq["val_score_study_quantities"])
    np.testing.assert_allclose(hist_sq["val_score_feature_distance"], hist["val_score_feature_distance"])
    assert load_checkpoint(tmp_path / "sq" / "best.pt")["epoch"] == sel["by_criterion"]["study_quantities"]["best_epoch"]
    with pytest.raises(ConfigError, match="selection_criterion 'ssim' is unknown"):
        _spec("gan", selection_criterion="ssim")


# --------------------------------------------------------------------------- science: a toy task


def _toy_restoration(rng, n, size=32):
    """Toy S0 restoration: a head with two striatal blobs (random global gain) as the original,
    the same with the left blob's uptake cut to 20-60 % as the damaged input."""
    yy, xx = np.mgrid[0:size, 0:size]
    head = (((yy - 16) / 13.0) ** 2 + ((xx - 16) / 11.0) ** 2) < 1
    left, right = (np.exp(-((yy - 15) ** 2 + (xx - cx) ** 2) / (2 * 2.2 ** 2)) for cx in (11, 21))
    gain = rng.uniform(0.8, 1.2, n)[:, None, None]
    orig = gain * (0.3 * head + 1.5 * (left + right))
    damaged = orig - gain * 1.5 * (1 - rng.uniform(0.2, 0.6, n)[:, None, None]) * left
    as_t = lambda a: torch.tensor(a[:, None], dtype=torch.float32)    # noqa: E731
    return as_t(damaged), as_t(orig), torch.from_numpy(left > 0.5)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("key", ["p2p", "gan"])
def test_kill_and_resume_gives_identical_weights(key, shards, tmp_path):
    """Kill after 5 steps (checkpoint every 3), rerun: same weights as an uninterrupted run."""
    spec = _spec(key)
    spec["training"].update(checkpoint_every_steps=3, checkpoint_every=100)   # mid-epoch checkpoints only
    _run(spec, shards, tmp_path / "straight")
    with pytest.raises(_Kill):
        _run(spec, shards, tmp_path / "killed", callbacks=[_kill_at(5)])
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["global_step"] == 3
    _run(spec, shards, tmp_path / "killed")
    a, b = _final_state(tmp_path / "straight"), _final_state(tmp_path / "killed")
    for part in ("nets", "optim", "extra", "rng"):
        _assert_same_tensors(a[part], b[part], part)
    assert a["global_step"] == b["global_step"] and a["best"] == b["best"]
    drop = {"epoch_seconds", "images_per_second", "data_wait_share"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["history"]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b["history"]]


def test_loader_workers_change_nothing_across_a_kill(shards, tmp_path):
    """Two persistent DataLoader workers, killed mid-epoch and resumed (fresh workers): the same
    weights as one run that loads in the training process. The items' augmentation comes from
    (seed, epoch, index), not from a worker's RNG."""
    spec = _spec("p2p")
    spec["training"].update(checkpoint_every_steps=3, checkpoint_every=100)
    augmented = {**DATASETS, "s2": {**DATASETS["s2"], "augment": {"shift_px": 2, "flip": True}}}
    _run(spec, shards, tmp_path / "in_process", datasets=augmented)
    spec["training"]["num_workers"] = 2
    with pytest.raises(_Kill):
        _run(spec, shards, tmp_path / "workers", datasets=augmented, callbacks=[_kill_at(5)])
    _run(spec, shards, tmp_path / "workers", datasets=augmented)
    a, b = _final_state(tmp_path / "in_process"), _final_state(tmp_path / "workers")
    for part in ("nets", "optim", "rng"):
        _assert_same_tensors(a[part], b[part], part)
    assert a["global_step"] == b["global_step"] > 5


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_kill_on_cuda_and_resume_on_the_cpu(shards, tmp_path):
    """Killed on the GPU (autocast), resumed on the CPU: the run finishes, the record lists both
    devices, and its weights stay close to an uninterrupted GPU run's (not identical: mixed precision)."""
    spec = _spec("p2p")
    spec["training"].update(checkpoint_every_steps=3, checkpoint_every=100, device="cuda", amp="auto")
    _run(spec, shards, tmp_path / "straight")
    with pytest.raises(_Kill):
        _run(spec, shards, tmp_path / "killed", callbacks=[_kill_at(5)])
    spec["training"]["device"] = "cpu"
    _run(spec, shards, tmp_path / "killed")
    b = _final_state(tmp_path / "killed")
    assert [r["device"].split(":")[0] for r in b["runtime"]] == ["cuda", "cpu"]
    a = _final_state(tmp_path / "straight")
    for k, t in a["nets"]["G"].items():
        if torch.is_floating_point(t):
            assert torch.allclose(t.float().cpu(), b["nets"]["G"][k].float().cpu(), atol=5e-2, rtol=5e-2), k


def test_more_epochs_continue_the_run(shards, tmp_path):
    spec = _spec("rest")
    _run(spec, shards, tmp_path / "straight")
    one = dict(spec, epochs=1)
    _run(one, shards, tmp_path / "two_steps")
    _run(spec, shards, tmp_path / "two_steps")              # epochs raised: resumes, does not restart
    _assert_same_tensors(_final_state(tmp_path / "straight")["nets"],
                         _final_state(tmp_path / "two_steps")["nets"])


def test_changed_config_starts_fresh_with_a_message(shards, tmp_path, caplog):
    spec = _spec("clin", epochs=1)
    _run(spec, shards, tmp_path)
    changed = _spec("clin", epochs=1, lr=5e-4)
    with caplog.at_level(logging.WARNING):
        _run(changed, shards, tmp_path)
    assert "configuration changed" in caplog.text and "starting fresh" in caplog.text
    assert list((tmp_path / "checkpoints").glob("stale-*/last.pt"))
    strict = _spec("clin", epochs=1, lr=1e-4)
    strict["training"]["on_config_change"] = "error"
    with pytest.raises(CheckpointError, match="experiment clin: .*another configuration"):
        _run(strict, shards, tmp_path)


def test_truncated_or_corrupt_checkpoint_is_refused(shards, tmp_path):
    spec = _spec("clin", epochs=1)
    _run(spec, shards, tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"experiment clin: checkpoint .*last.pt is truncated") as err:
        _run(dict(spec, epochs=2), shards, tmp_path)
    assert "Delete" in str(err.value)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF                         # one flipped byte inside the tensor data
    last.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="experiment clin"):
        _run(dict(spec, epochs=2), shards, tmp_path)


def test_checkpoint_of_another_experiment_is_refused(shards, tmp_path):
    _run(_spec("clin", epochs=1), shards, tmp_path / "clin")
    (tmp_path / "rest" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "clin" / "checkpoints" / "last.pt", tmp_path / "rest" / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="experiment rest: .*belongs to experiment 'clin'"):
        _run(_spec("rest", epochs=1), shards, tmp_path / "rest")


# --------------------------------------------------------------------------- bad input


def test_batch_larger_than_split(shards, tmp_path):
    with pytest.raises(TrainingError, match=r"experiment rest: batch_size 999 .*lower experiments\.rest"):
        _run(_spec("rest", batch_size=999), shards, tmp_path)


def test_gpu_forced_without_one(shards, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    spec = _spec("clin")
    spec["training"]["device"] = "cuda"
    with pytest.raises(ConfigError, match="experiment clin: .*no CUDA GPU.*training.device: auto"):
        _run(spec, shards, tmp_path)


def test_wrong_slice_size_names_the_dataset(shards, tmp_path):
    spec = _spec("clin")
    spec["size"] = 64
    with pytest.raises(TrainingError, match="holds 32 px slices"):
        _run(spec, shards, tmp_path)
