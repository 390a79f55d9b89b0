"""Each statistic against a direct scipy/statsmodels call and a hand-computed case; bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from spectsynth import stats as S
from spectsynth.errors import EvaluationError, context

EXP = "s2-grid"
RNG = np.random.default_rng(42)


# ---------------------------------------------------------------------- paired t
def test_paired_t_matches_scipy_and_uses_published_threshold():
    a = RNG.normal(0.87, 0.05, 40)
    b = a - 0.01 + RNG.normal(0, 0.02, 40)
    rec = S.paired_t_test(a, b, label="native vs template, SSIM",
                          names=("native", "template"))
    ref = sps.ttest_rel(a, b)
    assert rec.statistic == pytest.approx(ref.statistic)
    assert rec.p == pytest.approx(ref.pvalue)
    assert rec.n == 40 and rec.df == "39" and rec.alpha == 0.01
    assert rec.significant == (ref.pvalue < 0.01)
    assert rec.details["mean_difference"] == pytest.approx((a - b).mean())
    row = rec.as_dict()
    assert row["mean_native"] == pytest.approx(a.mean())
    assert "n=40" in row["summary"] and "paired t-test" in row["summary"]


def test_paired_t_hand_computed():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3, df 2
    rec = S.paired_t_test([2, 4, 6], [1, 2, 3], label="hand")
    assert rec.statistic == pytest.approx(2 * math.sqrt(3))
    assert rec.p == pytest.approx(2 * sps.t.sf(2 * math.sqrt(3), 2))


def test_paired_t_bad_input_messages():
    with pytest.raises(EvaluationError, match="^MRI vs PET: a has 1 value; this statistic needs at least 2"):
        S.paired_t_test([0.5], [0.4], label="MRI vs PET")
    with pytest.raises(EvaluationError, match=f"^experiment {EXP}: MRI vs PET: a has 1 value; this statistic "
                                              "needs at least 2"):
        with context(experiment=EXP):
            S.paired_t_test([0.5], [0.4], label="MRI vs PET")
    with pytest.raises(EvaluationError, match="differ in length \\(3 vs 2\\)"):
        S.paired_t_test([1, 2, 3], [1, 2], label="x")
    with pytest.raises(EvaluationError, match="paired differences are constant"):
        S.paired_t_test([1, 2, 3], [0, 1, 2], label="x")
    with pytest.raises(EvaluationError, match="NaN or Inf"):
        S.paired_t_test([1, np.nan, 3], [0, 1, 2], label="x")


def test_corrections_hand_computed_and_match_statsmodels():
    p = [0.01, 0.04, 0.03]
    _, holm = S.correct_pvalues(p, method="holm", alpha=0.05)
    _, bh = S.correct_pvalues(p, method="fdr_bh", alpha=0.05)
    assert holm.tolist() == pytest.approx([0.03, 0.06, 0.06])   # 3p(1), max(2p(2), .), p(3)
    assert bh.tolist() == pytest.approx([0.03, 0.04, 0.04])
    with pytest.raises(EvaluationError, match="unknown correction 'sidak'"):
        S.correct_pvalues(p, method="sidak", alpha=0.05)


def test_paired_t_family_has_uncorrected_and_corrected_columns():
    base = RNG.normal(0.85, 0.05, 30)
    comps = [{"label": f"cmp{i}", "a": base + d + RNG.normal(0, 0.01, 30), "b": base}
             for i, d in enumerate((0.0, 0.005, 0.02))]
    tab = S.paired_t_tests(comps, alpha=0.01)
    raw = [sps.ttest_rel(c["a"], c["b"]).pvalue for c in comps]
    assert tab["p"].to_numpy() == pytest.approx(raw)
    assert tab["p_holm"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    assert tab["p_fdr_bh"].to_numpy() == pytest.approx(multipletests(raw, method="fdr_bh")[1])
    assert tab["significant"].tolist() == [p < 0.01 for p in raw]
    assert tab["significant_holm"].tolist() == list(multipletests(raw, alpha=0.01, method="holm")[0])
    assert not tab[["p", "p_holm", "p_fdr_bh", "statistic"]].isna().any().any()


# ------------------------------------------------------------------------- ANOVA
def test_anova_hand_computed_and_matches_scipy_and_statsmodels():
    groups = {"real": [1.0, 2.0, 3.0], "A": [4.0, 5.0, 6.0]}
    rec = S.one_way_anova(groups, label="MC, normal")
    # SSB = 3(2-3.5)^2 + 3(5-3.5)^2 = 13.5, SSW = 4, F = 13.5 / (4 / 4)
    assert rec.statistic == pytest.approx(13.5)
    assert rec.df == "1, 4" and rec.n == 6 and rec.alpha == 0.05
    g3 = {"real": RNG.normal(1, 0.2, 12), "A": RNG.normal(1.05, 0.2, 10), "B": RNG.normal(1.4, 0.2, 11)}
    rec = S.one_way_anova(g3, label="MC")
    ref = sps.f_oneway(*g3.values())
    assert rec.statistic == pytest.approx(ref.statistic) and rec.p == pytest.approx(ref.pvalue)
    tab = S.anova_table(g3, label="MC")
    assert tab.loc[0, "F"] == pytest.approx(ref.statistic)
    assert tab.loc[0, "p"] == pytest.approx(ref.pvalue)
    assert tab.loc[0, "df"] == 2 and tab.loc[0, "residual_df"] == 30
    assert not tab.isna().any().any()


def test_anova_bad_input_messages():
    with pytest.raises(EvaluationError, match="experiment s1: group 'B' has 0 values; this statistic needs "
                                              "at least 1"):
        with context(experiment="s1"):
            S.one_way_anova({"real": [1, 2], "A": [2, 3], "B": []}, label="LR")
    with pytest.raises(EvaluationError, match="every group is constant"):
        S.one_way_anova({"real": [1, 1], "A": [2, 2]}, label="LR")
    with pytest.raises(EvaluationError, match="1 group given"):
        S.one_way_anova({"real": [1, 2]}, label="LR")
    with pytest.raises(EvaluationError, match="2 values in 2 groups"):
        S.one_way_anova({"real": [1], "A": [2]}, label="LR")


def test_tukey_matches_scipy():
    g = {"real": RNG.normal(1, 0.2, 12), "A": RNG.normal(1.05, 0.2, 12), "B": RNG.normal(1.4, 0.2, 12)}
    tab = S.tukey_hsd(g, label="MC")
    ref = sps.tukey_hsd(*g.values())
    names = list(g)
    for _, row in tab.iterrows():
        i, j = names.index(row["group1"]), names.index(row["group2"])
        assert row["p_corrected"] == pytest.approx(ref.pvalue[i, j], abs=2e-3)
        assert row["mean_difference"] == pytest.approx(g[row["group2"]].mean() - g[row["group1"]].mean())
    assert len(tab) == 3 and set(tab["correction"]) == {"Tukey HSD"}
    only_real = S.posthoc(g, label="MC", method="tukey", reference="real")
    assert len(only_real) == 2


def test_pairwise_t_holm_matches_scipy():
    g = {"real": RNG.normal(1, 0.2, 12), "A": RNG.normal(1.05, 0.2, 10), "B": RNG.normal(1.4, 0.2, 11)}
    tab = S.posthoc(g, label="MC", method="pairwise_t_holm", reference="real")
    raw = [sps.ttest_ind(g["real"], g[k], equal_var=False).pvalue for k in ("A", "B")]
    assert tab["group2"].tolist() == ["A", "B"]
    assert tab["p"].to_numpy() == pytest.approx(raw)
    assert tab["p_corrected"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    with pytest.raises(EvaluationError, match="reference group 'truth'"):
        S.pairwise_t(g, label="MC", reference="truth")


# -------------------------------------------------------------------- regression
def test_linear_regression_hand_computed_and_matches_scipy():
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    rec = S.linear_regression(x, y, label="SPECT vs PET")
    d = rec.details
    # Sxx = 10, Sxy = 6, Syy = 6: slope 0.6, intercept 4 - 0.6*3 = 2.2, r = 6 / sqrt(60)
    assert d["slope"] == pytest.approx(0.6) and d["intercept"] == pytest.approx(2.2)
    assert rec.statistic == pytest.approx(6 / math.sqrt(60))
    ref = sps.linregress(x, y)
    tcrit = sps.t.ppf(0.975, 3)
    assert d["slope_ci_low"] == pytest.approx(ref.slope - tcrit * ref.stderr)
    assert d["intercept_ci_high"] == pytest.approx(ref.intercept + tcrit * ref.intercept_stderr)
    pr = sps.pearsonr(x, y)
    assert rec.p == pytest.approx(pr.pvalue)
    ci = pr.confidence_interval(0.95)
    assert (d["r_ci_low"], d["r_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert d["equation"] == "y = 2.20 + 0.60x"
    p = S.pearson(x, y, label="r")
    assert p.statistic == pytest.approx(pr.statistic)


def test_regression_bad_input_messages():
    with pytest.raises(EvaluationError, match="experiment s3: P2P vs PET: x is constant"):
        with context(experiment="s3"):
            S.linear_regression([1, 1, 1], [1, 2, 3], label="P2P vs PET")
    with pytest.raises(EvaluationError, match="x has 2 values; this statistic needs at least 3"):
        S.linear_regression([1, 2], [1, 2], label="P2P vs PET")
    with pytest.raises(EvaluationError, match="x has 3 values but y has 4"):
        S.pearson([1, 2, 3], [1, 2, 3, 4], label="r")


# ----------------------------------------------------------------- Bland-Altman
def test_bland_altman_hand_computed():
    m, r = [1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 2.5, 4.5]
    rec = S.bland_altman(m, r, label="SBR")
    d = rec.details
    sd = math.sqrt(0.6875 / 3)  # differences 0.5, 0, 0.5, -0.5
    assert d["bias"] == pytest.approx(0.125)
    assert d["sd_difference"] == pytest.approx(sd)
    assert d["loa_low"] == pytest.approx(0.125 - 1.96 * sd)
    assert d["loa_high"] == pytest.approx(0.125 + 1.96 * sd)
    ref = sps.ttest_1samp(np.subtract(m, r), 0.0)
    assert rec.statistic == pytest.approx(ref.statistic) and rec.p == pytest.approx(ref.pvalue)
    with pytest.raises(EvaluationError, match="experiment s0: SBR: all differences equal 1"):
        with context(experiment="s0"):
            S.bland_altman([2, 3], [1, 2], label="SBR")


# ------------------------------------------------------------------------ tables
def test_summary_table_hand_computed():
    df = pd.DataFrame({"side": ["L", "L", "R", "R"], "dice": [0.7, 0.9, 0.8, 0.8]})
    tab = S.summary_table(df, ["dice"], by=["side"])
    assert list(tab.columns) == ["side", "value", "n", "mean", "sd", "min", "max", "mean_sd"]
    left = tab[tab.side == "L"].iloc[0]
    assert left["mean"] == pytest.approx(0.8) and left["sd"] == pytest.approx(math.sqrt(0.02))
    assert left["min"] == 0.7 and left["max"] == 0.9 and left["n"] == 2
    assert left["mean_sd"] == "0.80 ± 0.14"
    with pytest.raises(EvaluationError, match="experiment s0: dice \\(side=R\\) has 1 value"):
        with context(experiment="s0"):
            S.summary_table(df.iloc[:3], ["dice"], by=["side"])
    with pytest.raises(EvaluationError, match="mean 0; the coefficient of variation"):
        S.summary_table(pd.DataFrame({"d": [-1.0, 1.0]}), ["d"], cv=True)
    with pytest.raises(EvaluationError, match="is empty"):
        S.summary_table(df.iloc[:0], ["dice"])


def test_table4_shape_and_cells():
    rows = []
    for space in ("native", "template"):
        for inp, vals in (("MRI", [1.0, 3.0]), ("PET", [2.0, 2.2])):
            for v in vals:
                rows.append({"space": space, "loss": "l1", "input": inp, "rmse": v, "ssim": v / 4,
                             "psnr": 10 * v})
    tab = S.table4(pd.DataFrame(rows))
    assert list(tab.columns) == ["space", "loss", "metric", "MRI", "PET"]
    assert tab["metric"].tolist() == ["rmse", "ssim", "psnr"] * 2
    # [1, 3]: mean 2, sd sqrt(2), CV 70.71 %
    assert tab.iloc[0]["MRI"] == "2.00 (70.71%)"
    with pytest.raises(EvaluationError, match="grid is incomplete"):
        S.table4(pd.DataFrame(rows[:-2]))


def test_significance_stars_and_record_frame():
    assert [S.significance_stars(p) for p in (0.2, 0.03, 0.005, 5e-4, 5e-5)] == \
        ["ns", "*", "**", "***", "****"]
    rec = S.one_way_anova({"a": [1, 2, 3], "b": [2, 3, 5]}, label="MC")
    frame = S.records_frame([rec])
    assert "experiment" not in frame.columns   # the caller adds it
    for col in ("test", "label", "n", "statistic", "p", "correction", "p_corrected",
                "significant", "summary"):
        assert col in frame.columns
    assert frame.loc[0, "correction"] == "none" and frame.loc[0, "p_corrected"] == frame.loc[0, "p"]
