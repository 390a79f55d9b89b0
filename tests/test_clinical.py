"""Clinical outputs: deficit map, regional deficits, z-scores, blinded reading packet."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from spectsynth import quant
from spectsynth import reading as R
from spectsynth.errors import EvaluationError
from spectsynth.io import image_like
from spectsynth.studies.s0 import clinical as C
from spectsynth.studies.s3 import evaluate as S3E

EXP = "s0-clinical"


# ---------------------------------------------------------------------- deficit map
def test_percent_deficit_hand_computed():
    pred = np.array([10.0, 10.0, 0.5, 4.0])
    act = np.array([5.0, 12.0, 0.1, 4.0])
    deficit, valid = C.percent_deficit(act, pred, signal_fraction=0.1, experiment=EXP, subject="01")
    # 100 (p - a) / p where p > 0.1 * 10; the third voxel has no normal signal
    assert deficit.tolist() == pytest.approx([50.0, -20.0, 0.0, 0.0])
    assert valid.tolist() == [True, True, False, True]
    mask = np.array([True, False, True, True])
    deficit, valid = C.percent_deficit(act, pred, mask=mask, experiment=EXP)
    assert deficit.tolist() == pytest.approx([50.0, 0.0, 0.0, 0.0])


def test_percent_deficit_bad_input():
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: subject 02: actual image has shape"):
        C.percent_deficit(np.ones(3), np.ones(4), experiment=EXP, subject="02")
    with pytest.raises(EvaluationError, match="no positive signal.*rescaled to counts"):
        C.percent_deficit(np.ones(3), -np.ones(3), experiment=EXP)


def test_deficit_map_image_keeps_grid_and_refuses_other_grids():
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-10, -20, -5]
    pred = nib.Nifti1Image(np.full((4, 4, 3), 10.0, np.float32), aff)
    act = image_like(np.full((4, 4, 3), 7.5, np.float32), pred)
    deficit, valid = C.deficit_map_image(act, pred, experiment=EXP, subject="01")
    assert np.allclose(deficit.affine, aff) and deficit.get_data_dtype() == np.float32
    assert np.allclose(np.asanyarray(deficit.dataobj), 25.0)
    assert np.asanyarray(valid.dataobj).all()
    moved = aff.copy()
    moved[0, 3] += 4
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: subject 01: the affine of the predicted "
                                              "normal differs"):
        C.deficit_map_image(act, nib.Nifti1Image(np.asanyarray(pred.dataobj), moved), experiment=EXP,
                            subject="01")


def test_striatal_slice():
    lab = np.zeros((5, 5, 6), int)
    lab[1:3, 1:3, 2] = 1
    lab[1:4, 1:4, 4] = 3
    assert C.striatal_slice(lab, experiment=EXP) == 4
    with pytest.raises(EvaluationError, match="label map is empty"):
        C.striatal_slice(np.zeros((3, 3, 3)), experiment=EXP)


# ------------------------------------------------------------------ regional SBR
def _phantom(putamen_l: float = 4.0):
    """2-D DaT-like slice: striatum labels (labels.STRIATUM), occipital reference = 1."""
    lab = np.zeros((20, 20), int)
    lab[3:6, 12:15] = 1    # caudate_L (low x)
    lab[14:17, 12:15] = 2  # caudate_R
    lab[3:6, 7:11] = 3     # putamen_L
    lab[14:17, 7:11] = 4   # putamen_R
    ref = np.zeros((20, 20), int)
    ref[6:14, 0:3] = 1     # occipital
    img = np.ones((20, 20))
    img[lab == 1] = 5.0
    img[lab == 2] = 5.0
    img[lab == 3] = putamen_l
    img[lab == 4] = 4.0
    return img, lab, ref


def test_regional_measures_come_from_quant():
    img, lab, ref = _phantom()
    m = C.regional_measures(img, lab, ref, experiment=EXP, subject="01")
    direct = quant.quantify_labels(img, lab, ref)
    direct.pop("reference_mean")
    assert m == pytest.approx(direct)
    assert m["sbr_caudate_L"] == pytest.approx(4.0) and m["sbr_putamen_R"] == pytest.approx(3.0)
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: subject 01: regional quantification "
                                              "failed: region .occipital. is empty"):
        C.regional_measures(img, lab, np.zeros_like(ref), experiment=EXP, subject="01")


def test_regional_deficits_hand_computed_and_flags():
    actual = {"sbr_putamen_L": 1.5, "sbr_caudate_L": 3.8, "ai_putamen": 40.0, "pc_ratio_L": 0.39}
    expected = {"sbr_putamen_L": 3.0, "sbr_caudate_L": 4.0, "ai_putamen": 2.0, "pc_ratio_L": 0.75}
    tab = C.regional_deficits(actual, expected, limits={"sbr_percent": 25, "asymmetry_points": 10,
                                                        "ratio_percent": 20}, experiment=EXP, subject="P1")
    row = tab.set_index("measure")
    assert row.loc["sbr_putamen_L", "change"] == pytest.approx(-50.0) and row.loc["sbr_putamen_L", "flag"]
    assert row.loc["sbr_caudate_L", "change"] == pytest.approx(-5.0) and not row.loc["sbr_caudate_L", "flag"]
    assert row.loc["ai_putamen", "kind"] == "asymmetry" and row.loc["ai_putamen", "change_unit"] == "points"
    assert row.loc["ai_putamen", "change"] == pytest.approx(38.0) and row.loc["ai_putamen", "flag"]
    assert row.loc["pc_ratio_L", "kind"] == "ratio" and row.loc["pc_ratio_L", "flag"]
    assert row.loc["pc_ratio_L", "change"] == pytest.approx(100 * (0.39 - 0.75) / 0.75)
    assert not tab[["actual", "expected", "difference", "change", "limit"]].isna().any().any()
    with pytest.raises(EvaluationError, match="differ in keys \\['ai_putamen'\\]"):
        C.regional_deficits({"ai_putamen": 1.0}, {}, experiment=EXP)
    with pytest.raises(EvaluationError, match="limit sbr_percent must be positive"):
        C.regional_deficits(actual, expected, limits={"sbr_percent": 0}, experiment=EXP)


def test_regional_deficit_table_from_images_flags_the_degraded_putamen():
    expected, lab, ref = _phantom()
    actual, _, _ = _phantom(putamen_l=2.0)  # left putamen SBR 3 -> 1
    tab = C.regional_deficit_table(actual, expected, lab, ref, experiment=EXP, subject="P1").set_index("measure")
    assert tab.loc["sbr_putamen_L", "change"] == pytest.approx(-100 * 2 / 3)
    assert tab.loc["sbr_putamen_L", "flag"] and not tab.loc["sbr_putamen_R", "flag"]
    assert tab.loc["ai_putamen", "flag"]  # AI 0 -> 100 points


# ----------------------------------------------------------------- database, z
def test_zscores_hand_computed():
    db = pd.DataFrame({"sbr_putamen_L": [1.0, 2.0, 3.0]})
    z = C.zscores({"sbr_putamen_L": 4.0}, db, experiment=EXP)
    assert z.loc[0, "z"] == pytest.approx(2.0) and z.loc[0, "sd"] == pytest.approx(1.0)
    with pytest.raises(EvaluationError, match="has 2 images; z-scores need at least 3"):
        C.zscores({"sbr_putamen_L": 4.0}, db.iloc[:2], experiment=EXP)
    with pytest.raises(EvaluationError, match="no spread in sbr_putamen_L"):
        C.zscores({"sbr_putamen_L": 4.0}, pd.DataFrame({"sbr_putamen_L": [2.0] * 4}), experiment=EXP)


def test_zscore_comparison_side_by_side():
    syn = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 2.0]})
    real = pd.DataFrame({"a": [2.0, 3.0, 4.0], "b": [0.0, 2.0, 4.0]})
    tab = C.zscore_comparison({"a": 4.0, "b": 4.5}, syn, real, z_limit=2.0, experiment=EXP, subject="P1")
    r = tab.set_index("region")
    assert r.loc["a", "synthetic_z"] == pytest.approx(2.0) and r.loc["a", "real_z"] == pytest.approx(1.0)
    assert not r.loc["a", "synthetic_flag"] and not r.loc["a", "real_flag"] and r.loc["a", "agree"]
    assert r.loc["b", "synthetic_z"] == pytest.approx(3.5) and r.loc["b", "real_z"] == pytest.approx(1.25)
    assert r.loc["b", "synthetic_flag"] and not r.loc["b", "agree"]
    assert r.loc["b", "z_difference"] == pytest.approx(2.25)
    # both flagged, but on opposite sides of the mean: not the same verdict
    tab = C.zscore_comparison({"a": 10.0}, syn, pd.DataFrame({"a": [20.0, 21.0, 22.0]}), regions=["a"],
                              z_limit=2.0, experiment=EXP)
    assert tab["synthetic_flag"].iat[0] and tab["real_flag"].iat[0] and not tab["agree"].iat[0]


def test_database_agreement_matches_scipy():
    rng = np.random.default_rng(0)
    syn = pd.DataFrame({"a": rng.normal(3, 0.4, 50)})
    real = pd.DataFrame({"a": rng.normal(3.2, 0.5, 20)})
    tab = C.database_agreement(syn, real, regions=["a"], experiment=EXP)
    ref = sps.ttest_ind(syn["a"], real["a"], equal_var=False)
    assert tab.loc[0, "p"] == pytest.approx(ref.pvalue) and tab.loc[0, "t"] == pytest.approx(ref.statistic)
    assert tab.loc[0, "sd_ratio"] == pytest.approx(syn["a"].std() / real["a"].std())


def test_normal_database_rows_per_image():
    imgs = [_phantom(p)[0] for p in (3.5, 4.0, 4.5)]
    _, lab, ref = _phantom()
    db = C.normal_database(imgs, lab, ref, experiment=EXP, ids=["g1", "g2", "g3"])
    assert db["image"].tolist() == ["g1", "g2", "g3"]
    assert db["sbr_putamen_L"].to_numpy() == pytest.approx([2.5, 3.0, 3.5])
    with pytest.raises(EvaluationError, match="normal database has no images"):
        C.normal_database([], lab, ref, experiment=EXP)


def test_mean_normal_baseline_uses_one_original_per_training_subject_only(tmp_path):
    from test_sbr_regressor import make_s0_shards

    from spectsynth.datasets import SliceShard

    ds = make_s0_shards(tmp_path / "ds", n=(8, 4, 4))
    shards = {"train": str(ds / "train.h5"), "val": str(ds / "val.h5")}
    mean, subjects = C.mean_training_normal(shards, ds / "index.tsv", channel="original", experiment=EXP)
    index = pd.read_csv(ds / "index.tsv", sep="\t", dtype={"subject": str})
    train = index[index["split"] == "train"].drop_duplicates("subject")
    assert subjects == train["subject"].tolist() == ["train00", "train01"]     # no val/test subject
    stack = SliceShard(ds / "train.h5").all_images()
    np.testing.assert_allclose(mean, stack[train["shard_row"].to_numpy(), 1].mean(axis=0), rtol=1e-6)
    with pytest.raises(EvaluationError, match="needs the training shard"):
        C.mean_training_normal({"val": shards["val"]}, ds / "index.tsv", channel="original", experiment=EXP)


def test_deficit_summary_scores_model_and_baseline_against_the_truth():
    def rows(predictor, change, flag):
        return pd.DataFrame({"predictor": predictor, "kind": ["sbr", "sbr", "asymmetry"], "change": change,
                             "truth_change": [-50.0, -10.0, 5.0], "flag": flag,
                             "truth_flag": [True, False, False]})
    reg = pd.concat([rows("model", [-45.0, -12.0, 4.0], [True, False, False]),
                     rows("baseline", [-20.0, 30.0, 0.0], [False, True, False])], ignore_index=True)
    reg["flag_matches_truth"] = reg["flag"] == reg["truth_flag"]
    maps = pd.DataFrame({"striatal_loss_percent": [40.0, 10.0], "baseline_striatal_loss_percent": [0.0, 30.0],
                         "true_striatal_loss_percent": [45.0, 5.0]})
    full = C.deficit_summary(reg, maps, experiment=EXP)
    out = full[full["n_counts"] == "records"].set_index("predictor")
    assert out.loc["model", "flag_matches_truth"] == 1.0
    assert out.loc["baseline", "flag_matches_truth"] == pytest.approx(1 / 3)
    assert out.loc["model", "sbr_change_abs_error"] == pytest.approx(3.5)          # (5 + 2) / 2
    assert out.loc["baseline", "sbr_change_abs_error"] == pytest.approx(35.0)      # (30 + 40) / 2
    assert out.loc["model", "striatal_loss_abs_error"] == pytest.approx(5.0)
    assert out.loc["baseline", "striatal_loss_abs_error"] == pytest.approx(35.0)


# ---------------------------------------------------------------- reading packet
def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_reading_packet_is_blinded_shuffled_and_reproducible(tmp_path):
    rng = np.random.default_rng(1)
    real = [rng.uniform(size=(16, 16)) for _ in range(6)]
    gen = [rng.uniform(size=(16, 16)) * 3 for _ in range(5)]
    out = R.reading_packet(real, gen, out_dir=tmp_path / "packet", key_path=tmp_path / "hidden/key.csv",
                           experiment="s1-A", seed=7, n_per_source=4,
                           real_conditions=["BG/normal"] * 6, footer="simulated data · demo scale")
    assert out["n_images"] == 8
    pngs = sorted((tmp_path / "packet").glob("image-*.png"))
    assert [p.name for p in pngs] == [f"image-{i:03d}.png" for i in range(1, 9)]
    assert sorted(p.name for p in (tmp_path / "packet").iterdir()) == sorted(
        [p.name for p in pngs] + ["scoring_sheet.csv"])
    sheet = _read(tmp_path / "packet/scoring_sheet.csv")
    assert list(sheet[0]) == ["image", "file", "score_1_to_5", "judged_real_yes_no", "comment"]
    body = (tmp_path / "packet/scoring_sheet.csv").read_text().split("\n", 1)[1]
    assert "real" not in body and "generated" not in body and "BG" not in body
    key = _read(tmp_path / "hidden/key.csv")
    assert [k["source"] for k in key].count("real") == 4 and len(key) == 8
    assert [k["source"] for k in key] != ["real"] * 4 + ["generated"] * 4  # shuffled
    # same seed -> same packet; other seed -> other order
    R.reading_packet(real, gen, out_dir=tmp_path / "p2", key_path=tmp_path / "k2.csv", experiment="s1-A",
                     seed=7, n_per_source=4, real_conditions=["BG/normal"] * 6)
    assert _read(tmp_path / "k2.csv") == key
    R.reading_packet(real, gen, out_dir=tmp_path / "p3", key_path=tmp_path / "k3.csv", experiment="s1-A",
                     seed=8, n_per_source=4)
    assert [k["original_id"] + k["source"] for k in _read(tmp_path / "k3.csv")] != \
        [k["original_id"] + k["source"] for k in key]


def test_reading_packet_bad_input(tmp_path):
    img = [np.ones((8, 8))] * 3
    with pytest.raises(EvaluationError, match="experiment s3: the key .* lies inside the packet folder"):
        R.reading_packet(img, img, out_dir=tmp_path, key_path=tmp_path / "key.csv", experiment="s3")
    with pytest.raises(EvaluationError, match="different shapes .* would unblind"):
        R.reading_packet(img, [np.ones((8, 9))], out_dir=tmp_path / "p", key_path=tmp_path / "k.csv",
                         experiment="s3")
    with pytest.raises(EvaluationError, match="n_per_source 5 must be between 1 and 3"):
        R.reading_packet(img, img, out_dir=tmp_path / "p", key_path=tmp_path / "k.csv", experiment="s3",
                         n_per_source=5)


# --------------------------------------------------------------- workflow runners
def _two_blob_slice(left: float, right: float, background: float = 1.0) -> np.ndarray:
    """RAS (x, y) slice: a disc of brain at ``background`` with one blob per hemisphere."""
    x, y = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    img = np.where((x - 19.5) ** 2 + (y - 19.5) ** 2 < 18 ** 2, background, 0.0)
    img[(x - 12) ** 2 + (y - 24) ** 2 < 9] = background * (1 + left)    # x < centre: subject's left
    img[(x - 27) ** 2 + (y - 24) ** 2 < 9] = background * (1 + right)
    return img


def test_slice_sbr_reads_the_blobs_ratio_in_any_units():
    seg_cfg = {"threshold_fraction": 0.5, "min_size_px": 0}
    img = _two_blob_slice(left=2.0, right=3.0)
    r = C.slice_sbr(img, seg_cfg=seg_cfg, experiment=EXP)
    assert set(r) == set(C.SLICE_REGIONS)
    assert sorted([r["sbr_L"], r["sbr_R"]]) == pytest.approx([2.0, 3.0])
    scaled = C.slice_sbr(img * 37.0, seg_cfg=seg_cfg, experiment=EXP)      # counts or normalised units
    assert scaled == pytest.approx(r)
    with pytest.raises(EvaluationError, match=EXP):
        C.slice_sbr(np.zeros((40, 40)), seg_cfg=seg_cfg, experiment=EXP)


def test_reading_packet_of_a_paired_experiment(tmp_path):
    from spectsynth.infer import write_predictions

    rng = np.random.default_rng(1)
    target = rng.uniform(size=(6, 1, 16, 16)).astype(np.float32)
    pred = (target + 0.1 * rng.standard_normal(target.shape)).astype(np.float32)
    table = pd.DataFrame({"subject": ["01", "01", "02", "02", "03", "03"], "slice_index": [4, 5, 4, 5, 4, 5]})
    write_predictions({"prediction": pred, "target": target, "input": target}, table, {"experiment": "s3"},
                      tmp_path / "p.h5", tmp_path / "p.tsv")
    res = S3E.reading_packet("s3", {"h5": tmp_path / "p.h5", "tsv": tmp_path / "p.tsv"},
                                      out_dir=tmp_path / "packet", key_path=tmp_path / "key" / "key.csv",
                                      cfg={"n_per_source": 10, "score_scale": 4}, seed=2)
    # S3's similarity reading: every slice twice (prediction, SPECT) in each of two readings
    assert res["n_images"] == 24
    key = pd.read_csv(tmp_path / "key" / "key.csv", dtype=str)
    assert key.groupby("reading")["source"].value_counts().to_dict() == {
        ("blind", "prediction"): 6, ("blind", "spect"): 6, ("open", "prediction"): 6, ("open", "spect"): 6}
    assert set(key["original_id"]) == {f"sub-{s} slice {z}" for s, z in zip(table["subject"],
                                                                           table["slice_index"])}
    for reading in ("open", "blind"):
        sheet = pd.read_csv(tmp_path / "packet" / reading / "scoring_sheet.csv", dtype=str)
        assert "score_1_to_4" in sheet.columns and "source" not in sheet.columns
        assert "1 to 4" in (tmp_path / "packet" / reading / "scale.txt").read_text()
    # the blind order is shuffled, the open one follows the slices
    blind = key[key["reading"] == "blind"]["original_id"].tolist()
    assert blind != key[key["reading"] == "open"]["original_id"].tolist()
    with pytest.raises(EvaluationError, match="inside the packet folder"):
        S3E.reading_packet("s3", {"h5": tmp_path / "p.h5", "tsv": tmp_path / "p.tsv"},
                                    out_dir=tmp_path / "packet", key_path=tmp_path / "packet" / "key.csv",
                                    cfg={"n_per_source": 2, "score_scale": 5})


def test_deficit_summary_per_subject_and_constant_predictor():
    def rows(predictor, subject, change, flag):
        return pd.DataFrame({"predictor": predictor, "subject": subject, "kind": ["sbr", "sbr"], "change": change,
                             "truth_change": [-50.0, -10.0], "flag": flag, "truth_flag": [True, False]})
    reg = pd.concat([rows("model", "01", [-50.0, -10.0], [True, False]),       # subject 01: 1 record, exact
                     rows("model", "02", [-40.0, -10.0], [True, False]),       # subject 02: 2 records
                     rows("model", "02", [-40.0, -10.0], [True, True]),
                     rows("constant", "01", [0.0, 0.0], [False, False]),
                     rows("constant", "02", [0.0, 0.0], [False, False]),
                     rows("constant", "02", [0.0, 0.0], [False, False])], ignore_index=True)
    reg["flag_matches_truth"] = reg["flag"] == reg["truth_flag"]
    maps = pd.DataFrame({"subject": ["01", "02", "02"], "striatal_loss_percent": [40.0, 10.0, 10.0],
                         "constant_striatal_loss_percent": [0.0, 0.0, 0.0],
                         "true_striatal_loss_percent": [40.0, 20.0, 20.0]})
    out = C.deficit_summary(reg, maps, experiment=EXP).set_index(["predictor", "n_counts"])
    assert set(out.index.get_level_values(0)) == {"model", "constant"}     # no mean-normal loss column given
    assert out.loc[("model", "records"), "n"] == 3 and out.loc[("model", "subjects"), "n"] == 2
    # records: (0 + 0 + 10) / 3; subjects: (0 + 10) / 2 -- subject 02 counts once
    assert out.loc[("model", "records"), "striatal_loss_abs_error"] == pytest.approx(20 / 3)
    assert out.loc[("model", "subjects"), "striatal_loss_abs_error"] == pytest.approx(5.0)
    assert out.loc[("model", "subjects"), "flag_matches_truth"] == pytest.approx((1.0 + 0.75) / 2)
    assert out.loc[("constant", "subjects"), "sbr_change_abs_error"] == pytest.approx(30.0)


def test_constant_predictor_and_its_implied_loss():
    m = C.constant_measures([{"sbr_striatum": 2.0, "ai": 4.0}, {"sbr_striatum": 3.0, "ai": 0.0}], experiment=EXP)
    assert m == {"sbr_striatum": 2.5, "ai": 2.0}
    with pytest.raises(EvaluationError, match="constant predictor is undefined"):
        C.constant_measures([], experiment=EXP)
    # striatum at 1 + S over the same reference: expected 3.5, actual 2.0 -> 100 * 1.5 / 3.5
    assert C.implied_striatal_loss(1.0, 2.5) == pytest.approx(100 * 1.5 / 3.5)
    assert C.implied_striatal_loss(2.5, 2.5) == 0.0
