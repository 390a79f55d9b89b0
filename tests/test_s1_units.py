"""S1 with the subject as the unit: mixed models, Holm across levels, the real-vs-real reference
and the verdict rows, on tiny synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestIndPower

from spectsynth import stats as S
from spectsynth import verdicts as V
from spectsynth.errors import EvaluationError
from spectsynth.studies import s1 as s1_study
from spectsynth.studies.s1 import evaluate as S1E

CFG = {"anova_alpha": 0.05, "anova_reference_f": 0.25, "anova_power": 0.8}


def _repeated(rng, *, n_subjects=6, per_subject=6, n_generated=36, shift=0.6, noise=0.02):
    """Real subjects each with near-identical repeated images (as S1's normal scans, Poisson noise
    only), generated images independent, shifted by ``shift`` (subject SD 1)."""
    rows = []
    for s in range(n_subjects):
        mu = rng.normal(0, 1)
        for k in range(per_subject):
            rows.append({"source": "real", "subject": f"s{s}", "image": s * per_subject + k,
                         "level": ("BG", "COR")[k % 2], "pattern": "normal",
                         "mean_counts": mu + noise * rng.normal(), "lr_ratio": 1 + 0.1 * mu + noise * rng.normal()})
    for i in range(n_generated):
        mu = rng.normal(shift, 1)
        rows.append({"source": "A", "subject": np.nan, "image": i, "level": ("BG", "COR")[i % 2],
                     "pattern": "normal", "mean_counts": mu, "lr_ratio": 1 + 0.1 * mu})
    return pd.DataFrame(rows)


def test_repeated_images_of_a_subject_do_not_inflate_significance():
    larger = 0
    for seed in range(5):
        d = _repeated(np.random.default_rng(seed))
        d["unit"] = S1E.s1_units(d)
        naive = sps.ttest_ind(d.loc[d.source == "real", "mean_counts"], d.loc[d.source == "A", "mean_counts"]).pvalue
        mixed = S.mixed_model_contrasts(d, value="mean_counts", group="source", unit="unit", reference="real",
                                        covariates=["level"], label="mc").iloc[0]
        assert mixed["units1"] == 6 and mixed["n1"] == 36 and mixed["units2"] == 36
        assert mixed["method"].startswith("linear mixed model")
        # the subject-means test is the honest per-unit test; the mixed model sits near it
        means = d[d.source == "real"].groupby("subject")["mean_counts"].mean()
        by_subject = sps.ttest_ind(means, d.loc[d.source == "A", "mean_counts"]).pvalue
        assert mixed["p"] > naive
        larger += by_subject > naive
        assert mixed["estimate"] == pytest.approx(
            d.loc[d.source == "A", "mean_counts"].mean() - means.mean(), abs=0.3)
    assert larger == 5


def test_mixed_model_falls_back_to_ols_without_repeats_and_needs_units():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": ["r"] * 8 + ["a"] * 8, "u": [f"u{i}" for i in range(16)],
                      "y": np.r_[rng.normal(0, 1, 8), rng.normal(1, 1, 8)]})
    r = S.mixed_model_contrasts(d, value="y", group="g", unit="u", reference="r", label="y").iloc[0]
    ols = sps.ttest_ind(d.y[d.g == "a"], d.y[d.g == "r"])        # same model, pooled variance, z vs t
    assert r["method"].startswith("OLS") and r["z"] == pytest.approx(ols.statistic)
    d2 = d.assign(u=["one"] * 8 + [f"u{i}" for i in range(8)])
    with pytest.raises(EvaluationError, match="r has 1 unit"):
        S.mixed_model_contrasts(d2, value="y", group="g", unit="u", reference="r", label="y")
    with pytest.raises(EvaluationError, match="at least 9 independent units"):
        S.mixed_model_contrasts(d, value="y", group="g", unit="u", reference="r", label="y", min_units=9)


def test_power_counts_subjects_not_images():
    p = S.two_sample_power(6, 36, effect_d=0.5, alpha=0.05)
    assert p == pytest.approx(TTestIndPower().power(effect_size=0.5, nobs1=6, ratio=6, alpha=0.05))
    assert p < S.two_sample_power(36, 36, effect_d=0.5, alpha=0.05)
    with pytest.raises(EvaluationError):
        S.two_sample_power(1, 36, effect_d=0.5)


def test_holm_across_levels():
    ph = pd.DataFrame({"comparison": "c", "criterion": "k", "value": "mean_counts", "pattern": "normal",
                       "group1": "real", "group2": "A", "level": ["CER", "BG", "COR"],
                       "p_corrected": [0.02, 0.04, 0.5]})
    out = S1E.holm_across_levels(ph, alpha=0.05)
    assert out["p_holm_levels"].tolist() == pytest.approx([0.06, 0.08, 0.5])
    assert not out["significant_holm_levels"].any()          # uncorrected, two levels were "different"


def _mixed_rows(rng, n_subjects, shift_a=0.0, shift_b=2.0):
    rows = []
    for s in range(n_subjects):
        mu = rng.normal(0, 1)
        for k in range(3):
            rows.append({"source": "real", "subject": f"s{s:02d}", "image": 3 * s + k, "level": "COR",
                         "pattern": "normal", "mean_counts": mu + 0.05 * rng.normal(),
                         "lr_ratio": 1 + 0.1 * mu + 0.005 * rng.normal()})
    for src, shift in (("A", shift_a), ("B", shift_b)):
        for i in range(40):
            mu = rng.normal(shift, 1)
            rows.append({"source": src, "subject": np.nan, "image": i, "level": "COR", "pattern": "normal",
                         "mean_counts": mu, "lr_ratio": 1 + 0.1 * mu})
    return pd.DataFrame(rows)


def _run(data, halves_n):
    notes, reasons, ref_reasons = [], {}, {}
    mixed = S1E.s1_mixed_tests(data, ["real", "A", "B"], reference="real", cfg=CFG, notes=notes,
                               comparison=S1E.COMPARISON_GENERATED, criterion="feature_distance", headline=True,
                               reasons=reasons)
    real = data[data.source == "real"].copy()
    subjects = sorted(real.subject.unique())
    half = {s: 1 + (i >= halves_n) for i, s in enumerate(subjects)}
    real["source"] = [S1E.REAL_HALVES[half[s] - 1] for s in real.subject]
    mixed += S1E.s1_mixed_tests(real, list(S1E.REAL_HALVES), reference=S1E.REAL_HALVES[0], cfg=CFG, notes=notes,
                                comparison=S1E.COMPARISON_REAL_HALVES, criterion=S1E.CRITERION_NONE,
                                headline=False, min_units=S1E.MIN_REFERENCE_SUBJECTS, reasons=ref_reasons)
    mixed_t = pd.DataFrame(mixed)
    verdicts = S1E.s1_verdicts(mixed_t, variants=["A", "B"], criterion="feature_distance", alpha=0.05,
                               reference_reasons=ref_reasons, generated_reasons=reasons)
    return mixed_t, verdicts, notes


def test_small_reference_is_not_computed_and_verdicts_say_not_testable():
    data = _mixed_rows(np.random.default_rng(3), n_subjects=8)     # 4 subjects per half
    mixed, verdicts, notes = _run(data, halves_n=4)
    assert (mixed["comparison"] == S1E.COMPARISON_GENERATED).all()
    ref_notes = [n for n in notes if "reference" in n["what"]]
    assert len(ref_notes) == 2 and all("at least 5" in n["reason"] for n in ref_notes)
    normal = verdicts[verdicts["finding"].str.contains("normal")]
    assert (normal["verdict"] == "not testable").all()
    assert normal["reason"].str.contains("real-vs-real reference").all()
    # patterns with no images at all: not testable, with the reason
    uni = verdicts[verdicts["finding"].str.contains("unilateral")]
    assert (uni["verdict"] == "not testable").all() and uni["reason"].str.contains("no real").all()


def test_verdict_rows_with_enough_subjects():
    data = _mixed_rows(np.random.default_rng(4), n_subjects=40, shift_b=3.0)
    mixed, verdicts, notes = _run(data, halves_n=20)
    assert list(verdicts.columns[:len(V.COLUMNS)]) == V.COLUMNS
    assert {"criterion", "claim", "reference_p", "reference_differs"} <= set(verdicts.columns)
    assert len(verdicts) == 2 * 3 * 2                             # measures x patterns x variants
    assert set(verdicts["verdict"]) <= set(V.VERDICTS)
    ref = mixed[mixed.comparison == S1E.COMPARISON_REAL_HALVES]
    assert (ref["units1"] >= 5).all() and (ref["units2"] >= 5).all()
    b = verdicts[verdicts["finding"].str.startswith("B different from real: mean counts, normal")].iloc[0]
    assert b["claim"] == "different" and b["published"] == "P < 0.0001"
    row = mixed[(mixed.comparison == S1E.COMPARISON_GENERATED) & (mixed.group2 == "B")
                & (mixed.value == "mean_counts")].iloc[0]
    assert b["p"] == row["p"] and b["n"] == 40 + 40 and "40 real subjects" in b["n_counts"]
    assert b["power"] == pytest.approx(S.two_sample_power(40, 40, effect_d=0.5, alpha=0.05))
    if not b["reference_differs"]:
        assert b["verdict"] == "reproduced"                       # B shifted by 3 subject SDs
    a = verdicts[verdicts["finding"].str.startswith("A not different from real: mean counts, normal")].iloc[0]
    assert a["claim"] == "equal"
    expect = V.comparison_verdict(claim="equal", estimate=a["ours"], p=a["p"], alpha=0.05, power=a["power"],
                                  reference_differs=bool(a["reference_differs"]))
    assert (a["verdict"], a["reason"]) == expect
    # the published exception: A differs on the L/R ratio of unilateral scans (P = 0.03)
    assert verdicts["finding"].str.startswith("A different from real: L/R ratio, unilateral").any()


def test_verdicts_is_a_declared_output():
    ev = s1_study.STUDY.evaluation
    assert ev["verdicts"].path == "verdicts.tsv" and ev["mixed"].path == "mixed_model.tsv"
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    assert (root / "workflow" / "report" / ev["verdicts"].caption).exists()


def test_evaluate_s1_writes_mixed_models_and_verdicts(tmp_path):
    from test_evaluate import CFG as FULL_CFG
    from test_evaluate import S1_KEYS, _blob, _outs, _s1_generated, _s1_shard

    rng = np.random.default_rng(9)
    subjects = [f"{i:02d}" for i in range(10) for _ in range(4)]      # 10 subjects x 4 slices
    levels = ["BG", "COR"] * 20
    real = _blob(rng, len(subjects)).clip(0)
    shard, index = _s1_shard(tmp_path, real, levels, ["normal"] * len(real), subjects=subjects)
    gens = {"gA": _s1_generated(tmp_path, "gA", _blob(rng, 20).clip(0)),
            "gB": _s1_generated(tmp_path, "gB", _blob(rng, 20).clip(0) * 0.6)}
    specs = {"gA": {"condition": {"variant": "A"}, "epochs": 2}, "gB": {"condition": {"variant": "B"}, "epochs": 2}}
    out = _outs(tmp_path / "out", [*S1_KEYS, "mixed", "verdicts"], {"boxplot", "maps_mean", "maps_sd"})
    S1E.evaluate_s1(gens, specs, shard, index, out, cfg=FULL_CFG, scale_label="demo scale",
                    headline_criterion="feature_distance", seed=2)
    mixed = pd.read_csv(out["mixed"], sep="\t", keep_default_na=False)
    assert set(mixed["comparison"]) == {S1E.COMPARISON_GENERATED, S1E.COMPARISON_REAL_HALVES}
    gen = mixed[mixed["comparison"] == S1E.COMPARISON_GENERATED]
    assert (gen["units1"] == 10).all() and (gen["n1"] == 40).all() and (gen["units2"] == 20).all()
    assert gen["n_counts"].str.contains("10 real subjects").all()
    verdicts = pd.read_csv(out["verdicts"], sep="\t", keep_default_na=False)
    assert len(verdicts) == 12 and set(verdicts["verdict"]) <= set(V.VERDICTS)
    b = verdicts[verdicts["finding"].str.startswith("B different from real: mean counts, normal")].iloc[0]
    assert b["n"] == 30 and b["criterion"] == "feature_distance"
    if b["reference_differs"] == "False":
        assert b["verdict"] == "reproduced"                          # B is 40 % dimmer
    summary = pd.read_csv(out["summary"], sep="\t", keep_default_na=False)
    assert {"pooled_p", "pooled_ours", "n_counts", "min_p_holm_levels"} <= set(summary.columns)
    posthoc = pd.read_csv(out["posthoc"], sep="\t")
    assert {"p_holm_levels", "n_counts"} <= set(posthoc.columns)
