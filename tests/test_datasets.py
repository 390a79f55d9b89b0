"""Slice extraction, orientation, normalisation, splits (leak check), shards, augmentation."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from spectsynth.datasets import (
    EpochSampler,
    GANSliceDataset,
    PairedSliceDataset,
    SliceShard,
    assign_splits,
    axial_slice,
    build_dataset,
    check_split_leak,
    dataset_names,
    paired_augment,
    records_from_files,
    resize_slice,
    s1_augment,
)
from spectsynth.errors import ConfigError, InputDataError
from spectsynth.labels import PATTERNS

SHAPE = (40, 48, 36)
LEVELS_TABLE = {"CER": (5, 12), "BG": (14, 22), "COR": (24, 32)}


def phantom(seed: int = 0, pattern: str = "normal", striatum: float = 1.0, shape=SHAPE) -> np.ndarray:
    """Ellipsoid 'brain' with two striatal blobs; defects on the left or anterior/posterior."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = ((x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2) < 1
    v = brain * (1.0 + 0.1 * rng.standard_normal(shape))
    if pattern == "unilateral":
        v[(x < 0) & brain] *= 0.5
    elif pattern == "bilateral":
        v[(np.abs(y) > 0.3) & brain] *= 0.5
    stri = ((np.abs(x) - 0.3) ** 2 / 0.02 + y ** 2 / 0.05 + z ** 2 / 0.03) < 1
    v[stri] += 3.0 * striatum
    return np.clip(v, 0, None).astype(np.float32)


def s1_records(n_subjects=8, patterns=PATTERNS):
    return [{"subject": f"{i:02d}", "volumes": {"spect": phantom(i * 3 + j, p)}, "pattern": p,
             "levels": LEVELS_TABLE, "source": f"sub-{i:02d}_desc-{p}_spect.nii.gz"}
            for i in range(n_subjects) for j, p in enumerate(patterns)]


def s0_records(n_subjects=6, degradations=(0.2, 0.5, 0.8)):
    return [{"subject": f"{i:02d}", "volumes": {"damaged": phantom(i, striatum=s), "original": phantom(i)},
             "params": {"pbr": s, "cbr": s, "slr": 1.0}, "source": f"sub-{i:02d}_dat.nii.gz"}
            for i in range(n_subjects) for s in degradations]


def s2_records(n_subjects=6, space="native"):
    return [{"subject": f"{i:02d}", "space": space,
             "volumes": {"mri": phantom(i), "pet": phantom(i + 50), "spect": phantom(i + 99)}}
            for i in range(n_subjects)]


CFG = {"datasets": {"s0": {"size": 32}, "s1": {"size": 32, "slices_per_level": 2},
                    "s2": {"size": 32, "n_slices": 8}, "s3": {"size": 32}}}


# --------------------------------------------------------------------------- slices


def test_axial_slice_orientation():
    vol = np.zeros((10, 12, 4), np.float32)
    vol[0, -1, 2] = 1.0          # subject's left (x min), anterior (y max)
    img = axial_slice(vol, 2)
    assert img.shape == (12, 10)
    assert img[0, 0] == 1.0      # row 0 = anterior, column 0 = subject's left


def test_resize_keeps_mean_and_square_padding():
    rng = np.random.default_rng(0)
    img = rng.random((64, 64)).astype(np.float32)
    small = resize_slice(img, 32)
    assert small.shape == (32, 32)
    assert small.mean() == pytest.approx(img.mean(), rel=0.02)
    rect = np.ones((20, 40), np.float32)
    out = resize_slice(rect, 40)
    assert out.shape == (40, 40) and out[:10].max() == 0 and out[15:25].min() == 1


def test_dataset_names_follow_spaces():
    assert dataset_names({}) == ["s0", "s1", "s2_native", "s2_template", "s3"]
    assert dataset_names({"datasets": {"s2": {"spaces": ["native"]}}}) == ["s0", "s1", "s2_native", "s3"]


# --------------------------------------------------------------------------- build & shards


def test_build_s1_dataset(tmp_path):
    idx = build_dataset("s1", s1_records(), CFG, tmp_path)
    assert set(idx["split"]) == {"train", "val", "test"}
    assert len(idx) == 8 * 3 * 3 * 2                          # subjects x patterns x levels x slices/level
    on_disk = pd.read_csv(tmp_path / "index.tsv", sep="\t", dtype={"subject": str})
    for col in ("subject", "split", "level", "pattern", "source", "slice_index", "shard", "shard_row"):
        assert col in on_disk.columns
    shard = SliceShard(tmp_path / "train.h5")
    assert shard.channels == ["slice", "inferior", "superior"]
    assert shard.shape[1:] == (3, 32, 32)
    imgs = shard.all_images()
    assert imgs.min() >= 0 and np.allclose(imgs.reshape(len(imgs), 3, -1).max(-1), 1.0)   # / max
    tr = on_disk[on_disk["split"] == "train"].sort_values("shard_row")
    assert (shard.rows == tr["row"].to_numpy()).all()
    with h5py.File(tmp_path / "train.h5") as f:
        assert f.attrs["content_sha256"] and f["images"].chunks == (1, 3, 32, 32)
    # slices at each level lie inside the level's z range
    for lv, (z0, z1) in LEVELS_TABLE.items():
        z = on_disk.loc[on_disk["level"] == lv, "slice_index"]
        assert z.between(z0, z1 - 1).all()


def test_build_s0_pairs_share_the_background_scale(tmp_path):
    idx = build_dataset("s0", s0_records(), CFG, tmp_path)
    assert {"pbr", "cbr", "slr"} <= set(idx.columns)
    assert np.allclose(idx["gain_damaged"], idx["gain_original"])
    shard = SliceShard(tmp_path / "train.h5")
    dam, orig = shard.all_images()[:, 0], shard.all_images()[:, 1]
    brain = orig > 0.2
    assert np.median(dam[brain]) == pytest.approx(1.0, abs=0.15)           # background ~ 1
    assert orig.max() > dam.max()                                            # striatum loss visible
    # S0 design: validation = held-out degradations of the training subjects, test = other subjects
    subj = idx.groupby("split")["subject"].apply(set)
    assert subj["val"] <= subj["train"] and not (subj["test"] & subj["train"])


def test_build_s2_native_scales_to_pm1(tmp_path):
    recs = s2_records() + s2_records(space="template")
    idx = build_dataset("s2_native", recs, CFG, tmp_path)
    assert (idx["space"] == "native").all() and len(idx) == 6 * 8
    imgs = SliceShard(tmp_path / "train.h5").all_images()
    assert imgs.min() == pytest.approx(-1.0) and imgs.max() == pytest.approx(1.0)
    assert np.allclose(imgs.reshape(len(imgs), 3, -1).min(-1), -1)


def test_missing_volume_names_subject(tmp_path):
    recs = s2_records()
    del recs[2]["volumes"]["pet"]
    with pytest.raises(InputDataError, match="subject 02"):
        build_dataset("s2_native", recs, CFG, tmp_path)


# --------------------------------------------------------------------------- splits


def test_splits_are_deterministic_and_disjoint():
    subjects = [f"{i:02d}" for i in range(48)]
    cfg = {"fractions": {"train": 0.625, "val": 0.125, "test": 0.25}, "seed": 3}
    a = assign_splits(subjects, cfg)
    assert a == assign_splits(list(reversed(subjects)), cfg)
    counts = pd.Series(a).value_counts().to_dict()
    assert counts == {"train": 30, "val": 6, "test": 12}       # S2's 30 / 6 / 12
    s0 = assign_splits(subjects[:45], {"fractions": {"train": 0.8, "val": 0.0, "test": 0.2},
                                       "val_within_train": True})
    assert pd.Series(s0).value_counts().to_dict() == {"train": 36, "test": 9}   # S0's 36 / 9 MRIs


def test_explicit_lists_and_unlisted_subject():
    lists = {"train": ["01", "02"], "val": ["03"], "test": ["04"]}
    assert assign_splits(["01", "02", "03", "04"], {"method": "lists", "lists": lists})["03"] == "val"
    with pytest.raises(ConfigError, match="05"):
        assign_splits(["01", "05"], {"method": "lists", "lists": lists})


def test_leak_check_fails_on_a_leaking_split():
    with pytest.raises(ConfigError, match=r"\['07'\].*train.*test"):
        check_split_leak({"train": ["01", "07"], "val": ["02"], "test": ["07"]}, dataset="s2_native")
    with pytest.raises(ConfigError, match="appear in both"):
        assign_splits(["01", "02"], {"method": "lists", "lists": {"train": ["01", "02"], "val": ["02"]}})
    check_split_leak({"train": ["01"], "val": ["02"], "test": ["03"]})          # clean: no error
    table = pd.DataFrame({"subject": ["01", "01", "02"], "split": ["train", "val", "test"],
                          "record": [0, 0, 1], "slice_index": [5, 5, 5]})
    with pytest.raises(ConfigError, match="source slice"):
        check_split_leak(table, val_within_train=True)


def test_empty_condition_stops_with_advice(tmp_path):
    """No bilateral slice at the CER level (as in S1's data) -> a clear stop, unless excluded."""
    recs = s1_records()
    for r in recs:
        if r["pattern"] == "bilateral":
            r["levels"] = {**LEVELS_TABLE, "CER": None}
    cfg = {"datasets": {"s1": {"size": 32, "slices_per_level": 1}}}
    with pytest.raises(ConfigError, match="no training slices for bilateral at CER;") as err:
        build_dataset("s1", recs, cfg, tmp_path)
    assert "dataset s1" in str(err.value) and "exclude_conditions" in str(err.value)
    cfg["datasets"]["s1"]["exclude_conditions"] = [["CER", "bilateral"]]
    idx = build_dataset("s1", recs, cfg, tmp_path)
    assert not ((idx["level"] == "CER") & (idx["pattern"] == "bilateral")).any()


def test_empty_validation_split_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="val split is empty"):
        build_dataset("s2_native", s2_records(2), CFG, tmp_path)


# --------------------------------------------------------------------------- augmentation


def test_s1_augment_rules():
    rng = np.random.default_rng(0)
    base = np.zeros((3, 16, 16), np.float32)
    base[0, :, :4] = 1.0                                     # bright left columns in the slice
    base[1] = 0.5
    base[2] = 0.25
    for pattern, may_flip in (("normal", True), ("bilateral", True), ("unilateral", False)):
        flipped = 0
        for _ in range(200):
            out = s1_augment(base, pattern, rng, neighbour_average=False, shift_px=0)
            flipped += out[0, 8, -1] == 1.0
        assert (flipped > 50) if may_flip else flipped == 0
    # weighted average lies between the slice and a neighbour; shifts stay within 2 rows
    base[2] = 0.5
    ws = []
    for _ in range(50):
        avg = s1_augment(base, "unilateral", rng, shift_px=0)      # w * slice + (1 - w) * neighbour
        w = 1.0 - avg[0, 0, 10] / 0.5
        assert avg.shape == (1, 16, 16) and 0.0 <= w <= 1.0
        assert avg[0, 0, 0] == pytest.approx(w + (1 - w) * 0.5, abs=1e-5)
        ws.append(w)
    assert np.std(ws) > 0.15                                         # w ~ U(0, 1)
    row = np.zeros((3, 16, 16), np.float32)
    row[:, 8] = 1.0
    for _ in range(50):
        out = s1_augment(row, "unilateral", rng, neighbour_average=False, shift_px=2)
        assert abs(int(np.argmax(out[0, :, 0])) - 8) <= 2


def test_paired_augment_applies_one_transform_to_both():
    rng = np.random.default_rng(1)
    x = np.random.default_rng(2).random((2, 16, 16)).astype(np.float32)
    for _ in range(20):
        a, b = paired_augment(x[:1], x[1:] * 0 + x[:1], rng, shift_px=3, flip=True)
        assert np.array_equal(a, b)


def test_gan_dataset_conditions_and_determinism(tmp_path):
    build_dataset("s1", s1_records(), CFG, tmp_path)
    shard = SliceShard(tmp_path / "train.h5")
    aug = {"neighbour_average": True, "shift_px": 2, "flip_patterns": ["normal", "bilateral"]}
    a = GANSliceDataset(shard, {"levels": ["CER", "BG", "COR"], "use_level": True}, augment=aug, seed=5)
    b = GANSliceDataset(shard, {"levels": ["COR"], "use_level": False}, augment=aug, seed=5)
    assert len(b) == len(a) // 3
    assert a.cond_vector("BG", "unilateral").tolist() == [0, 1, 0, 0, 1, 0]      # S1 Table 2
    assert b.cond_vector("COR", "bilateral").tolist() == [0, 0, 1]
    item = a[(3, 7)]
    assert item["image"].shape == (1, 32, 32) and -1 <= item["image"].min() and item["image"].max() <= 1
    assert np.array_equal(item["image"], a[(3, 7)]["image"])                   # same epoch, same draw
    assert not np.array_equal(item["image"], a[(3, 8)]["image"])               # next epoch, new draw
    paired = PairedSliceDataset(shard, ["inferior"], ["slice"])
    assert paired[0]["input"].shape == (1, 32, 32)
    with pytest.raises(ConfigError, match="not in this dataset"):
        PairedSliceDataset(shard, ["mri"], ["slice"])


def test_epoch_sampler_resumes_mid_epoch():
    s = EpochSampler(10, seed=1)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3, start=4)
    assert list(s) == full[4:]
    s.set_epoch(4)
    assert [i for i, _ in s] != [i for i, _ in full]


def test_records_from_files_reads_nifti_and_levels(tmp_path):
    import nibabel as nib
    rows = []
    for p in ("normal", "bilateral"):
        nib.save(nib.Nifti1Image(phantom(1, p), np.diag([4.0, 4.0, 4.0, 1.0])), tmp_path / f"{p}.nii.gz")
    (tmp_path / "levels.tsv").write_text("level\tz_start\tz_stop\nCER\t5\t12\nBG\t14\t22\nCOR\t24\t32\n")
    (tmp_path / "levels_nocer.tsv").write_text("level\tz_start\tz_stop\nCER\t\t\nBG\t14\t22\nCOR\t24\t32\n")
    for p, lv in (("normal", "levels.tsv"), ("bilateral", "levels_nocer.tsv")):
        rows.append({"subject": "01", "files": {"spect": tmp_path / f"{p}.nii.gz"}, "levels": str(tmp_path / lv),
                     "pattern": p})
    recs = records_from_files(rows)
    assert recs[1]["levels"]["CER"] is None and recs[0]["levels"]["BG"] == (14, 22)
    assert np.allclose(recs[0]["volumes"]["spect"](), phantom(1, "normal"), atol=1e-5)
    from spectsynth.datasets import dataset_spec, extract_slices
    imgs, meta = extract_slices("S1", recs, dataset_spec({"datasets": {"s1": {"size": 32, "slices_per_level": 1}}},
                                                         "s1"))
    assert [(m["level"], m["pattern"]) for m in meta] == [("CER", "normal"), ("BG", "normal"), ("COR", "normal"),
                                                           ("BG", "bilateral"), ("COR", "bilateral")]
    assert meta[0]["source"].endswith("normal.nii.gz")


def test_sessions_of_one_participant_share_a_split():
    from spectsynth.datasets import assign_splits, check_split_leak
    from spectsynth.errors import ConfigError

    units = [f"{p:02d}_ses-{s}" for p in range(1, 9) for s in ("a", "b")]
    splits = assign_splits(units, {"method": "fractions", "seed": 3,
                                   "fractions": {"train": 0.5, "val": 0.25, "test": 0.25}})
    for p in range(1, 9):
        assert splits[f"{p:02d}_ses-a"] == splits[f"{p:02d}_ses-b"]
    with pytest.raises(ConfigError, match=r"\['01'\] appear in both"):
        check_split_leak({"train": ["01_ses-a"], "test": ["01_ses-b"]})
