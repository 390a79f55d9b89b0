"""S3's baselines, scale-free ROI values, subject-level regression statistics and verdict rows."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from test_evaluate import _s3_study

from spectsynth import verdicts as V
from spectsynth.errors import EvaluationError
from spectsynth.studies.s3 import evaluate as S3E


def _good(t, i, table):
    return t + 0.02 * np.random.default_rng(0).standard_normal(t.shape)


# ------------------------------------------------------------------ the two null models
def test_input_free_null_ignores_the_test_inputs_scale(tmp_path):
    """Only the test input's physical scale changes: the training-scale null stays put, the
    input-scale null (and the prediction) follow the input (the check can fail)."""
    a = _s3_study(tmp_path / "a", _good)
    b = _s3_study(tmp_path / "b", _good, input_gain_factor=0.5)
    ra, rb = a["roi_means"], b["roi_means"]
    np.testing.assert_allclose(ra["null_train_scale"], rb["null_train_scale"], rtol=1e-12)
    np.testing.assert_allclose(a["slice_metrics"]["mean_null_train_scale"],
                               b["slice_metrics"]["mean_null_train_scale"], rtol=1e-12)
    assert not np.allclose(ra["null_input_scale"], rb["null_input_scale"], rtol=1e-3)
    assert not np.allclose(ra["prediction"], rb["prediction"], rtol=1e-3)
    # the target is untouched by the input's constants
    np.testing.assert_allclose(ra["target"], rb["target"], rtol=1e-12)
    # the evaluation's regression bases and its verdict rows (one per published finding)
    assert set(a["regression"]["basis"]) == {"roi", "roi_scale_free", "slice"}
    assert (a["regression"]["n_subjects"] == 5).all()
    ver = a["verdicts"]
    assert len(ver) == 4 and set(ver["verdict"]) <= set(V.VERDICTS) and (ver["n"] == 5).all()
    assert (ver["study"] == "S3").all() and ver["n_counts"].str.startswith("test subjects").all()


def test_training_mean_physical_undoes_each_slices_constants():
    raw = np.stack([np.full((4, 4), 10.0), np.full((4, 4), 30.0), np.zeros((4, 4))])
    gain = np.array([2.0 / 10, 2.0 / 30, 0.0])       # max_pm1; the blank slice has gain 0
    norm = raw * gain[:, None, None] - 1.0
    out = S3E.training_mean_physical(norm, gain, np.full(3, -1.0))
    np.testing.assert_allclose(out, 20.0)            # blank slice left out
    with pytest.raises(EvaluationError):
        S3E.training_mean_physical(norm[2:], gain[2:], np.full(1, -1.0))


# ------------------------------------------------------------------ scale-free ROI values
def test_scale_free_roi_values_divide_by_the_whole_brain_mean(tmp_path):
    lab = np.zeros((8, 8, 3), dtype=np.int16)
    lab[:4, 1:7, :] = 1
    lab[4:, 1:7, :] = 2
    nib.save(nib.Nifti1Image(lab, np.eye(4)), tmp_path / "lab.nii.gz")
    table = pd.DataFrame({"subject": ["01", "01"], "slice_index": [0, 2]})
    ls = [S3E.slice_labels(lab, z, 8) for z in (0, 2)]
    rng = np.random.default_rng(1)
    img = rng.uniform(20, 60, size=(2, 8, 8))
    raw = {"a": img, "b": 3.0 * img}                 # b: a with another global scale
    rois = S3E.s3_roi_means("x", raw, table, {"01": str(tmp_path / "lab.nii.gz")}, {1: "one", 2: "two"})
    brain = np.concatenate([img[i][ls[i] > 0] for i in range(2)]).mean()
    one = np.concatenate([img[i][ls[i] == 1] for i in range(2)]).mean()
    r = rois.set_index("region")
    assert r.loc["one", "a"] == pytest.approx(one)
    assert r.loc["one", "a_scale_free"] == pytest.approx(one / brain)
    assert r.loc["one", "b"] == pytest.approx(3 * one)
    np.testing.assert_allclose(r["a_scale_free"], r["b_scale_free"])   # the global scale cancels
    assert (r["n_pixels_brain"] == sum(int((x > 0).sum()) for x in ls)).all()


# ------------------------------------------------------------------ subject-level statistics
def _clustered(k=6, per=4, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"s{i}" for i in range(k)], per)
    level = np.repeat(rng.normal(0, 5, k), per)
    x = 40 + level + rng.normal(0, 3, k * per)
    y = 5 + 0.7 * x + np.repeat(rng.normal(0, 2, k), per) + rng.normal(0, 1, k * per)
    return x, y, g


def test_subject_bootstrap_matches_a_resampling_loop():
    x, y, g = _clustered()
    ci = S3E.subject_bootstrap(x, y, g, n_boot=300, seed=4)
    ids = np.unique(g)
    draws = np.random.default_rng(4).integers(0, ids.size, size=(300, ids.size))
    slopes, rs = [], []
    for d in draws:
        idx = np.concatenate([np.flatnonzero(g == ids[j]) for j in d])
        res = sps.linregress(x[idx], y[idx])
        slopes.append(res.slope)
        rs.append(res.rvalue)
    assert ci["slope"] == pytest.approx(tuple(np.percentile(slopes, [2.5, 97.5])), rel=1e-9)
    assert ci["r"] == pytest.approx(tuple(np.percentile(rs, [2.5, 97.5])), rel=1e-9)


def test_repeating_points_does_not_shrink_the_subject_interval():
    """The patient is the unit: each subject's ROIs counted twice leave the interval as it is,
    whereas an interval treating points as independent narrows."""
    x, y, g = _clustered()
    once = S3E.subject_bootstrap(x, y, g, n_boot=500)
    twice = S3E.subject_bootstrap(np.tile(x, 2), np.tile(y, 2), np.tile(g, 2), n_boot=500)
    assert twice["slope"] == pytest.approx(once["slope"], rel=1e-9)
    naive = [S3E.S.linear_regression(xx, yy, label="t").details for xx, yy in ((x, y), (np.tile(x, 2), np.tile(y, 2)))]
    assert naive[1]["slope_ci_high"] - naive[1]["slope_ci_low"] < naive[0]["slope_ci_high"] - naive[0]["slope_ci_low"]
    with pytest.raises(EvaluationError, match="at least 3"):
        S3E.subject_bootstrap(x[:8], y[:8], g[:8])


def test_regression_row_counts_points_and_subjects():
    x, y, g = _clustered(k=5, per=6)
    notes: list = []
    row = S3E.s3_regression(x, y, g, label="input vs target", unit="ROIs", note_list=notes)
    assert row["n"] == 30 and row["n_subjects"] == 5
    assert row["n_counts"].startswith("30 ROIs of 5 test subjects")
    assert row["slope_ci_low"] < row["slope"] < row["slope_ci_high"]
    assert 0 <= row["p"] < 0.05 and "subject" in row["p_method"]
    assert not notes
    # two subjects: the line and the test, but no interval (noted)
    keep = np.isin(g, ["s0", "s1"])
    row2 = S3E.s3_regression(x[keep], y[keep], g[keep], label="t", unit="ROIs", note_list=notes)
    assert row2["slope_ci_low"] == "" and row2["ci_method"].startswith("not computed")
    assert len(notes) == 1 and "intervals" in notes[0]["what"]


def test_mixed_slope_matches_statsmodels():
    import statsmodels.formula.api as smf

    x, y, g = _clustered(k=8, per=5, seed=3)
    slope, se, p, method = S3E.mixed_slope(x, y, g)
    ref = smf.mixedlm("y ~ x", pd.DataFrame({"x": x, "y": y, "g": g}), groups=g).fit(reml=True)
    if "mixed model" in method:
        assert slope == pytest.approx(ref.params["x"]) and p == pytest.approx(ref.pvalues["x"])
    else:
        assert "clustered by subject" in method
    with pytest.raises(EvaluationError):
        S3E.mixed_slope(x[:5], y[:5], g[:5])


# ------------------------------------------------------------------ verdict rows
def test_interval_verdict_branches():
    pub = {"r": 0.77, "slope": 0.63}
    ok = {"r": (0.6, 0.9), "slope": (0.5, 0.8)}
    assert V.interval_verdict(published=pub, intervals=ok)[0] == "reproduced"
    v, why = V.interval_verdict(published=pub, intervals={"r": (0.85, 0.95), "slope": (0.5, 0.8)})
    assert v == "not reproduced" and "above" in why
    assert V.interval_verdict(published=pub, intervals={"r": (0.1, 0.5), "slope": (0.5, 0.8)})[0] == "not reproduced"
    assert V.interval_verdict(published=pub, intervals=ok, baseline_intervals=ok)[0] == "not testable"
    assert V.interval_verdict(published=pub, intervals=ok,
                              baseline_intervals={"r": (0.0, 0.3), "slope": (0.5, 0.8)})[0] == "reproduced"
    assert V.interval_verdict(published=pub, intervals={"r": None, "slope": (0.5, 0.8)})[0] == "not testable"
    assert V.interval_verdict(published=pub, intervals=ok, not_computed="no data")[0] == "not testable"


def _reg_table(r_ci, slope_ci, null_r_ci=(0.0, 0.2), null_slope_ci=(0.0, 0.2)):
    rows = []
    for label in ("input vs target", "prediction vs target", "prediction vs input"):
        rows.append({"basis": "roi", "label": label, "statistic": float(np.mean(r_ci)), "n": 24, "n_subjects": 4,
                     "equation": "y = 1 + 0.7x", "r_ci_low": r_ci[0], "r_ci_high": r_ci[1],
                     "slope_ci_low": slope_ci[0], "slope_ci_high": slope_ci[1], "ci_method": "bootstrap",
                     "p": 0.001, "p_method": "mixed"})
    for label in ("null (training scale) vs target", "null (training scale) vs input"):
        rows.append({"basis": "roi", "label": label, "statistic": float(np.mean(null_r_ci)), "n": 24,
                     "n_subjects": 4, "equation": "y = 1 + 0.1x", "r_ci_low": null_r_ci[0],
                     "r_ci_high": null_r_ci[1], "slope_ci_low": null_slope_ci[0], "slope_ci_high": null_slope_ci[1],
                     "ci_method": "bootstrap", "p": 0.5, "p_method": "mixed"})
    return pd.DataFrame(rows)


def test_regression_verdict_rows():
    rows = S3E.s3_regression_verdicts(_reg_table((0.5, 0.95), (0.55, 0.95)))
    assert [r["verdict"] for r in rows] == ["reproduced"] * 3
    assert all(r["n"] == 4 and "24 ROIs" in r["n_counts"] for r in rows)
    assert all(r["baseline_name"].startswith("null (training scale)") for r in rows)
    assert list(V.frame(rows).columns) == V.COLUMNS
    # our r interval above every published r (0.77, 0.78, 0.86)
    rows = S3E.s3_regression_verdicts(_reg_table((0.9, 0.99), (0.55, 0.95)))
    assert [r["verdict"] for r in rows] == ["not reproduced"] * 3
    # the null agrees with the paper as well: not testable; in r alone: still reproduced
    rows = S3E.s3_regression_verdicts(_reg_table((0.5, 0.95), (0.55, 0.95), null_r_ci=(0.5, 0.95),
                                                 null_slope_ci=(0.5, 0.95)))
    assert [r["verdict"] for r in rows] == ["not testable"] * 3
    rows = S3E.s3_regression_verdicts(_reg_table((0.5, 0.95), (0.55, 0.95), null_r_ci=(0.5, 0.95)))
    assert [r["verdict"] for r in rows] == ["reproduced"] * 3
    # no interval (too few subjects): not testable
    t = _reg_table((0.5, 0.95), (0.55, 0.95)).assign(r_ci_low="", r_ci_high="")
    assert {r["verdict"] for r in S3E.s3_regression_verdicts(t)} == {"not testable"}
    assert {r["verdict"] for r in S3E.s3_regression_verdicts(t.iloc[:0])} == {"not testable"}


def _ssim_slices(gain, *, brain=True, k=6, per=5, seed=0):
    rng = np.random.default_rng(seed)
    subj = np.repeat([f"s{i}" for i in range(k)], per)
    base = np.repeat(rng.uniform(0.7, 0.8, k), per) + rng.normal(0, 0.01, k * per)
    d = pd.DataFrame({"subject": subj, "ssim_input_vs_target": base,
                      "ssim_prediction_vs_target": base + gain + rng.normal(0, 0.01, k * per),
                      "ssim_null_vs_target": base - 0.2})
    if brain:
        for k_ in ("input", "prediction", "null"):
            d[f"ssim_brain_{k_}_vs_target"] = d[f"ssim_{k_}_vs_target"] - 0.1
    return d


def test_ssim_verdict_tests_subject_means_of_the_in_brain_ssim():
    d = _ssim_slices(0.07)
    row = S3E.s3_ssim_verdict(d, alpha=0.01)
    assert row["verdict"] == "reproduced" and row["n"] == 6 and row["n_counts"].startswith("test subjects")
    subj = d.groupby("subject").mean(numeric_only=True)
    ref = sps.ttest_rel(subj["ssim_brain_prediction_vs_target"], subj["ssim_brain_input_vs_target"])
    assert row["p"] == pytest.approx(ref.pvalue)
    assert row["ours"] == pytest.approx(subj["ssim_brain_prediction_vs_target"].mean())
    assert "in-brain" in row["measure"] and "ssim mean" in row["reason"]    # both SSIMs reported
    assert S3E.s3_ssim_verdict(_ssim_slices(0.07, brain=False), alpha=0.01)["measure"].startswith("whole-slice")
    assert S3E.s3_ssim_verdict(_ssim_slices(-0.07), alpha=0.01)["verdict"] == "reversed"
    assert S3E.s3_ssim_verdict(_ssim_slices(0.07, k=1), alpha=0.01)["verdict"] == "not testable"


def test_one_test_subject_leaves_every_verdict_not_testable(tmp_path):
    res = _s3_study(tmp_path, _good, n_test=1)
    assert set(res["verdicts"]["verdict"]) == {"not testable"}
    notes = pd.read_csv(tmp_path / "out" / "not_computed.tsv", sep="\t")
    assert notes["what"].str.contains("paired t-tests against the baselines").any()
