"""S0's binding-ratio regression CNN: known SBR in the dataset index, learning, seeding, reloading,
bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from spectsynth.datasets import write_shards
from spectsynth.errors import EvaluationError
from spectsynth.studies import build_dataset, dataset_entries
from spectsynth.studies.s0 import sbr_regressor as R

SIZE = 16
# Blob centres (row, column) in the stored orientation: columns < SIZE / 2 are the subject's left.
CENTRES = {"caudate_L": (5, 6), "caudate_R": (5, 9), "putamen_L": (9, 4), "putamen_R": (9, 11)}


def blob_slice(sbr: dict, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Background 1, one Gaussian blob per region whose peak is 1 + its SBR, a little noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.ones((size, size))
    for region, (cy, cx) in CENTRES.items():
        img += sbr[region] * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    return img + 0.03 * rng.standard_normal((size, size))


def make_s0_shards(out: Path, n=(64, 16, 8), seed: int = 0, sbr_columns: bool = True) -> Path:
    """S0-like shards (damaged, original) + index with the known SBR of both, via write_shards."""
    rng = np.random.default_rng(seed)
    images, rows = [], []
    for split, k in zip(("train", "val", "test"), n):
        for i in range(k):
            orig = {r: rng.uniform(2.5, 3.5) if r.startswith("caudate") else rng.uniform(1.6, 2.4)
                    for r in R.REGIONS}
            dam = {r: v * rng.uniform(0.2, 1.0) for r, v in orig.items()}
            images.append(np.stack([blob_slice(dam, rng), blob_slice(orig, rng)]))
            row = {"dataset": "s0", "study": "S0", "subject": f"{split}{i // 4:02d}", "split": split,
                   "level": "BG", "pattern": "degraded", "space": "camera", "source": "sim", "slice_index": 0,
                   "n_z": 1, "record": i, "desc": f"d{i}"}
            if sbr_columns:
                row |= {f"sbr_{r}": dam[r] for r in R.REGIONS} | {f"orig_sbr_{r}": orig[r] for r in R.REGIONS}
            rows.append(row)
    write_shards("s0", np.stack(images).astype(np.float32), pd.DataFrame(rows),
                 {"study": "S0", "size": SIZE, "normalise": "background"}, out, channels=("damaged", "original"))
    return out


def train(ds: Path, out: Path, **kw):
    args = dict(epochs=3, batch_size=16, base_channels=4, lr=1e-2, seed=0, device="cpu", progress=False, threads=1)
    args.update(kw)
    return R.train_sbr_regressor(ds / "train.h5", ds / "val.h5", ds / "index.tsv", out, **args)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_s0_shards(tmp_path_factory.mktemp("s0"))


# ------------------------------------------------------------------- known SBR in the dataset index
def _truth_table(path: Path) -> Path:
    rows = []
    for idx, pattern in enumerate(["normal", "degraded", "degraded"]):
        row = {"index": idx, "pair_index": 0, "pattern": pattern, "pbr": 1.0 - 0.3 * idx, "cbr": 1.0, "slr": 1.0,
               "affected_side": "n/a", "design_set": "main", "desc": f"v{idx}"}
        for j, r in enumerate(R.REGIONS):
            row[f"true_sbr_{r}"] = 9.0          # the phantom's binding: never what the index takes
            row[f"meas_sbr_{r}"] = 3.0 - idx + 0.1 * j
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def test_s0_entries_carry_measured_sbr_of_damaged_and_original(tmp_path):
    truth = _truth_table(tmp_path / "truth.tsv")
    entries = dataset_entries("s0", {"01": {"dat": "dat.nii.gz", "dat_truth": str(truth)}})
    assert [e["files"]["damaged"]["volume"] for e in entries] == [1, 2]
    for e, idx in zip(entries, (1, 2)):
        for j, r in enumerate(R.REGIONS):
            assert e["params"][f"sbr_{r}"] == pytest.approx(3.0 - idx + 0.1 * j)
            assert e["params"][f"orig_sbr_{r}"] == pytest.approx(3.0 + 0.1 * j)   # volume 0, the original


def test_build_dataset_writes_the_sbr_params_as_index_columns(tmp_path):
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (20, 24, 12)], indexing="ij")
    stri = ((np.abs(x) - 0.3) ** 2 / 0.02 + y ** 2 / 0.05 + z ** 2 / 0.1) < 1
    brain = ((x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.9) ** 2) < 1

    def vol(s):
        return (brain * 1.0 + stri * s).astype(np.float32)

    recs = [{"subject": f"{i:02d}", "volumes": {"damaged": vol(s), "original": vol(3.0)},
             "params": {"pbr": s, "design_set": ds, **{f"sbr_{r}": s for r in R.REGIONS},
                        **{f"orig_sbr_{r}": 3.0 for r in R.REGIONS}}}
            for i in range(5) for s, ds in ((0.5, "main"), (1.0, "main"), (2.0, "validation"))]
    idx = build_dataset("s0", recs, {"datasets": {"s0": {"size": 16}},
                                     "simulate": {"dat": {"n_main": 2, "n_validation": 1}}}, tmp_path)
    on_disk = pd.read_csv(tmp_path / "index.tsv", sep="\t")
    for col in R.sbr_columns("sbr_") + R.sbr_columns("orig_sbr_"):
        assert col in idx.columns and col in on_disk.columns
    np.testing.assert_allclose(on_disk["sbr_putamen_L"], on_disk["pbr"])
    assert (on_disk["orig_sbr_caudate_R"] == 3.0).all()


# ------------------------------------------------------------------- the CNN
def test_cnn_learns_sbr_well_below_the_mean_predictor(shards, tmp_path):
    res = train(shards, tmp_path / "run", epochs=40, base_channels=8)
    index = pd.read_csv(shards / "index.tsv", sep="\t")
    val = index[index["split"] == "val"]
    y = np.concatenate([val[R.sbr_columns("sbr_")].to_numpy(), val[R.sbr_columns("orig_sbr_")].to_numpy()])
    baseline = np.abs(y - y.mean(0)).mean()          # predicting the validation mean (better than any constant)
    mae = np.mean(list(res["val_mae"].values()))
    assert mae < 0.5 * baseline, (mae, baseline)
    hist = pd.read_csv(tmp_path / "run" / "training.tsv", sep="\t")
    assert list(hist["epoch"]) == list(range(1, 41)) and hist["selected"].sum() == 1
    assert {f"val_mae_{r}" for r in R.REGIONS} <= set(hist.columns)
    assert hist.loc[hist["selected"], "epoch"].item() == res["best_epoch"]
    assert hist["train_loss"].iloc[-5:].mean() < 0.5 * hist["train_loss"].iloc[0]
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 5000
    assert not list((tmp_path / "run").glob(".tmp-*"))


def test_weights_reload_with_weights_only_and_predict_identically(shards, tmp_path):
    res = train(shards, tmp_path / "run")
    raw = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert raw["kind"] == "sbr_regressor" and raw["epoch"] == res["best_epoch"]
    model = R.load_sbr_regressor(tmp_path / "run" / "best.pt", device="cpu")
    assert not model.training
    x, y, _ = R.shard_examples(shards / "val.h5", pd.read_csv(shards / "index.tsv", sep="\t"))
    a = R.predict_sbr(model, x, batch_size=7)
    b = R.predict_sbr(R.load_sbr_regressor(tmp_path / "run" / "best.pt"), x, batch_size=64)
    assert list(a.columns) == list(R.REGIONS)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=0, atol=1e-5)
    # the reloaded network reproduces the validation error recorded for the selected epoch
    np.testing.assert_allclose(np.abs(a.to_numpy() - y).mean(0), [res["val_mae"][r] for r in R.REGIONS], atol=1e-5)


def test_same_seed_gives_identical_weights(shards, tmp_path):
    train(shards, tmp_path / "a", epochs=2, seed=5)
    train(shards, tmp_path / "b", epochs=2, seed=5)
    train(shards, tmp_path / "c", epochs=2, seed=6)
    a, b, c = (torch.load(tmp_path / k / "best.pt", weights_only=True)["state_dict"] for k in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_rerun_overwrites_the_outputs_whole(shards, tmp_path):
    train(shards, tmp_path / "run", epochs=2)
    train(shards, tmp_path / "run", epochs=3)
    assert len(pd.read_csv(tmp_path / "run" / "training.tsv", sep="\t")) == 3
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "learning_curve.png", "training.tsv"]


# ------------------------------------------------------------------- bad input
def test_slices_of_the_wrong_shape_name_the_experiment(shards, tmp_path):
    train(shards, tmp_path / "run", epochs=1)
    model = R.load_sbr_regressor(tmp_path / "run" / "best.pt")
    with pytest.raises(EvaluationError, match=r"experiment s0_clinical: .*\(N, 1, 16, 16\)"):
        R.predict_sbr(model, np.ones((3, 1, 32, 32), np.float32), experiment="s0_clinical")
    with pytest.raises(EvaluationError, match="experiment sbr_regressor"):
        R.predict_sbr(model, np.ones((3, 16, 16), np.float32))


def test_index_without_sbr_columns_stops_training(tmp_path):
    ds = make_s0_shards(tmp_path / "ds", n=(8, 4, 4), sbr_columns=False)
    with pytest.raises(EvaluationError, match=r"experiment sbr_regressor: .*known-SBR column.*Rebuild dataset s0"):
        train(ds, tmp_path / "run")
    assert not (tmp_path / "run" / "best.pt").exists()


def test_corrupt_weights_are_refused(shards, tmp_path):
    train(shards, tmp_path / "run", epochs=1)
    path = tmp_path / "run" / "best.pt"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(EvaluationError, match="truncated or unreadable"):
        R.load_sbr_regressor(path, experiment="s0_restoration")
    with pytest.raises(EvaluationError, match="experiment s0_restoration: .*do not exist"):
        R.load_sbr_regressor(tmp_path / "nothing.pt", experiment="s0_restoration")
