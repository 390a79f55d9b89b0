"""Inference: predictions of paired and GAN experiments on tiny synthetic shards, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import phantom

from spectsynth.errors import EvaluationError
from spectsynth.experiments import expand_experiments
from spectsynth.infer import load_predictions, predict_experiment, write_predictions
from spectsynth.labels import PATTERNS
from spectsynth.models.inference import load_for_inference
from spectsynth.studies import build_dataset, dataset_spec
from spectsynth.train import train_experiment

LEVELS_TABLE = {"CER": (5, 12), "BG": (14, 22), "COR": (24, 32)}
# 4 training slices per level x pattern (4 training subjects, one scan of each pattern)
S1_COUNTS = {lv: {p: 4 for p in PATTERNS} for lv in ("CER", "BG", "COR")}
DATASETS = {"s0": {"size": 32}, "s1": {"size": 32, "slices_per_level": 1, "counts": S1_COUNTS},
            "s2": {"size": 32, "n_slices": 4, "spaces": ["native"]}}
# Pinned to the CPU: the bit-identity checks below hold on one device and fp32; the CUDA path
# has its own tests (marker `cuda`) with the tolerance mixed precision needs.
TRAINING = {"progress": False, "checkpoint_every": 1, "device": "cpu"}
ENTRIES = {
    "gan": {"study": "S1", "model": "fastgan", "variants": ["A"], "epochs": 1, "base_channels": 4,
            "gan_feature_steps": 2, "gan_eval_samples": 2},
    "p2p": {"study": "S2", "model": "pix2pix", "inputs": ["mri"], "spaces": ["native"], "losses": ["l1"],
            "epochs": 1, "ngf": 4, "ndf": 4, "batch_size": 4},
    "clin": {"study": "S0", "model": "vae", "epochs": 1, "base_channels": 4, "latent_dim": 8, "batch_size": 4},
}
NAMES = {"gan": "gan_A", "p2p": "p2p_mri_native_l1", "clin": "clin"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny datasets and one-epoch experiments of each family (a few seconds)."""
    root = tmp_path_factory.mktemp("infer")
    # S0: the simulator's design sets (main for train/test, validation for val)
    cfg = {"datasets": DATASETS, "simulate": {"dat": {"n_main": 1, "n_validation": 1}}}
    s1 = [{"subject": f"{i:02d}", "volumes": {"spect": phantom(i * 3 + j, p)}, "pattern": p,
           "levels": LEVELS_TABLE} for i in range(6) for j, p in enumerate(PATTERNS)]
    s0 = [{"subject": f"{i:02d}", "volumes": {"damaged": phantom(i, striatum=s), "original": phantom(i)},
           "params": {"pbr": s, "cbr": s, "slr": 1.0, "design_set": ds}} for i in range(6)
          for s, ds in ((0.2, "main"), (0.5, "validation"))]
    s2 = [{"subject": f"{i:02d}", "space": "native",
           "volumes": {"mri": phantom(i), "pet": phantom(i + 50), "spect": phantom(i + 99),
                       "brain": (phantom(i) > 0).astype(np.float32)}} for i in range(6)]
    for name, recs in (("s1", s1), ("s0", s0), ("s2_native", s2)):
        build_dataset(name, recs, cfg, root / "datasets" / name)
    specs = {}
    with torch.random.fork_rng():
        for key, entry in ENTRIES.items():
            full = {"datasets": DATASETS, "training": TRAINING, "experiments": {key: entry}}
            spec = expand_experiments(full)[NAMES[key]]
            ds = root / "datasets" / spec["dataset"]
            train_experiment(spec, {"train": ds / "train.h5", "val": ds / "val.h5"},
                             root / "experiments" / spec["experiment"], dataset=dataset_spec({"datasets": DATASETS}, spec["dataset"]), threads=1)
            specs[key] = spec
    return root, specs


def _predict(root, spec, out, **kw):
    ds = root / "datasets" / spec["dataset"]
    name = spec["experiment"]
    return predict_experiment(root / "experiments" / name / "best.pt", ds / "test.h5", ds / "index.tsv",
                              out / "predictions.h5", out / "predictions.tsv", experiment=name,
                              device="cpu", **kw)


@pytest.mark.parametrize("key", ["p2p", "clin"])
def test_paired_predictions_match_the_network_in_eval_mode(trained, key, tmp_path):
    root, specs = trained
    spec = specs[key]
    table = _predict(root, spec, tmp_path / "a", batch_size=3)
    index = pd.read_csv(root / "datasets" / spec["dataset"] / "index.tsv", sep="\t", dtype={"subject": str})
    test = index[index["split"] == "test"]
    assert len(table) == len(test) > 0
    assert set(table["subject"]) == set(test["subject"])
    arrays, tab, attrs = load_predictions(tmp_path / "a" / "predictions.h5", tmp_path / "a" / "predictions.tsv",
                                          experiment=spec["experiment"])
    assert attrs["model"] == spec["model"]
    assert arrays["prediction"].shape == arrays["target"].shape == (len(test), 1, 32, 32)
    # S2's shards hold the T1w brain mask: it travels into the prediction file, never into the network
    if spec["dataset"].startswith("s2"):
        assert arrays["brain"].shape == (len(test), 1, 32, 32) and arrays["input"].shape[1] == 1
    else:
        assert "brain" not in arrays
    # the same network, rebuilt independently, in eval mode gives the same predictions
    nets, _ = load_for_inference(root / "experiments" / spec["experiment"] / "best.pt")
    net = nets["G"] if "G" in nets else nets["vae"]
    with torch.no_grad():
        x = torch.from_numpy(arrays["input"])
        direct = (net.predict(x) if hasattr(net, "predict") else net(x)).numpy()
    np.testing.assert_allclose(arrays["prediction"], direct, atol=1e-5)
    # deterministic (no dropout, VAE posterior mean) and independent of the batch size
    _predict(root, spec, tmp_path / "b", batch_size=64)
    again, _, _ = load_predictions(tmp_path / "b" / "predictions.h5", tmp_path / "b" / "predictions.tsv")
    np.testing.assert_allclose(arrays["prediction"], again["prediction"], atol=1e-5)


def test_gan_samples_as_many_per_condition_as_the_real_test_split(trained, tmp_path):
    root, specs = trained
    spec = specs["gan"]
    table = _predict(root, spec, tmp_path / "a", batch_size=2, seed=5)
    index = pd.read_csv(root / "datasets" / "s1" / "index.tsv", sep="\t", dtype={"subject": str})
    real = index[(index["split"] == "test") & index["level"].isin(spec["condition"]["levels"])]
    want = real.groupby(["level", "pattern"]).size().sort_index()
    got = table.groupby(["level", "pattern"]).size().sort_index()
    pd.testing.assert_series_equal(got, want, check_names=False)
    arrays, _, _ = load_predictions(tmp_path / "a" / "predictions.h5", tmp_path / "a" / "predictions.tsv")
    assert "target" not in arrays
    assert arrays["prediction"].min() >= 0.0 - 1e-6 and arrays["prediction"].max() <= 1.0 + 1e-6
    _predict(root, spec, tmp_path / "b", batch_size=2, seed=5)
    same, _, _ = load_predictions(tmp_path / "b" / "predictions.h5", tmp_path / "b" / "predictions.tsv")
    _predict(root, spec, tmp_path / "c", batch_size=2, seed=6)
    other, _, _ = load_predictions(tmp_path / "c" / "predictions.h5", tmp_path / "c" / "predictions.tsv")
    # seeded latent stream: the same seed gives the same images, another seed other images
    np.testing.assert_array_equal(same["prediction"], arrays["prediction"])
    assert not np.allclose(arrays["prediction"], other["prediction"])


def test_checkpoint_of_another_experiment_is_refused(trained, tmp_path):
    root, specs = trained
    spec = specs["p2p"]
    ds = root / "datasets" / spec["dataset"]
    with pytest.raises(EvaluationError, match="experiment wrong_name"):
        predict_experiment(root / "experiments" / spec["experiment"] / "best.pt", ds / "test.h5",
                           ds / "index.tsv", tmp_path / "p.h5", tmp_path / "p.tsv", experiment="wrong_name",
                           device="cpu")


def test_index_that_disagrees_with_the_shard_names_the_experiment(trained, tmp_path):
    root, specs = trained
    spec = specs["p2p"]
    ds = root / "datasets" / spec["dataset"]
    index = pd.read_csv(ds / "index.tsv", sep="\t", dtype={"subject": str})
    test_rows = index[index["split"] == "test"]
    index.drop(test_rows.index[:1]).to_csv(tmp_path / "index.tsv", sep="\t", index=False)
    with pytest.raises(EvaluationError, match=rf"experiment {spec['experiment']}.*index lists"):
        predict_experiment(root / "experiments" / spec["experiment"] / "best.pt", ds / "test.h5",
                           tmp_path / "index.tsv", tmp_path / "p.h5", tmp_path / "p.tsv",
                           experiment=spec["experiment"], device="cpu")
    with pytest.raises(EvaluationError, match="does not exist"):
        predict_experiment(root / "experiments" / spec["experiment"] / "best.pt", ds / "test.h5",
                           tmp_path / "missing.tsv", tmp_path / "p.h5", tmp_path / "p.tsv",
                           experiment=spec["experiment"], device="cpu")


def test_bad_batch_size_and_mismatched_prediction_files(tmp_path):
    with pytest.raises(EvaluationError, match="batch size"):
        predict_experiment(tmp_path / "x.pt", tmp_path / "t.h5", tmp_path / "i.tsv", tmp_path / "p.h5",
                           tmp_path / "p.tsv", experiment="e1", batch_size=0)
    arrays = {"prediction": np.zeros((3, 1, 8, 8)), "target": np.zeros((3, 1, 8, 8))}
    table = pd.DataFrame({"subject": ["01", "01", "02"]})
    write_predictions(arrays, table, {"experiment": "e1"}, tmp_path / "p.h5", tmp_path / "p.tsv")
    table.iloc[:2].to_csv(tmp_path / "short.tsv", sep="\t", index=False)
    with pytest.raises(EvaluationError, match="experiment e1: .*3 predictions but .* lists 2"):
        load_predictions(tmp_path / "p.h5", tmp_path / "short.tsv", experiment="e1")
    with pytest.raises(EvaluationError, match="holds predictions of 'e1'"):
        load_predictions(tmp_path / "p.h5", tmp_path / "p.tsv", experiment="e2")
    with pytest.raises(EvaluationError, match="3 predictions but 2 table rows"):
        write_predictions(arrays, table.iloc[:2], {"experiment": "e1"}, tmp_path / "q.h5", tmp_path / "q.tsv")


def test_stacked_volume_lands_on_the_source_grid(tmp_path):
    """Slices cut as the dataset builder cuts them come back at their place, with the affine."""
    import nibabel as nib

    from spectsynth.datasets import axial_slice, normalise_gain_bias, resize_slice
    from spectsynth.metrics import check_same_grid

    vol = np.clip(phantom(0), 0, None)[:, :, :20]
    affine = np.array([[2.0, 0, 0, -40], [0, 2.0, 0, -50], [0, 0, 2.5, -20], [0, 0, 0, 1]])
    src = tmp_path / "sub-07_spect.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), src)
    size = max(vol.shape[:2])  # no resampling: the round trip is exact up to the padding
    zs = [5, 9, 14]
    slices, gains = [], []
    for z in zs:
        sl = resize_slice(axial_slice(vol, z), size)
        g, b = normalise_gain_bias(sl, "max_pm1")
        slices.append(sl * g + b)
        gains.append((g, b))
    pred = np.stack(slices)[:, None]
    # the input (spect) is the PET at half the scale, in the test and in the training split, so
    # the training-split calibration recovers the PET's units exactly from the input's constants
    g, b = np.array([g for g, _ in gains]), np.array([b for _, b in gains])
    table = pd.DataFrame({"subject": "07", "slice_index": zs, "source": str(src),
                          "gain_spect": 2 * g, "bias_spect": b,
                          "gain_pet": 1e6, "bias_pet": 5.0})     # the target's constants must not matter
    train = pd.DataFrame({"split": "train", "shard_row": range(4), "subject": ["01", "01", "02", "02"],
                          "gain_spect": [0.2, 0.4, 0.1, 0.3], "bias_spect": -1.0,
                          "gain_pet": [0.1, 0.2, 0.05, 0.15], "bias_pet": -1.0})
    train.to_csv(tmp_path / "index.tsv", sep="\t", index=False)
    write_predictions({"prediction": pred, "target": pred}, table,
                      {"experiment": "e1", "spec": '{"input_channels": ["spect"], "target_channels": ["pet"]}'},
                      tmp_path / "p.h5", tmp_path / "p.tsv")
    from spectsynth.infer import stack_volumes

    res = stack_volumes(tmp_path / "p.h5", tmp_path / "p.tsv", tmp_path / "vol", experiment="e1",
                        train_index=tmp_path / "index.tsv")
    assert res["calibration"].str.contains("training slices").all()
    out = nib.load(tmp_path / "vol" / res["file"].iat[0])
    check_same_grid(out, nib.load(src))
    data = out.get_fdata()
    for z in zs:
        np.testing.assert_allclose(data[:, :, z], vol[:, :, z], atol=1e-4)
    assert np.all(data[:, :, 0] == 0)
    assert res["slices"].iat[0] == "5 9 14"
    table.assign(source=str(tmp_path / "gone.nii.gz")).to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    with pytest.raises(EvaluationError, match="experiment e1: subject 07: the source volume"):
        stack_volumes(tmp_path / "p.h5", tmp_path / "p.tsv", tmp_path / "vol2", experiment="e1",
                      train_index=tmp_path / "index.tsv")


# ------------------------------------------------- clinical use of the trained S0 VAE
def test_vae_prior_samples_are_seeded_and_only_from_a_plain_vae(trained):
    from spectsynth.models.vae.infer import sample_vae

    root, specs = trained
    best = root / "experiments" / specs["clin"]["experiment"] / "best.pt"
    a = sample_vae(best, 5, experiment="clin", seed=3, batch_size=2, device="cpu")
    again = sample_vae(best, 5, experiment="clin", seed=3, batch_size=2, device="cpu")
    b = sample_vae(best, 5, experiment="clin", seed=3, batch_size=5, device="cpu")
    c = sample_vae(best, 5, experiment="clin", seed=4, device="cpu")
    assert a.shape == (5, 1, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, again)              # same seed, same images
    # the latent stream does not depend on the batch size (convolution sums may differ in the last bits)
    np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-6)
    assert not np.allclose(a, c)                         # another seed, other images
    assert np.std(a, axis=0).mean() > 0                  # samples differ from one another
    p2p = root / "experiments" / specs["p2p"]["experiment"] / "best.pt"
    with pytest.raises(EvaluationError, match="needs a plain VAE"):
        sample_vae(p2p, 2, experiment="p2p", device="cpu")
    with pytest.raises(EvaluationError, match="must be positive"):
        sample_vae(best, 0, experiment="clin", device="cpu")


def test_real_normal_cohort_has_one_slice_per_train_or_val_subject(trained):
    from spectsynth.studies.s0.clinical import real_normal_slices

    root, _ = trained
    ds = root / "datasets" / "s0"
    index = pd.read_csv(ds / "index.tsv", sep="\t", dtype={"subject": str})
    images, ids = real_normal_slices({"train": ds / "train.h5", "val": ds / "val.h5"}, ds / "index.tsv",
                                     channel="original", experiment="clin")
    expected = sorted(set(index.loc[index["split"].isin(["train", "val"]), "subject"]))
    assert sorted(ids) == expected and len(ids) == len(set(ids))
    assert not set(ids) & set(index.loc[index["split"] == "test", "subject"])
    assert images.shape == (len(ids), 32, 32)
