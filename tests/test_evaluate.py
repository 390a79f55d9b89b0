"""Study evaluation on tiny synthetic prediction files; statistics cross-checked with scipy."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from skimage.metrics import mean_squared_error, structural_similarity
from statsmodels.stats.multitest import multipletests

from spectsynth import evaluate as E
from spectsynth import io as sio
from spectsynth.errors import EvaluationError
from spectsynth.infer import write_predictions
from spectsynth.labels import LEVELS, PATTERNS
from spectsynth.studies import get as get_study
from spectsynth.studies import study_experiments
from spectsynth.studies.s0 import SBR_REGIONS as CNN_REGIONS
from spectsynth.studies.s0 import evaluate as S0E
from spectsynth.studies.s1 import evaluate as S1E
from spectsynth.studies.s2 import evaluate as S2E
from spectsynth.studies.s3 import evaluate as S3E

CFG = {"alpha": 0.01, "anova_alpha": 0.05, "corrections": ["holm", "fdr_bh"], "posthoc": "tukey",
       "posthoc_reference": "real", "data_range": 2.0, "ssim_win_size": 7,
       "bg_segmentation": {"threshold_fraction": 0.5, "min_size_px": 0},
       "sbr_error_thresholds": [0.75, 0.5, 0.25], "regression_confidence": 0.95, "loa_z": 1.96,
       "display_convention": "radiological", "figure_dpi": 50, "anova_power": 0.8, "anova_reference_f": 0.25,
       "batch_size": 64}
H = W = 16


def _blob(rng, n):
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / 20.0)
    return np.stack([base * rng.uniform(0.8, 1.2) + 0.05 * rng.standard_normal((H, W)) for _ in range(n)])


def _paired_files(tmp, name, target, prediction, table, inp=None, brain=None):
    arrays = {"prediction": prediction[:, None], "target": target[:, None]}
    if inp is not None:
        arrays["input"] = inp if inp.ndim == 4 else inp[:, None]
    if brain is not None:
        arrays["brain"] = brain[:, None]
    write_predictions(arrays, table, {"experiment": name}, tmp / name / "p.h5", tmp / name / "p.tsv")
    return {"h5": str(tmp / name / "p.h5"), "tsv": str(tmp / name / "p.tsv")}


def _outs(tmp, keys, figures):
    return {k: str(tmp / (f"{k}.png" if k in figures else f"{k}.tsv")) for k in keys}


def _dataset(tmp, name, study, images, table, normalise):
    """A real dataset folder (shards + index.tsv) from slices and a table with subject/split."""
    from spectsynth.datasets import write_shards

    table = table.copy()
    for col, value in (("dataset", name), ("study", study), ("level", ""), ("pattern", "normal"), ("space", ""),
                       ("source", ""), ("n_z", 10), ("record", 0)):
        if col not in table:
            table[col] = value
    if "slice_index" not in table:
        table["slice_index"] = table.groupby("subject").cumcount()
    index = write_shards(name, images.astype(np.float32), table,
                         {"study": study, "size": images.shape[-1], "normalise": normalise}, tmp / name,
                         channels=get_study(study).channels)
    return index, {"h5": str(tmp / name / "train.h5"), "index": str(tmp / name / "index.tsv")}


# ------------------------------------------------------------------------------ S2
S2_KEYS = ["slice_metrics", "ttests", "table4", "published", "verdicts", "violin", "not_computed"]
S2_CHANNELS = {"mri": ["mri"], "mri+pet": ["mri", "pet"]}


def _s2_grid(tmp, n_subjects=2, n_slices=4, n_train=3, predict=None):
    """Two spaces x inputs mri, mri+pet; MRI is a SPECT of low contrast and shifted level (a
    linear map learns it, the identity baseline does not), PET a noisy SPECT.  ``predict(target, inputs, rng, inp)`` makes
    a run's prediction (default: target plus input-dependent noise)."""
    rng = np.random.default_rng(0)
    files, specs, train = {}, {}, {}
    noise = {"mri": 0.3, "mri+pet": 0.1}
    subjects = [f"{i:02d}" for i in range(n_train + n_subjects)]
    for space in ("native", "template"):
        ds = f"s2_{space}"
        n_all = len(subjects) * n_slices
        yy, xx = np.mgrid[0:H, 0:W]
        cy, cx = rng.uniform(5, 11, size=(2, n_all, 1, 1))
        spect = 2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(8, 20, size=(n_all, 1, 1))) - 1
        mri = 0.3 * spect - 0.6 + 0.1 * rng.standard_normal(spect.shape)
        pet = spect + 0.2 * rng.standard_normal(spect.shape)
        table = pd.DataFrame({"subject": np.repeat(subjects, n_slices),
                              "slice_index": np.tile(np.arange(n_slices) * 3 + 1, len(subjects)),
                              "split": ["train"] * (n_train * n_slices) + ["test"] * (n_subjects * n_slices)})
        brain = np.broadcast_to(((yy - 8) ** 2 + (xx - 8) ** 2 <= 36).astype(float), spect.shape)
        images = np.stack([mri, pet, spect, brain], 1)
        index, train[ds] = _dataset(tmp, ds, "S2", images, table, "minmax_pm1")
        test = (index["split"] == "test").to_numpy()
        ttab = index[test].reset_index(drop=True)
        target = images[test, 2]
        for inp in ("mri", "mri+pet"):
            name = f"s2_{inp}_{space}"
            x = images[test][:, [["mri", "pet", "spect"].index(c) for c in S2_CHANNELS[inp]]]
            pred = (target + noise[inp] * rng.standard_normal(target.shape) if predict is None
                    else predict(target, x, rng, inp))
            files[name] = _paired_files(tmp, name, target, pred, ttab, inp=x, brain=images[test, 3])
            specs[name] = {"experiment": name, "input": inp, "space": space, "loss": "l1", "epochs": 3,
                           "dataset": ds, "input_channels": S2_CHANNELS[inp], "target_channels": ["spect"]}
    return files, specs, train


def test_s2_metrics_and_tests_match_direct_scipy(tmp_path):
    files, specs, train = _s2_grid(tmp_path)
    out = _outs(tmp_path / "out", S2_KEYS, {"violin"})
    res = S2E.evaluate_s2(files, specs, out, cfg=CFG, scale_label="demo scale", train=train)
    data = pd.read_csv(out["slice_metrics"], sep="\t", dtype={"subject": str})
    # 4 runs, 2 baselines and 2 floors per (input, space), 8 test slices each
    assert len(data) == (4 + 16) * 8 and (data["data_range"] == 2.0).all()
    assert set(data["model"]) == {"pix2pix", *S2E.S2_BASELINES.values(), *S2E.S2_FLOORS}
    assert data["calibration"].str.startswith("none").all()
    # one row checked against scikit-image directly
    with h5py.File(files["s2_mri_native"]["h5"]) as f:
        p, t = f["prediction"][0, 0].astype(float), f["target"][0, 0].astype(float)
        x = f["input"][0, 0].astype(float)
    row = data[(data["experiment"] == "s2_mri_native")].iloc[0]
    assert row["rmse"] == pytest.approx(np.sqrt(mean_squared_error(t, p)))
    assert row["ssim"] == pytest.approx(structural_similarity(t, p, data_range=2.0, win_size=7))
    ident = data[(data["model"] == S2E.S2_BASELINES["identity"]) & (data["input"] == "mri")
                 & (data["space"] == "native")].iloc[0]
    assert ident["rmse"] == pytest.approx(np.sqrt(mean_squared_error(t, x)))
    # the t-test mri vs mri+pet in native space, RMSE, on subject means: same numbers through scipy
    tt = pd.read_csv(out["ttests"], sep="\t", dtype={"subjects": str})
    sel = tt[(tt["metric"] == "rmse") & tt["label"].str.contains(r"input mri vs mri\+pet \(space native")]
    assert len(sel) == 1
    a = data[(data.experiment == "s2_mri_native")].groupby("subject")["rmse"].mean()
    b = data[(data.experiment == "s2_mri+pet_native")].groupby("subject")["rmse"].mean()
    ref = sps.ttest_rel(a.to_numpy(), b.to_numpy())
    assert sel["statistic"].iat[0] == pytest.approx(ref.statistic)
    assert sel["p"].iat[0] == pytest.approx(ref.pvalue)
    assert sel["n"].iat[0] == 2 and sel["n_counts"].iat[0].startswith("test subjects")
    fam = tt[(tt["version"] == "whole slice (as S2)") & (tt["family"] == "input: mri vs mri+pet")]
    assert len(fam) == 2 * 3
    _, holm, _, _ = multipletests(fam["p"].to_numpy(), method="holm")
    np.testing.assert_allclose(fam["p_holm"].to_numpy(), holm)
    # every run against its input baseline: the model beats the low-contrast MRI
    base = tt[(tt["family"] == f"pix2pix vs {S2E.S2_BASELINES['identity']}") & (tt["metric"] == "ssim")]
    assert len(base) == 4 and (base["statistic"] > 0).all()
    assert len(tt[tt["family"] == f"pix2pix vs {S2E.S2_BASELINES['linear']}"]) == 4 * 6
    # Table 4: rows model x space x loss x metric, columns = inputs, mean (CV%); published rows beside
    t4 = res["table4"]
    assert list(t4.columns[:4]) == ["model", "space", "loss", "metric"] and {"mri", "mri+pet"} <= set(t4.columns)
    # runs, baselines and floors (loss none), each whole slice and in the brain; published (native/template l1)
    assert len(t4) == (2 + 2 * 2 + 2 * 2) * 6 + 2 * 3
    m = data[(data.experiment == "s2_mri_native")]["rmse"]
    cell = t4.loc[(t4.model == "pix2pix") & (t4.space == "native") & (t4.metric == "rmse"), "mri"].iat[0]
    assert cell.startswith(f"{m.mean():.2f} (")
    pub = t4[(t4.model == S2E.S2_PUBLISHED_ROW) & (t4.space == "native") & (t4.metric == "ssim")]
    assert pub["mri"].iat[0] == "0.87 (5.75%)" and pub["scale"].iat[0].startswith("S2 paper scale")
    published = pd.read_csv(out["published"], sep="\t")
    hit = published[(published["quantity"] == "Table 4 mean SSIM") & (published["space"] == "native")
                    & (published["input"] == "mri")]
    assert hit["published"].iat[0] == 0.87
    assert hit["ours"].iat[0] == pytest.approx(data[data.experiment == "s2_mri_native"]["ssim"].mean())
    assert (published["our_scale"] == "demo scale").all()
    assert published[published["quantity"].str.startswith("native vs template")]["published"].iat[0] == 18
    assert pd.read_csv(out["not_computed"], sep="\t").empty
    assert (tmp_path / "out" / "violin.png").stat().st_size > 1000
    for k in ("ttests", "table4", "slice_metrics", "published"):
        assert not pd.read_csv(out[k], sep="\t").isna().any().any()


def test_s2_linear_baseline_is_fitted_on_the_training_split(tmp_path):
    """The per-pixel map is the closed-form least squares of the training shard: it learns the
    MRI's contrast, and equals numpy's lstsq per pixel."""
    files, specs, train = _s2_grid(tmp_path)
    from spectsynth.datasets import SliceShard

    sh = SliceShard(train["s2_native"]["h5"]).all_images().astype(float)
    coef = E.fit_pixel_linear_map(E.train_chunks(train["s2_native"]["h5"], ["mri", "pet", "spect"], chunk=5))
    for (r, c) in ((0, 0), (8, 8), (3, 12)):
        z = np.column_stack([np.ones(len(sh)), sh[:, 0, r, c], sh[:, 1, r, c]])
        ref = np.linalg.lstsq(z, sh[:, 2, r, c], rcond=None)[0]
        np.testing.assert_allclose(coef[:, r, c], ref, atol=1e-6)
    out = _outs(tmp_path / "out", S2_KEYS, {"violin"})
    data = S2E.evaluate_s2(files, specs, out, cfg=CFG, scale_label="demo scale", train=train)["slice_metrics"]
    mri = data[(data["input"] == "mri") & (data["space"] == "native")].groupby("model")["ssim"].mean()
    assert mri[S2E.S2_BASELINES["linear"]] > mri[S2E.S2_BASELINES["identity"]] + 0.3
    # without the training shard the baselines cannot be built: said, with the dataset named
    with pytest.raises(EvaluationError, match="no training shard of dataset s2_native"):
        S2E.evaluate_s2(files, specs, out, cfg=CFG, scale_label="demo scale", train={})


def test_s2_null_and_shuffled_predictions_score_no_better_than_the_baselines(tmp_path):
    """A constant prediction and one taken from another subject score no better than the
    linear-map baseline of any input, nor than the input baseline of the PET input."""
    def null(target, x, rng, inp):
        return np.full_like(target, float(target.mean()))

    def shuffled(target, x, rng, inp):
        n = len(target) // 2          # the other test subject's slices
        return np.concatenate([target[n:], target[:n]])

    for kind, fn in (("null", null), ("shuffled", shuffled)):
        files, specs, train = _s2_grid(tmp_path / kind, predict=fn)
        out = _outs(tmp_path / kind / "out", S2_KEYS, {"violin"})
        data = S2E.evaluate_s2(files, specs, out, cfg=CFG, scale_label="demo scale", train=train)["slice_metrics"]
        mean = data.groupby(["input", "model"])[["rmse", "ssim", "psnr"]].mean()
        for inp, base in (("mri", "linear"), ("mri+pet", "linear"), ("mri+pet", "identity")):
            run, ref = mean.loc[(inp, "pix2pix")], mean.loc[(inp, S2E.S2_BASELINES[base])]
            assert run["ssim"] < ref["ssim"] and run["psnr"] < ref["psnr"] and run["rmse"] > ref["rmse"], \
                (kind, inp, base)
        tt = pd.read_csv(out["ttests"], sep="\t")
        lin = tt[tt["family"] == f"pix2pix vs {S2E.S2_BASELINES['linear']}"]
        assert not ((lin["metric"] == "ssim") & (lin["statistic"] > 0) & lin["significant"]).any(), kind


def test_s2_too_few_slices_are_reported_not_written_as_nan(tmp_path):
    files, specs, train = _s2_grid(tmp_path, n_subjects=1, n_slices=1)
    out = _outs(tmp_path / "out", S2_KEYS, {"violin"})
    S2E.evaluate_s2(files, specs, out, cfg=CFG, scale_label="demo scale", train=train)
    notes = pd.read_csv(out["not_computed"], sep="\t")
    assert len(notes) > 0 and notes["reason"].str.contains("at least 2").all()
    assert pd.read_csv(out["ttests"], sep="\t").empty
    assert pd.read_csv(out["table4"], sep="\t").empty


def test_shape_mismatch_names_the_experiment(tmp_path):
    table = pd.DataFrame({"subject": ["01", "01"], "slice_index": [1, 2]})
    rng = np.random.default_rng(1)
    files = {"bad_run": _paired_files(tmp_path, "bad_run", _blob(rng, 2), _blob(rng, 2)[:, :8], table)}
    with pytest.raises(EvaluationError, match="experiment bad_run: predictions have shape"):
        S2E.evaluate_s2(files, {"bad_run": {"input": "mri", "space": "native", "loss": "l1", "epochs": 1}},
                      _outs(tmp_path / "o", S2_KEYS, {"violin"}), cfg=CFG, scale_label="demo scale", train={})


def test_write_table_refuses_nan(tmp_path):
    with pytest.raises(EvaluationError, match="columns \\['p'\\] hold missing values"):
        sio.write_table(pd.DataFrame({"p": [0.1, np.nan]}), tmp_path / "t.tsv", what="test")
    assert not (tmp_path / "t.tsv").exists()


# ------------------------------------------------------------------------------ S3
S3_KEYS = ["slice_metrics", "roi_means", "summary", "ttest", "regression", "published", "scatter", "verdicts",
           "not_computed"]
S3_SPEC = {"experiment": "s3", "input_channels": ["spect_cbf"], "target_channels": ["pet_cbf"], "epochs": 2}


def _s3_norm(raw):
    """max_pm1 normalisation of (N, H, W) slices: (normalised, gain, bias)."""
    g = 2.0 / raw.reshape(len(raw), -1).max(1)
    return raw * g[:, None, None] - 1.0, g, np.full(len(raw), -1.0)


def _s3_train(tmp, rng, n=8):
    """A training split whose PET scale is 1.5 x the SPECT scale (+ noise)."""
    pet = _blob(rng, n).clip(0) * 50 * rng.uniform(0.5, 1.5, size=(n, 1, 1))
    spect = pet / 1.5 + 0.3 * rng.random((n, H, W))
    sn, gs, bs = _s3_norm(spect)
    pn, gp, bp = _s3_norm(pet)
    table = pd.DataFrame({"subject": [f"t{i:02d}" for i in range(n)], "split": "train",
                          "gain_spect_cbf": gs, "bias_spect_cbf": bs, "gain_pet_cbf": gp, "bias_pet_cbf": bp})
    yy, xx = np.mgrid[0:H, 0:W]
    brain = np.broadcast_to(((yy - 8) ** 2 + (xx - 8) ** 2 <= 36).astype(float), sn.shape)
    _, train = _dataset(tmp, "s3", "S3", np.stack([sn, pn, brain], 1), table, "max_pm1")
    return train, pn.mean(0)


def test_s3_regressions_and_ssim_match_scipy(tmp_path):
    rng = np.random.default_rng(2)
    train, null_img = _s3_train(tmp_path, rng)
    n = 6
    target_raw = _blob(rng, n).clip(0) * 50 * rng.uniform(0.5, 1.5, size=(n, 1, 1))
    input_raw = 0.8 * target_raw + 2 * rng.random((n, H, W))
    pred_raw = target_raw + rng.standard_normal((n, H, W))
    t_n, g_t, b_t = _s3_norm(target_raw)
    i_n, g_i, b_i = _s3_norm(input_raw)
    table = pd.DataFrame({"subject": ["01"] * 3 + ["02"] * 3, "slice_index": [1, 2, 3] * 2,
                          "gain_spect_cbf": g_i, "bias_spect_cbf": b_i, "gain_pet_cbf": g_t, "bias_pet_cbf": b_t})
    pred_n = pred_raw * g_t[:, None, None] - 1.0
    files = _paired_files(tmp_path, "s3", t_n, pred_n, table, inp=i_n)
    out = _outs(tmp_path / "out", S3_KEYS, {"scatter"})
    res = S3E.evaluate_s3("s3", files, S3_SPEC, out, cfg=CFG, scale_label="demo scale", train=train)
    data = res["slice_metrics"]
    mask = input_raw > S3E.BRAIN_FRACTION * input_raw.reshape(n, -1).max(1)[:, None, None]
    mt = np.array([target_raw[i][mask[i]].mean() for i in range(n)])
    mi = np.array([input_raw[i][mask[i]].mean() for i in range(n)])
    np.testing.assert_allclose(data["mean_target"], mt, rtol=1e-4)
    np.testing.assert_allclose(data["mean_input"], mi, rtol=1e-4)
    # the prediction is calibrated from the input's scale with the training-split lines
    cal = res["calibration"]
    scale, offset = cal.constants(g_i, b_i)
    pred_cal = pred_n.astype(np.float32) * scale[:, None, None] + offset[:, None, None]
    np.testing.assert_allclose(data["mean_prediction"],
                               [pred_cal[i][mask[i]].mean() for i in range(n)], rtol=1e-4)
    # PET scale ~ 1.5 x SPECT scale in the training split; max_pm1 keeps offset = scale
    assert np.exp(cal.log_scale_intercept) * 10 ** cal.log_scale_slope == pytest.approx(15, rel=0.05)
    assert cal.log_scale_slope == pytest.approx(1.0, abs=0.05) and cal.offset_ratio == 1.0 and cal.n_train == 8
    assert (data["calibration"] == cal.describe()).all() and "training" in cal.describe()
    reg = pd.read_csv(out["regression"], sep="\t")
    assert set(reg["basis"]) == {"slice"}  # no atlas labels given
    assert set(reg.loc[reg["series"] == "baseline", "label"]) == {"input vs target"}
    assert set(reg.loc[reg["series"] == "null model", "label"]) == {
        "null (input's scale) vs target", "null (training scale) vs target", "null (training scale) vs input"}
    reg = reg.set_index("label")
    ref = sps.linregress(mt, mi)
    assert reg.loc["input vs target", "slope"] == pytest.approx(ref.slope, rel=1e-3)
    assert reg.loc["input vs target", "intercept"] == pytest.approx(ref.intercept, rel=1e-3, abs=1e-3)
    assert reg.loc["input vs target", "statistic"] == pytest.approx(sps.pearsonr(mt, mi).statistic, rel=1e-4)
    assert reg.loc["input vs target", "published"] == "y = 0.13 + 0.63x, r = 0.77"
    assert reg.loc["null (input's scale) vs target", "published"] == "not reported"
    assert set(reg.index) == {"input vs target", "prediction vs target", "prediction vs input",
                              "null (input's scale) vs target", "null (training scale) vs target",
                              "null (training scale) vs input"}
    assert (reg["n_subjects"] == 2).all() and (reg["n"] == 6).all()
    assert reg["n_counts"].str.startswith("6 slices of 2 test subjects").all()
    t0 = t_n[0].astype(np.float32).astype(float)
    i0 = i_n[0].astype(np.float32).astype(float)
    assert data["ssim_input_vs_target"].iat[0] == pytest.approx(structural_similarity(t0, i0, data_range=2.0))
    assert data["ssim_null_vs_target"].iat[0] == pytest.approx(
        structural_similarity(t0, null_img.astype(np.float32).astype(float), data_range=2.0), rel=1e-5)
    tt = pd.read_csv(out["ttest"], sep="\t")
    assert len(tt) == 3 * 6 and set(tt["baseline"]) == {S3E.S3_SERIES_TEXT["input"], S3E.S3_SERIES_TEXT["null"],
                                                         E.FLOOR_OUTLINE}
    assert set(tt["version"]) == {"whole slice (as S3)", "inside the brain"}
    ssim_t = tt[tt["label"] == "SSIM prediction vs target against input vs target (subject means)"]
    subj = data.groupby("subject")[["ssim_prediction_vs_target", "ssim_input_vs_target"]].mean()
    ref_t = sps.ttest_rel(subj["ssim_prediction_vs_target"], subj["ssim_input_vs_target"])
    assert ssim_t["n"].iat[0] == 2
    assert ssim_t["p"].iat[0] == pytest.approx(ref_t.pvalue)
    summ = pd.read_csv(out["summary"], sep="\t").set_index("value")
    assert summ.loc["ssim_input_vs_target", "published"] == "0.79"
    assert summ.loc["rmse_null_vs_target", "published"] == "not reported"
    pub = pd.read_csv(out["published"], sep="\t")
    row = pub[pub["quantity"] == "SSIM prediction vs target (mean)"]
    assert row["published"].iat[0] == 0.86
    assert row["ours"].iat[0] == pytest.approx(data["ssim_prediction_vs_target"].mean())
    assert (pub["published_scale"].str.startswith("S3 paper scale")).all()
    assert (tmp_path / "out" / "scatter.png").exists()


def test_s3_two_slices_leave_regressions_not_computed(tmp_path):
    rng = np.random.default_rng(3)
    train, _ = _s3_train(tmp_path, rng)
    t = _blob(rng, 2).clip(0) * 2 - 1
    table = pd.DataFrame({"subject": ["01", "01"], "slice_index": [1, 2], "gain_spect_cbf": 1.0,
                          "bias_spect_cbf": 0.0, "gain_pet_cbf": 1.0, "bias_pet_cbf": -1.0})
    files = _paired_files(tmp_path, "s3", t, t + 0.1 * rng.standard_normal(t.shape), table, inp=t + 0.2)
    out = _outs(tmp_path / "out", S3_KEYS, {"scatter"})
    S3E.evaluate_s3("s3", files, S3_SPEC, out, cfg=CFG, scale_label="demo scale", train=train)
    notes = pd.read_csv(out["not_computed"], sep="\t")
    assert notes["what"].str.startswith("regression").sum() == 6  # slice basis, no labels
    assert notes["reason"].str.contains("experiment s3").all()
    assert pd.read_csv(out["regression"], sep="\t").empty


def _s3_study(tmp, predict, *, n_test=5, seed=8, target_gain_factor=None, input_gain_factor=None):
    """Atlas study: two territories with their own CBF per subject; SPECT = 0.6 PET + 8 inside
    the brain plus an error of its own per territory and pixel noise.  ``predict(target_norm, input_norm, table)`` gives the
    normalised prediction.  Returns the evaluation's tables."""
    import nibabel as nib

    from spectsynth.datasets import axial_slice, resize_slice

    rng = np.random.default_rng(seed)
    shape = (12, 16, 10)
    lab = np.zeros(shape, dtype=np.int16)
    lab[1:6, 2:14, :] = 1
    lab[6:11, 2:14, :] = 2
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    tmp.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(lab, affine), tmp / "labels.nii.gz")

    def subject_slices(n_sub, prefix):
        rows, ins, tgs = [], [], []
        for s in range(n_sub):
            c = rng.uniform(30, 70, size=2) * rng.uniform(0.7, 1.3)
            target = np.where(lab == 1, c[0], np.where(lab == 2, c[1], 0.0)) * (1 + 0.05 * rng.standard_normal(shape))
            err = np.where(lab == 1, 1.0, 0.0) * rng.normal(0, 6) + np.where(lab == 2, 1.0, 0.0) * rng.normal(0, 6)
            inp = np.where(lab > 0, 0.6 * target + 8 + err + 2 * rng.standard_normal(shape), 0.0).clip(0)
            src = tmp / f"{prefix}{s}.nii.gz"
            nib.save(nib.Nifti1Image(target.astype(np.float32), affine), src)
            for z in (3, 5, 7):
                ins.append(resize_slice(axial_slice(inp, z), 16))
                tgs.append(resize_slice(axial_slice(target, z), 16))
                rows.append({"subject": f"{prefix}{s}", "slice_index": z, "source": str(src)})
        i_n, gi, bi = _s3_norm(np.stack(ins))
        t_n, gt, bt = _s3_norm(np.stack(tgs))
        table = pd.DataFrame(rows).assign(gain_spect_cbf=gi, bias_spect_cbf=bi, gain_pet_cbf=gt, bias_pet_cbf=bt)
        return i_n, t_n, table

    tr_i, tr_t, tr_table = subject_slices(6, "tr")
    _, train = _dataset(tmp, "s3", "S3", np.stack([tr_i, tr_t, np.ones_like(tr_t)], 1), tr_table.assign(split="train"), "max_pm1")
    i_n, t_n, table = subject_slices(n_test, "te")
    pred = predict(t_n, i_n, table)
    if target_gain_factor is not None:   # the target's normalisation constants alone change
        table = table.assign(gain_pet_cbf=table["gain_pet_cbf"] * target_gain_factor,
                             bias_pet_cbf=table["bias_pet_cbf"] + 0.5)
    if input_gain_factor is not None:   # the test input's physical scale alone changes
        table = table.assign(gain_spect_cbf=table["gain_spect_cbf"] * input_gain_factor)
    files = _paired_files(tmp, "s3", t_n, pred, table, inp=i_n)
    out = _outs(tmp / "out", S3_KEYS, {"scatter"})
    labels = {s: str(tmp / "labels.nii.gz") for s in table["subject"].unique()}
    return S3E.evaluate_s3("s3", files, S3_SPEC, out, cfg=CFG, scale_label="demo scale", train=train,
                         labels=labels, label_names={1: "left", 2: "right"})


def _roi_r(res, label):
    reg = res["regression"]
    return float(reg[(reg["basis"] == "roi") & (reg["label"] == label)]["statistic"].iat[0])


def test_s3_null_and_shuffled_predictions_score_no_better_than_the_input(tmp_path):
    """A constant prediction and one shuffled across subjects neither correlate with the PET's
    ROI values nor reach the input's SSIM; a good prediction does (the test can fail)."""
    def good(t, i, table):
        return t + 0.02 * np.random.default_rng(0).standard_normal(t.shape)

    def null(t, i, table):
        return np.full_like(t, -0.2)

    def shuffled(t, i, table):
        return np.roll(t, 3, axis=0)     # the next subject's three slices

    res = {k: _s3_study(tmp_path / k, fn) for k, fn in (("good", good), ("null", null), ("shuffled", shuffled))}
    base_r = _roi_r(res["good"], "input vs target")
    assert _roi_r(res["good"], "prediction vs target") > base_r
    assert res["good"]["slice_metrics"]["ssim_prediction_vs_target"].mean() > \
        res["good"]["slice_metrics"]["ssim_input_vs_target"].mean()
    for kind in ("null", "shuffled"):
        r = res[kind]
        assert _roi_r(r, "input vs target") == pytest.approx(base_r)
        assert _roi_r(r, "prediction vs target") < base_r, kind
        sm = r["slice_metrics"]
        assert sm["ssim_prediction_vs_target"].mean() <= sm["ssim_input_vs_target"].mean(), kind
    # the null-model baselines themselves are no better than the input either
    assert _roi_r(res["good"], "null (input's scale) vs target") < base_r
    assert _roi_r(res["good"], "null (training scale) vs target") < base_r


def test_s3_prediction_values_ignore_the_targets_normalisation_constants(tmp_path):
    def good(t, i, table):
        return t + 0.02 * np.random.default_rng(0).standard_normal(t.shape)

    a = _s3_study(tmp_path / "a", good)
    b = _s3_study(tmp_path / "b", good, target_gain_factor=3.0)
    for key, cols in (("slice_metrics", ["mean_prediction", "mean_null_input_scale", "mean_null_train_scale",
                                         "mean_input"]),
                      ("roi_means", ["prediction", "null_input_scale", "null_train_scale", "input"])):
        np.testing.assert_allclose(a[key][cols].to_numpy(), b[key][cols].to_numpy(), rtol=1e-12)
    # the target's own values follow its constants, so the check above is not vacuous
    assert not np.allclose(a["roi_means"]["target"], b["roi_means"]["target"])


# ------------------------------------------------------------------------------ S1
S1_KEYS = ["images", "anova", "posthoc", "summary", "average_sd", "boxplot", "maps_mean", "maps_sd",
           "not_computed"]


def _s1_shard(tmp, images, levels, patterns, subjects=None):
    """A minimal S1 test shard in the layout SliceShard reads (images, codes, rows, channels)."""
    path = tmp / "test.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images[:, None].astype(np.float32))
        f.create_dataset("level", data=[LEVELS.index(lv) for lv in levels])
        f.create_dataset("pattern", data=[PATTERNS.index(p) for p in patterns])
        f.create_dataset("row", data=np.arange(len(images)))
        f.attrs["channels"] = json.dumps(["slice"])
    subjects = [f"{i:02d}" for i in range(len(images))] if subjects is None else subjects
    pd.DataFrame({"subject": subjects, "split": "test",
                  "shard_row": np.arange(len(images)), "level": levels, "pattern": patterns}
                 ).to_csv(tmp / "index.tsv", sep="\t", index=False)
    return str(path), str(tmp / "index.tsv")


def test_s1_anova_matches_scipy_and_lr_orientation(tmp_path):
    rng = np.random.default_rng(4)
    n = 5
    real = _blob(rng, n).clip(0)
    real[:, :, : W // 2] *= 1.5  # stored slices: the left half is the subject's left -> LR > 1
    shard, index = _s1_shard(tmp_path, real, ["COR"] * n, ["normal"] * n)
    gens = {}
    for name, scale in (("gA", 0.9), ("gB", 0.7)):
        imgs = (_blob(rng, n).clip(0) * scale)[:, None]
        table = pd.DataFrame({"experiment": name, "kind": "generated", "level": "COR", "pattern": "normal",
                              "sample": np.arange(n)})
        write_predictions({"prediction": imgs}, table, {"experiment": name}, tmp_path / name / "p.h5",
                          tmp_path / name / "p.tsv")
        gens[name] = {"h5": str(tmp_path / name / "p.h5"), "tsv": str(tmp_path / name / "p.tsv")}
    specs = {"gA": {"condition": {"variant": "A"}, "epochs": 2}, "gB": {"condition": {"variant": "B"}, "epochs": 2}}
    out = _outs(tmp_path / "out", S1_KEYS, {"boxplot", "maps_mean", "maps_sd"})
    res = S1E.evaluate_s1(gens, specs, shard, index, out, cfg=CFG, scale_label="demo scale")
    img = res["images"]
    assert (img.loc[img.source == "real", "lr_ratio"] > 1.1).all()
    groups = [img.loc[img.source == s, "mean_counts"].to_numpy() for s in ("real", "A", "B")]
    ref = sps.f_oneway(*groups)
    an = pd.read_csv(out["anova"], sep="\t")
    row = an[an["value"] == "mean_counts"].iloc[0]
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["p"] == pytest.approx(ref.pvalue)
    assert row["n"] == 3 * n
    ph = pd.read_csv(out["posthoc"], sep="\t")
    ph = ph[ph["comparison"] == S1E.COMPARISON_GENERATED]
    assert set(ph["group1"]) | set(ph["group2"]) >= {"real", "A", "B"}
    assert ((ph["group1"] == "real") | (ph["group2"] == "real")).all()  # posthoc_reference
    sd = pd.read_csv(out["average_sd"], sep="\t")
    assert set(sd["source"]) == {"real", "A", "B"} and (sd["n"] == n).all()
    ref_sd = E.shard_to_ras(real).std(axis=0, ddof=1).mean()
    assert sd.loc[sd.source == "real", "average_sd"].iat[0] == pytest.approx(ref_sd, rel=1e-5)
    notes = pd.read_csv(out["not_computed"], sep="\t")
    # only the real-vs-real reference is missing: 5 subjects cannot fill two halves of 5
    assert notes["what"].str.contains("real half 1 vs real half 2").all() and len(notes) == 3


def test_s1_empty_group_and_single_images_are_not_computed(tmp_path):
    rng = np.random.default_rng(5)
    real = _blob(rng, 2).clip(0)
    shard, index = _s1_shard(tmp_path, real, ["COR", "COR"], ["normal", "unilateral"])
    table = pd.DataFrame({"experiment": "gA", "kind": "generated", "level": ["COR"], "pattern": ["normal"],
                          "sample": [0]})
    write_predictions({"prediction": _blob(rng, 1)[:, None].clip(0)}, table, {"experiment": "gA"},
                      tmp_path / "gA" / "p.h5", tmp_path / "gA" / "p.tsv")
    out = _outs(tmp_path / "out", S1_KEYS, {"boxplot", "maps_mean", "maps_sd"})
    S1E.evaluate_s1({"gA": {"h5": str(tmp_path / "gA" / "p.h5"), "tsv": str(tmp_path / "gA" / "p.tsv")}},
                  {"gA": {"condition": {"variant": "A"}, "epochs": 1}}, shard, index, out, cfg=CFG,
                  scale_label="demo scale")
    notes = pd.read_csv(out["not_computed"], sep="\t")
    assert notes["what"].str.contains("ANOVA mean_counts at COR, normal").any()
    assert notes["what"].str.contains("mean/SD map").any()
    assert pd.read_csv(out["anova"], sep="\t").empty
    assert (tmp_path / "out" / "maps_sd.png").exists()


def _s1_generated(tmp, name, images, level="COR", pattern="normal"):
    table = pd.DataFrame({"experiment": name, "kind": "generated", "level": level, "pattern": pattern,
                          "sample": np.arange(len(images))})
    write_predictions({"prediction": images[:, None]}, table, {"experiment": name}, tmp / name / "p.h5",
                      tmp / name / "p.tsv")
    return {"h5": str(tmp / name / "p.h5"), "tsv": str(tmp / name / "p.tsv")}


def test_real_halves_split_by_subject_seeded():
    subjects = [f"s{i}" for i in range(7)] * 3
    a = S1E.split_subjects_in_halves(subjects, seed=3)
    assert a == S1E.split_subjects_in_halves(list(reversed(subjects)), seed=3)       # a function of the set
    assert sorted(a) == sorted(set(subjects)) and sorted(a.values()).count(1) == 4  # every subject, one half
    assert any(S1E.split_subjects_in_halves(subjects, seed=k) != a for k in range(4, 10))
    with pytest.raises(EvaluationError, match="1 subject.*needs at least two"):
        S1E.split_subjects_in_halves(["s0", "s0"], seed=0)


def test_s1_real_vs_real_reference_power_other_criterion_and_published(tmp_path):
    from statsmodels.stats.power import FTestAnovaPower

    rng = np.random.default_rng(8)
    subjects = [f"{i:02d}" for i in range(10) for _ in range(3)]         # 10 subjects x 3 slices (5 per half)
    real = _blob(rng, len(subjects)).clip(0)
    shard, index = _s1_shard(tmp_path, real, ["COR"] * len(real), ["normal"] * len(real), subjects=subjects)
    gens = {"gA": _s1_generated(tmp_path, "gA", _blob(rng, 18).clip(0)),
            "gB": _s1_generated(tmp_path, "gB", _blob(rng, 18).clip(0) * 0.6)}
    alt = {"gA": _s1_generated(tmp_path / "alt", "gA", _blob(rng, 18).clip(0) * 0.8),
           "gB": _s1_generated(tmp_path / "alt", "gB", _blob(rng, 18).clip(0) * 0.7)}
    specs = {"gA": {"condition": {"variant": "A"}, "epochs": 2}, "gB": {"condition": {"variant": "B"}, "epochs": 2}}
    out = _outs(tmp_path / "out", S1_KEYS, {"boxplot", "maps_mean", "maps_sd"})
    res = S1E.evaluate_s1(gens, specs, shard, index, out, cfg=CFG, scale_label="demo scale",
                        other_predictions={"study_quantities": alt}, headline_criterion="feature_distance", seed=1)
    img = pd.read_csv(out["images"], sep="\t", dtype={"subject": str}, keep_default_na=False)
    real_rows = img[img["source"] == "real"]
    assert real_rows.groupby("subject")["real_half"].nunique().max() == 1           # no subject in both halves
    assert set(real_rows["real_half"]) == {1, 2} and (img.loc[img["source"] != "real", "real_half"] == 0).all()
    an = pd.read_csv(out["anova"], sep="\t")
    assert set(an["comparison"]) == {S1E.COMPARISON_GENERATED, S1E.COMPARISON_REAL_HALVES}
    assert set(an["criterion"]) == {"feature_distance", "study_quantities", S1E.CRITERION_NONE}
    assert an["headline"].sum() == 2                                               # MC and LR, headline only
    halves = an[(an["comparison"] == S1E.COMPARISON_REAL_HALVES) & (an["value"] == "mean_counts")].iloc[0]
    h = real_rows.set_index("image")["real_half"]
    groups = [real_rows.loc[real_rows["real_half"] == k, "mean_counts"] for k in (1, 2)]
    assert halves["statistic"] == pytest.approx(sps.f_oneway(*groups).statistic) and halves["n"] == len(h)
    # power columns: Cohen's f from the sums of squares, the detectable f and power from statsmodels
    for _, row in an.iterrows():
        k = len(row["groups"].split("|"))
        assert row["effect_f"] == pytest.approx(np.sqrt(row["sum_sq"] / row["residual_sum_sq"]))
        assert row["power_at_reference_f"] == pytest.approx(
            FTestAnovaPower().power(effect_size=0.25, nobs=row["n"], alpha=0.05, k_groups=k))
        assert FTestAnovaPower().power(effect_size=row["min_detectable_f"], nobs=row["n"], alpha=0.05,
                                       k_groups=k) == pytest.approx(0.8, abs=1e-4)
    head = an[an["headline"] & (an["value"] == "mean_counts")].iloc[0]
    assert head["min_detectable_f"] == pytest.approx(
        FTestAnovaPower().solve_power(effect_size=None, nobs=66, alpha=0.05, power=0.8, k_groups=3), rel=1e-4)
    # the other criterion's images are tested too, and change the numbers
    alt_row = an[(an["criterion"] == "study_quantities") & (an["value"] == "mean_counts")].iloc[0]
    assert alt_row["statistic"] != pytest.approx(head["statistic"])
    # the published p beside every real-vs-variant row; the summary gives the finding per criterion
    ph = pd.read_csv(out["posthoc"], sep="\t", keep_default_na=False)
    a_mc = ph[(ph["comparison"] == S1E.COMPARISON_GENERATED) & ph["headline"] & (ph["value"] == "mean_counts")
              & ((ph["group1"] == "A") | (ph["group2"] == "A"))]
    assert a_mc["published_p"].tolist() == ["P = 0.8"] and a_mc["scale"].tolist() == ["demo scale"]
    assert (ph.loc[ph["comparison"] == S1E.COMPARISON_REAL_HALVES, "published_p"] == "not reported").all()
    summ = res["summary"]
    assert set(summ["criterion"]) == {"feature_distance", "study_quantities", S1E.CRITERION_NONE}
    assert len(summ) == 2 * 2 * 2 + 2                          # MC/LR x A/B x criteria + the real-vs-real reference
    ref = summ[summ["criterion"] == S1E.CRITERION_NONE]
    assert (ref["variant"] == "real half 2").all() and (ref["published"] == "reference").all()
    b_mc = summ[(summ["variant"] == "B") & (summ["value"] == "mean_counts") & summ["headline"]].iloc[0]
    assert b_mc["published"] == "different" and b_mc["ours"] == "different"        # B dimmer by 40 %


# ------------------------------------------------------------------------------ S0
S0_KEYS = ["asp", "asp_summary", "dice", "dice_summary", "sbr", "sbr_error", "bland_altman",
           "bland_altman_plot", "examples", "not_computed"]


def _dat_slice(shift=0, gain=1.0):
    img = np.ones((H, W))
    img[5:9, 3 + shift:6 + shift] += 2.0 * gain   # subject's left half (stored columns < W/2)
    img[5:9, 10:13] += 2.0 * gain
    img[:2] = img[-2:] = 0
    return img


def test_s0_identical_prediction_gives_perfect_agreement(tmp_path):
    orig = np.stack([_dat_slice(), _dat_slice(), _dat_slice()])
    table = pd.DataFrame({"subject": ["01"] * 3, "desc": ["a", "b", "c"], "pred_row": [0, 1, 2]})
    files = _paired_files(tmp_path, "s0", orig, orig.copy(), table, inp=orig * 0.5)
    out = _outs(tmp_path / "out", S0_KEYS, {"bland_altman_plot", "examples"})
    res = S0E.evaluate_s0("s0", files, {"epochs": 2}, out, cfg=CFG, scale_label="demo scale")
    assert (res["dice"]["dice"] == 1.0).all()
    assert (res["asp"]["abs_difference"] == 0).all()
    np.testing.assert_allclose(res["sbr"]["sbr_original"], 2.0)
    notes = pd.read_csv(out["not_computed"], sep="\t")
    assert notes["what"].str.startswith("Bland-Altman").any()  # all differences 0: limits undefined
    frac = pd.read_csv(out["sbr_error"], sep="\t")
    assert (frac["fraction"] == 1.0).all()


def test_s0_shifted_prediction_dice_and_bland_altman(tmp_path):
    orig = np.stack([_dat_slice() for _ in range(4)])
    pred = np.stack([_dat_slice(shift=1, gain=g) for g in (0.6, 0.8, 1.1, 1.3)])
    table = pd.DataFrame({"subject": ["01", "01", "02", "02"], "desc": list("abcd"), "pred_row": range(4)})
    files = _paired_files(tmp_path, "s0", orig, pred, table, inp=pred)
    out = _outs(tmp_path / "out", S0_KEYS, {"bland_altman_plot", "examples"})
    res = S0E.evaluate_s0("s0", files, {"epochs": 2}, out, cfg=CFG, scale_label="demo scale")
    left = res["dice"][res["dice"]["side"] == "L"]["dice"]
    np.testing.assert_allclose(left, 2 * 8 / (12 + 12))  # 3-wide box shifted by one column
    lat = res["asp"][(res["asp"]["measure"] == "LAT")]
    assert (lat["abs_difference"] == 0).all()
    ba = pd.read_csv(out["bland_altman"], sep="\t")
    assert ba["series"].tolist() == ["prediction", "input"]
    sbr = res["sbr"][res["sbr"]["series"] == "prediction"]
    d = sbr["sbr_prediction"] - sbr["sbr_original"]
    assert ba["bias"].iat[0] == pytest.approx(d.mean())
    assert ba["p"].iat[0] == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    ds = pd.read_csv(out["dice_summary"], sep="\t")
    assert set(ds["side"]) == {"L", "R"} and {"mean_sd", "min", "max"} <= set(ds.columns)


def test_s0_damaged_input_is_the_baseline_in_every_table(tmp_path):
    from spectsynth import metrics as M

    orig = np.stack([_dat_slice() for _ in range(4)])
    damaged = np.stack([_dat_slice(shift=1, gain=g) for g in (0.3, 0.5, 0.6, 0.8)])
    table = pd.DataFrame({"subject": ["01", "01", "02", "02"], "desc": list("abcd"), "pred_row": range(4)})
    files = _paired_files(tmp_path, "s0", orig, orig.copy(), table, inp=damaged)   # a perfect restoration
    out = _outs(tmp_path / "out", S0_KEYS + ["summary"], {"bland_altman_plot", "examples"})
    seg = np.zeros((H, W), dtype=np.int16)         # the anatomy's striatum, as the workflow passes it
    seg[5:9, 3:6], seg[5:9, 10:13] = 1, 2
    res = S0E.evaluate_s0("s0", files, {"epochs": 2}, out, cfg=CFG, scale_label="demo scale",
                          regions=[E.shard_to_ras(seg)] * 4)
    for key in ("asp", "dice", "sbr", "asp_summary", "dice_summary", "sbr_error"):
        got = pd.read_csv(out[key], sep="\t")
        assert set(got["series"]) == {"prediction", "input"}, key
    dice = res["dice"]
    want = M.basal_ganglia_agreement(E.shard_to_ras(damaged[0]), E.shard_to_ras(orig[0]), fraction=0.5,
                                     dilate_px=0, min_size_px=0)[1]
    got = dice[(dice["series"] == "input") & (dice["case"] == "a#0")]["dice"].to_numpy()
    np.testing.assert_allclose(got, want["dice"].to_numpy())
    assert (dice.loc[dice["series"] == "prediction", "dice"] == 1).all()
    assert (dice.loc[(dice["series"] == "input") & (dice["side"] == "L"), "dice"] < 1).all()   # left blob shifted
    sbr = res["sbr"]
    right = sbr[(sbr["series"] == "input") & (sbr["side"] == "R")]
    np.testing.assert_allclose(right["abs_error"], [1.4, 1.0, 0.8, 0.4], rtol=1e-5)   # 2 x (1 - gain) of the damage
    np.testing.assert_allclose(sbr.loc[sbr["series"] == "prediction", "abs_error"], 0, atol=1e-12)
    summ = pd.read_csv(out["summary"], sep="\t")
    summ = summ[summ["n_counts"] != "subjects"]
    dl = summ[summ["quantity"].str.startswith("Dice of the segmented BG, left")].set_index("series")
    assert dl.loc["prediction", "ours"] == 1.0 and dl.loc["input", "ours"] < 1.0
    assert (dl["published"] == "78 ± 8 % (62-90 %)").all() and (summ["scale"] == "demo scale").all()
    asp = summ[summ["quantity"].str.contains("fraction of slice sides")].set_index("series")
    assert asp.loc["prediction", "ours"] == 1.0 and (asp["published"] == "< 3 px").all()


S0_CNN_KEYS = S0_KEYS + ["sbr_cnn", "sbr_cnn_error", "sbr_cnn_plot"]


@pytest.fixture(scope="module")
def s0_regressor(tmp_path_factory):
    """A briefly trained SBR regressor on 16-px blob slices and the S0 shards it came from."""
    from test_sbr_regressor import make_s0_shards, train

    root = tmp_path_factory.mktemp("sbr_cnn")
    ds = make_s0_shards(root / "ds", n=(32, 8, 4))
    train(ds, root / "reg", epochs=3)
    return ds, root / "reg" / "best.pt"


def _s0_test_predictions(tmp, ds, *, drop=(), size=H):
    """Prediction files of the test split: prediction = original (cropped to ``size`` px)."""
    from spectsynth.datasets import SliceShard

    index = pd.read_csv(ds / "index.tsv", sep="\t", dtype={"subject": str})
    table = index[index["split"] == "test"].sort_values("shard_row").reset_index(drop=True)
    table.insert(0, "pred_row", np.arange(len(table)))
    table = table.drop(columns=[c for c in table.columns if c.startswith(tuple(drop))])
    imgs = SliceShard(ds / "test.h5").all_images()[:, :, :size, :size].astype(np.float64)
    return _paired_files(tmp, "s0", imgs[:, 1], imgs[:, 1].copy(), table, inp=imgs[:, 0]), table


def test_s0_regression_cnn_reads_prediction_and_original(tmp_path, s0_regressor):
    from spectsynth import metrics as M

    ds, weights = s0_regressor
    files, table = _s0_test_predictions(tmp_path, ds)
    out = _outs(tmp_path / "out", S0_CNN_KEYS, {"bland_altman_plot", "examples", "sbr_cnn_plot"})
    res = S0E.evaluate_s0("s0", files, {"epochs": 2}, out, cfg=CFG, scale_label="demo scale", regressor=weights,
                        device="cpu")
    cnn = pd.read_csv(out["sbr_cnn"], sep="\t", dtype={"subject": str})
    assert len(cnn) == 4 * len(table) and set(cnn["region"]) == set(CNN_REGIONS)
    # the prediction is the original here, so the CNN reads both alike
    np.testing.assert_allclose(cnn["cnn_prediction"], cnn["cnn_original"])
    known = table.set_index("pred_row")
    for _, r in cnn.iterrows():
        row = known.loc[int(r["case"].split("#")[1])]
        assert r["known"] == pytest.approx(row[f"orig_sbr_{r['region']}"])
        assert r["known_input"] == pytest.approx(row[f"sbr_{r['region']}"])
    np.testing.assert_allclose(cnn["error_prediction"], cnn["cnn_prediction"] - cnn["known"])
    np.testing.assert_allclose(cnn["error_input"], cnn["cnn_input"] - cnn["known"])     # the damaged-input baseline
    assert cnn["abs_error_input"].mean() > cnn["abs_error_prediction"].mean()
    np.testing.assert_allclose(cnn["abs_error_original"], np.abs(cnn["cnn_original"] - cnn["known"]))
    frac = pd.read_csv(out["sbr_cnn_error"], sep="\t")
    assert len(frac) == 3 * 5 * len(CFG["sbr_error_thresholds"])       # 3 series x (all + 4 regions) x thresholds
    for series in ("prediction", "input", "original"):
        got = frac[(frac["series"] == series) & (frac["region"] == "all")].reset_index(drop=True)
        want = M.sbr_error_fractions(cnn[f"cnn_{series}"], cnn["known"], thresholds=CFG["sbr_error_thresholds"])
        np.testing.assert_allclose(got["fraction"], want["fraction"])
        assert (got["n"] == len(cnn)).all()
    assert (tmp_path / "out" / "sbr_cnn_plot.png").stat().st_size > 5000
    assert {"asp", "dice", "sbr", "sbr_cnn", "sbr_cnn_error"} <= set(res)
    # slice-level outputs: 2 sides x (prediction + damaged-input baseline)
    assert pd.read_csv(out["sbr"], sep="\t").shape[0] == 2 * 2 * len(table)


def test_s0_regression_cnn_bad_input_names_the_experiment(tmp_path, s0_regressor):
    ds, weights = s0_regressor
    out = _outs(tmp_path / "out", S0_CNN_KEYS, {"bland_altman_plot", "examples", "sbr_cnn_plot"})
    files, _ = _s0_test_predictions(tmp_path / "a", ds, drop=("orig_sbr_",))
    with pytest.raises(EvaluationError, match=r"experiment s0: .*known-SBR column.*orig_sbr_caudate_L"):
        S0E.evaluate_s0("s0", files, {"epochs": 2}, out, cfg=CFG, scale_label="demo scale", regressor=weights)
    files, _ = _s0_test_predictions(tmp_path / "b", ds, size=12)
    with pytest.raises(EvaluationError, match=r"experiment s0: the SBR regressor reads slices of shape \(N, 1, 16, 16\)"):
        S0E.evaluate_s0("s0", files, {"epochs": 2}, out, cfg=CFG, scale_label="demo scale", regressor=weights)
    assert not any((tmp_path / "out").glob("*"))                      # checked before anything is written


def test_study_experiments_and_labels():
    exps = {"a": {"study": "S2"}, "b": {"study": "S1"}, "c": {"study": "S2"}}
    assert study_experiments(exps, "S2") == ["a", "c"]
    assert study_experiments(exps, "S0") == []
    lab = E.figure_label("demo scale", 3, [{"epochs": 5}])
    assert lab == "simulated data · demo scale · 3 subjects · 5 epochs"
    assert "test scale (tiny) · 1 subject · 1-2 epochs" in E.figure_label(
        "test scale (tiny)", 1, [{"epochs": 1}, {"epochs": 2}])
    stored = np.zeros((4, 6))
    stored[0, 1] = 1  # anterior row, subject's left column
    ras = E.shard_to_ras(stored)
    assert ras.shape == (6, 4) and ras[1, 3] == 1  # x = 1 (left), y = 3 (most anterior)


def test_s3_atlas_roi_means_pool_the_test_slices(tmp_path):
    """ROI means from a label volume on the source grid, cut like the image slices."""
    import nibabel as nib

    from spectsynth.datasets import axial_slice, normalise_gain_bias, resize_slice

    rng = np.random.default_rng(6)
    shape = (12, 16, 10)
    lab = np.zeros(shape, dtype=np.int16)
    lab[:6, :, :] = 1   # subject's left half: region 1
    lab[6:, :, :] = 2   # right half: region 2
    target = np.where(lab == 1, 40.0, 60.0) + rng.standard_normal(shape)
    inp = 0.5 * target + 5.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for name, vol in (("labels", lab), ("target", target)):
        nib.save(nib.Nifti1Image(vol, affine), tmp_path / f"{name}.nii.gz")
    zs, rows, t_sl, i_sl = [3, 6], [], [], []
    for subject in ("01", "02", "03"):
        for z in zs:
            ts = resize_slice(axial_slice(target, z), 16)
            ins = resize_slice(axial_slice(inp, z), 16)
            gt, bt = normalise_gain_bias(ts, "max_pm1")
            gi, bi = normalise_gain_bias(ins, "max_pm1")
            t_sl.append(ts * gt + bt)
            i_sl.append(ins * gi + bi)
            rows.append({"subject": subject, "slice_index": z, "source": str(tmp_path / "target.nii.gz"),
                         "gain_spect_cbf": gi, "bias_spect_cbf": bi, "gain_pet_cbf": gt, "bias_pet_cbf": bt})
    t_arr, i_arr = np.stack(t_sl), np.stack(i_sl)
    pred = t_arr + 0.01 * rng.standard_normal(t_arr.shape)
    files = _paired_files(tmp_path, "s3", t_arr, pred, pd.DataFrame(rows), inp=i_arr)
    spec = S3_SPEC
    out = _outs(tmp_path / "out", S3_KEYS, {"scatter"})
    train, _ = _s3_train(tmp_path, rng)
    labels = {s: str(tmp_path / "labels.nii.gz") for s in ("01", "02", "03")}
    res = S3E.evaluate_s3("s3", files, spec, out, cfg=CFG, scale_label="demo scale", labels=labels,
                        label_names={1: "left", 2: "right"}, train=train)
    rois = res["roi_means"]
    assert len(rois) == 3 * 2
    left = rois[rois.region == "left"]
    ref_left = np.mean(np.concatenate([target[:6, :, z].ravel() for z in zs]))
    np.testing.assert_allclose(left["target"], ref_left, rtol=1e-3)
    np.testing.assert_allclose(left["input"], 0.5 * ref_left + 5.0, rtol=1e-3)
    assert (left["n_pixels"] == 6 * 16 * 2).all()
    reg = pd.read_csv(out["regression"], sep="\t")
    roi_reg = reg[(reg["basis"] == "roi") & (reg["label"] == "input vs target")]
    ref = sps.linregress(rois["target"], rois["input"])
    assert roi_reg["slope"].iat[0] == pytest.approx(ref.slope, rel=1e-6)
    assert roi_reg["n"].iat[0] == 6
    # a label volume on another grid is refused, naming the experiment and subject
    nib.save(nib.Nifti1Image(lab, np.diag([1.0, 2.0, 2.0, 1.0])), tmp_path / "other.nii.gz")
    with pytest.raises(EvaluationError, match="experiment s3: subject 01: the affine of the atlas labels"):
        S3E.evaluate_s3("s3", files, spec, out, cfg=CFG, scale_label="demo scale", train=train,
                      labels={s: str(tmp_path / "other.nii.gz") for s in ("01", "02", "03")})
