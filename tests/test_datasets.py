"""Slice extraction, orientation, normalisation, splits (leak check), shards, augmentation."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import phantom

from spectsynth.datasets import (
    EpochSampler,
    PairedSliceDataset,
    SliceShard,
    assign_splits,
    axial_slice,
    check_split_leak,
    paired_augment,
    records_from_files,
    resize_slice,
)
from spectsynth.errors import ConfigError, InputDataError
from spectsynth.labels import PATTERNS
from spectsynth.models.fastgan.data import GANSliceDataset, s1_augment
from spectsynth.studies import build_dataset, dataset_names

SHAPE = (40, 48, 36)
LEVELS_TABLE = {"CER": (5, 12), "BG": (14, 22), "COR": (24, 32)}


def s1_records(n_subjects=8, patterns=PATTERNS):
    return [{"subject": f"{i:02d}", "volumes": {"spect": phantom(i * 3 + j, p)}, "pattern": p,
             "levels": LEVELS_TABLE, "source": f"sub-{i:02d}_desc-{p}_spect.nii.gz"}
            for i in range(n_subjects) for j, p in enumerate(patterns)]


def s0_records(n_subjects=6, degradations=(0.2, 0.5, 0.8), validation=(0.35, 0.65)):
    """One record per degraded volume, with the simulator's design set (main / validation)."""
    sets = [(s, "main") for s in degradations] + [(s, "validation") for s in validation]
    return [{"subject": f"{i:02d}", "volumes": {"damaged": phantom(i, striatum=s), "original": phantom(i)},
             "params": {"pbr": s, "cbr": s, "slr": 1.0, "design_set": ds}, "source": f"sub-{i:02d}_dat.nii.gz[{k}]"}
            for i in range(n_subjects) for k, (s, ds) in enumerate(sets)]


def s2_records(n_subjects=6, space="native"):
    return [{"subject": f"{i:02d}", "space": space,
             "volumes": {"mri": phantom(i), "pet": phantom(i + 50), "spect": phantom(i + 99),
                         "brain": (phantom(i) > 0.05 * phantom(i).max()).astype(np.float32)}}
            for i in range(n_subjects)]


UNIFORM = {lv: {p: 4 for p in PATTERNS} for lv in ("CER", "BG", "COR")}
CFG = {"datasets": {"s0": {"size": 32}, "s1": {"size": 32, "slices_per_level": 2, "counts": UNIFORM},
                    "s2": {"size": 32, "n_slices": 8}, "s3": {"size": 32}},
       "simulate": {"dat": {"n_main": 3, "n_validation": 2}}}


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
    # 6 / 1 / 1 subjects: 4 slices per cell for training, 4 x 1/6 -> 1 per cell for val and test
    assert idx.groupby(["split", "level", "pattern"]).size().to_dict() == {
        (sp, lv, p): 4 if sp == "train" else 1 for sp in ("train", "val", "test")
        for lv in ("CER", "BG", "COR") for p in PATTERNS}
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
    # S0 design: train = main degradations, validation = the validation degradations of the same
    # subjects, test = other subjects' main degradations (their validation ones are not used)
    subj = idx.groupby("split")["subject"].apply(set)
    assert subj["val"] == subj["train"] and not (subj["test"] & subj["train"])
    sets = idx.groupby("split")["design_set"].apply(set).to_dict()
    assert sets == {"train": {"main"}, "val": {"validation"}, "test": {"main"}}
    assert idx["split"].value_counts().to_dict() == {"train": 5 * 3, "val": 5 * 2, "test": 1 * 3}


def test_build_s2_native_scales_to_pm1(tmp_path):
    recs = s2_records() + s2_records(space="template")
    idx = build_dataset("s2_native", recs, CFG, tmp_path)
    assert (idx["space"] == "native").all() and len(idx) == 6 * 8
    shard = SliceShard(tmp_path / "train.h5")
    assert shard.channels == ["mri", "pet", "spect", "brain"]
    imgs = shard.all_images()
    assert imgs[:, :3].min() == pytest.approx(-1.0) and imgs[:, :3].max() == pytest.approx(1.0)
    assert np.allclose(imgs[:, :3].reshape(len(imgs), 3, -1).min(-1), -1)
    # the brain mask is stored as a mask (0..1, gain 1), and every slice holds brain
    assert imgs[:, 3].min() >= 0 and imgs[:, 3].max() <= 1 and (idx["gain_brain"] == 1).all()
    assert ((imgs[:, 3] > 0.5).reshape(len(imgs), -1).mean(1) > 0).all()


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
    """No bilateral slice at the CER level (as in S1's data): a clear stop that says how many
    subjects the cell needs, unless the cell is 0 in the counts (or listed as excluded)."""
    recs = s1_records()
    for r in recs:
        if r["pattern"] == "bilateral":
            r["levels"] = {**LEVELS_TABLE, "CER": None}
    cfg = {"datasets": {"s1": {"size": 32, "slices_per_level": 1, "counts": UNIFORM}}}
    with pytest.raises(ConfigError, match="holds 0 slices of bilateral at CER, but the design asks for 4") as err:
        build_dataset("s1", recs, cfg, tmp_path)
    assert "dataset s1" in str(err.value) and "counts.CER.bilateral to 0" in str(err.value)
    cfg["datasets"]["s1"]["counts"] = {**UNIFORM, "CER": {"normal": 4, "unilateral": 4, "bilateral": 0}}
    idx = build_dataset("s1", recs, cfg, tmp_path)
    assert not ((idx["level"] == "CER") & (idx["pattern"] == "bilateral")).any()
    cfg["datasets"]["s1"]["counts"] = UNIFORM
    cfg["datasets"]["s1"]["exclude_conditions"] = [["CER", "bilateral"]]     # the same thing
    assert build_dataset("s1", recs, cfg, tmp_path).equals(idx)


def test_s1_shortfall_says_how_many_subjects_are_needed(tmp_path):
    # 6 training subjects with one unilateral scan and 1 slice per level each: 6 candidates per cell
    cfg = {"datasets": {"s1": {"size": 32, "slices_per_level": 1,
                               "counts": {**UNIFORM, "BG": {"normal": 4, "unilateral": 9, "bilateral": 4}}}}}
    with pytest.raises(ConfigError, match=r"train split \(6 subjects\) holds 6 slices of unilateral at BG, "
                                          r"but the design asks for 9.*1.00 such slices per subject.*about 9 "
                                          r"subjects, a cohort of about 12"):
        build_dataset("s1", s1_records(), cfg, tmp_path)


def test_s1_sampling_is_seeded_and_spread_over_subjects(tmp_path):
    cfg = {"datasets": {"s1": {"size": 32, "slices_per_level": 2, "counts": UNIFORM}}}
    a = build_dataset("s1", s1_records(), cfg, tmp_path / "a")
    b = build_dataset("s1", list(reversed(s1_records())), cfg, tmp_path / "b")
    key = ["split", "subject", "level", "pattern", "slice_index"]
    assert a[key].sort_values(key).reset_index(drop=True).equals(b[key].sort_values(key).reset_index(drop=True))
    # 4 slices of a cell from 6 training subjects with 2 candidates each: 4 different subjects
    train = a[a["split"] == "train"]
    assert (train.groupby(["level", "pattern"])["subject"].nunique() == 4).all()
    cfg["datasets"]["s1"]["split"] = {"seed": 5}
    c = build_dataset("s1", s1_records(), cfg, tmp_path / "c")
    assert not c[key].sort_values(key).reset_index(drop=True).equals(a[key].sort_values(key).reset_index(drop=True))


def test_empty_validation_split_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="val split would be empty"):
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
    from spectsynth.studies import dataset_spec, extract_slices
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


# --------------------------------------------------------------------------- designs and plan


def test_split_counts_are_exact_and_checked_against_the_cohort():
    subjects = [f"{i:02d}" for i in range(73)]
    a = assign_splits(subjects, {"method": "counts", "counts": {"train": 43, "val": 15, "test": 15}})
    assert pd.Series(a).value_counts().to_dict() == {"train": 43, "val": 15, "test": 15}      # S3
    with pytest.raises(ConfigError, match=r"asks for 43 \+ 15 \+ 15 = 73 subjects, but the cohort has 12.*"
                                          r"inputs.demo.n_subjects: 73"):
        assign_splits(subjects[:12], {"method": "counts", "counts": {"train": 43, "val": 15, "test": 15}},
                      dataset="s3")
    with pytest.raises(ConfigError, match="counts.val must be 0"):
        assign_splits(subjects[:45], {"method": "counts", "counts": {"train": 35, "val": 1, "test": 9},
                                      "val_within_train": True})


def _paper(repo, study):
    import yaml

    from spectsynth.config import merge, validate_config
    cfg = {}
    for path in (repo / "config" / "config.yaml", repo / "config" / "studies" / f"{study}.yaml"):
        cfg = merge(cfg, yaml.safe_load(path.read_text()))
    return validate_config(cfg, repo / "config" / "schema.yaml")


def _counts(design):
    cols = [c for c in design.expected.columns if c != "images"]
    return {tuple(r[c] for c in cols): int(r["images"]) for _, r in design.expected.iterrows()}


def test_paper_configs_give_the_published_designs(repo):
    from spectsynth.design import experiment_counts
    from spectsynth.planner import plan

    p = plan(_paper(repo, "s0"))
    assert len(p["subjects"]) == 45 and list(p["designs"]) == ["s0"]
    d = p["designs"]["s0"]
    assert _counts(d) == {("train", "main"): 612, ("val", "validation"): 360, ("test", "main"): 153}
    assert [len(d.subjects[k]) for k in ("train", "val", "test")] == [36, 36, 9]
    assert d.subjects["val"] == d.subjects["train"] and not set(d.subjects["test"]) & set(d.subjects["train"])

    p = plan(_paper(repo, "s1"))
    d = p["designs"]["s1"]
    table1 = {"CER": (248, 66, 0), "BG": (174, 116, 44), "COR": (129, 109, 52)}
    got = _counts(d)
    for lv, row in table1.items():
        assert tuple(got[("train", lv, pt)] for pt in PATTERNS) == row, lv
        assert tuple(got[("test", lv, pt)] for pt in PATTERNS) == row, lv      # real test set = Table 1
    assert sum(v for (sp, _, _), v in got.items() if sp == "train") == 938
    assert ["CER", "bilateral"] in d.spec["exclude_conditions"]
    assert experiment_counts(d, ["COR"]).to_dict() == {"train": 290, "val": 72, "test": 290}   # dataset B

    for study, dataset, n in (("s2", "s2_native", (30, 6, 12)), ("s2", "s2_template", (30, 6, 12)),
                              ("s3", "s3", (43, 15, 15))):
        p = plan(_paper(repo, study))
        d = p["designs"][dataset]
        assert tuple(len(d.subjects[k]) for k in ("train", "val", "test")) == n, dataset
        per = 100 if study == "s2" else 60
        assert _counts(d) == {(k,): m * per for k, m in zip(("train", "val", "test"), n)}, dataset
    assert len(plan(_paper(repo, "s2"))["experiments"]) == 12


def test_s2_reads_the_brain_extracted_mri():
    from spectsynth.studies import dataset_subject_files

    for dataset, name in (("s2_native", "sub-01_desc-brain_T1w.nii.gz"),
                          ("s2_template", "sub-01_space-MNI152_desc-brain_T1w.nii.gz")):
        files = dataset_subject_files(dataset, "/out", ["01"], {})["01"]
        assert files["mri"] == f"/out/sub-01/anat/{name}"
        assert "_space-" in files["pet"] and "_space-" in files["spect"]   # registered, not the scanner frame
        # the brain channel stays the T1w brain mask (slice choice, in-brain metrics)
        assert files["brain"] == f"/out/sub-01/anat/{name.replace('_T1w', '_mask')}"


def test_s2_reads_each_modality_brain_extracted_by_its_own_method():
    """S2 ran BET on the PET and a histogram threshold on the SPECT: its PET and SPECT are
    extract_scan_brain's desc-brain scans on the dataset's grid; S3 (no extraction in its paper)
    reads the registered scans."""
    from spectsynth.studies import dataset_subject_files

    for dataset, space in (("s2_native", "T1w"), ("s2_template", "MNI152")):
        files = dataset_subject_files(dataset, "/out", ["01"], {})["01"]
        assert files["pet"] == f"/out/sub-01/pet/sub-01_trc-FDG_space-{space}_desc-brain_pet.nii.gz"
        assert files["spect"].startswith("/out/sub-01/spect/sub-01_trc-")
        assert files["spect"].endswith(f"_space-{space}_desc-brain_spect.nii.gz")
    s3 = dataset_subject_files("s3", "/out", ["01"], {})["01"]
    assert "brain" not in s3["spect_cbf"] and "brain" not in s3["pet_cbf"]


def test_demo_and_tiny_designs_keep_their_proportions(repo):
    import yaml

    from spectsynth.config import merge, validate_config
    from spectsynth.planner import plan
    cfg = validate_config(merge(yaml.safe_load((repo / "config/config.yaml").read_text()), {}),
                          repo / "config/schema.yaml")
    d = plan(cfg)["designs"]["s1"]
    got = _counts(d)
    # the demo: Table 1 x 0.1 for training (rounded half up), no bilateral CER
    assert [got[("train", "BG", p)] for p in PATTERNS] == [17, 12, 4]
    # val: 13 x 2 / 6 (6 training and 2 validation MRIs: the 2 post-surgical subjects are left out)
    assert got[("train", "CER", "bilateral")] == 0 and got[("val", "COR", "normal")] == 4


@pytest.mark.parametrize("study_cfg", [None, "tiny"])
def test_builder_builds_exactly_what_plan_predicts(repo, tmp_path, study_cfg):
    """Tiny synthetic records for the subjects of a config: every dataset's index has the plan's
    images per split and condition and the plan's subjects."""
    import yaml

    from spectsynth.config import merge, validate_config
    from spectsynth.design import count_table
    from spectsynth.planner import plan
    cfg = yaml.safe_load((repo / "config/config.yaml").read_text())
    if study_cfg:
        cfg = merge(cfg, yaml.safe_load((repo / "tests/configs/tiny.yaml").read_text()))
    cfg = merge(cfg, {"inputs": {"demo": {"n_subjects": 8}},
                            "simulate": {"dat": {"n_main": 3, "n_validation": 2}},
                            "datasets": {"s0": {"size": 32}, "s1": {"size": 32, "slices_per_level": 1,
                                                                     "counts": UNIFORM, "counts_scale": 1.0},
                                         "s2": {"size": 32, "n_slices": 5}, "s3": {"size": 32, "n_slices": 5}}})
    cfg = validate_config(cfg, repo / "config/schema.yaml")
    p = plan(cfg)
    subjects = [f"{i:02d}" for i in range(1, 9)]
    assert p["subjects"] == subjects
    recs = {"s0": [r | {"subject": f"{int(r['subject']) + 1:02d}"} for r in s0_records(8)],
            "s1": [r | {"subject": f"{int(r['subject']) + 1:02d}"} for r in s1_records(8)],
            "s2_native": [r | {"subject": f"{int(r['subject']) + 1:02d}"} for r in s2_records(8)],
            "s2_template": [r | {"subject": f"{int(r['subject']) + 1:02d}"} for r in s2_records(8, "template")],
            "s3": [{"subject": f"{i:02d}", "volumes": {"spect_cbf": phantom(i), "pet_cbf": phantom(i + 7),
                                                   "brain": (phantom(i) > 0).astype(np.float32)}}
                   for i in range(1, 9)]}
    for name, design in p["designs"].items():
        idx = build_dataset(name, recs[name], cfg, tmp_path / name)
        got = count_table(idx, design.owner.condition_columns, design.expected)
        assert got.equals(design.expected[got.columns]), name
        for split in ("train", "val", "test"):
            have = sorted(set(idx.loc[idx["split"] == split, "subject"]))
            assert have == design.subjects[split] or design.study == "S1", (name, split)
            assert set(have) <= set(design.subjects[split])


def test_built_dataset_that_differs_from_its_design_stops(tmp_path):
    recs = [r for r in s0_records() if not (r["subject"] == "03" and r["params"]["pbr"] == 0.5)]
    with pytest.raises(InputDataError, match="differs from its design.*design_set main: 14 images, the design "
                                             "says 15") as err:
        build_dataset("s0", recs, CFG, tmp_path)
    assert "Rerun the simulation" in str(err.value)
    bad = s0_records()
    del bad[0]["params"]["design_set"]
    with pytest.raises(InputDataError, match="design_set None"):
        build_dataset("s0", bad, CFG, tmp_path)


def test_s2_subject_with_too_few_slices_stops(tmp_path):
    cfg = {"datasets": {"s2": {"size": 32, "n_slices": 40}}}
    with pytest.raises(InputDataError, match=r"subject 00.*fewer than the 40 of datasets.s2.n_slices"):
        build_dataset("s2_native", s2_records(), cfg, tmp_path)


def test_plan_counts_a_bids_cohort_without_reading_images(repo, tmp_path):
    """A BIDS cohort's subject list comes from its folders; a design that needs more subjects
    than the cohort holds is refused before anything runs."""
    from spectsynth.config import validate_config
    from spectsynth.planner import plan
    root = tmp_path / "bids"
    (root).mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    for s in ("A1", "A2", "A3", "A4"):
        (root / f"sub-{s}" / "anat").mkdir(parents=True)
        (root / f"sub-{s}" / "anat" / f"sub-{s}_T1w.nii.gz").write_bytes(b"not an image")
    cfg = validate_config({"inputs": {"source": "bids", "bids": {"root": str(root)}},
                           "experiments": {"s3": {"study": "S3", "model": "pix2pix"}},
                           "datasets": {"s3": {"split": {"method": "counts",
                                                         "counts": {"train": 2, "val": 1, "test": 1}}}}},
                          repo / "config/schema.yaml")
    p = plan(cfg)
    assert p["subjects"] == ["A1", "A2", "A3", "A4"]
    assert {k: len(v) for k, v in p["designs"]["s3"].subjects.items()} == {"train": 2, "val": 1, "test": 1}
    cfg["datasets"]["s3"]["split"]["counts"]["train"] = 43
    with pytest.raises(ConfigError, match=r"= 45 subjects, but the cohort has 4"):
        plan(cfg)
