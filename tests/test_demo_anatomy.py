"""Demo cohort anatomy: variation driven by age and sex, and the resections of S2's test subjects."""

from __future__ import annotations

import numpy as np
import pytest

from spectsynth.inputs import demo
from spectsynth.studies import cohort_resected

COARSE = {"n_subjects": 8, "seed": 5, "voxel_mm": [3.0, 3.0, 3.0]}


def _draws(n: int, **over) -> list[tuple[float, str, demo.AnatomyDraw]]:
    p = demo.DemoParams.from_config(dict(COARSE, n_subjects=n, **over))
    out = []
    for i in range(n):
        age, sex = demo.demographics(i, p)
        out.append((age, sex, demo.draw_anatomy(i, p, age, sex, False)))
    return out


def test_icv_spread_and_sex_difference_follow_the_config():
    draws = _draws(400)
    for sex, mean in (("F", 1289.0), ("M", 1469.0)):
        icv = np.array([d.icv_target_ml for _, s, d in draws if s == sex])
        assert abs(np.std(np.log(icv)) - 0.08) < 0.015, sex
        assert abs(np.exp(np.mean(np.log(icv))) / mean - 1) < 0.02, sex
    wide = np.array([d.icv_target_ml for *_, d in _draws(400, icv_sd=0.16)])
    narrow = np.array([d.icv_target_ml for *_, d in draws])
    assert np.std(np.log(wide)) > 1.5 * np.std(np.log(narrow))
    # Across both sexes the ICV varies by about 10 % (SD), as in adult cohorts.
    assert 0.08 < np.std(np.log(narrow)) < 0.13


def test_ventricles_and_sulcal_csf_grow_with_age():
    draws = _draws(300)
    age = np.array([a for a, _, _ in draws])
    vent = np.array([np.log(d.ventricle_factors["L"] * d.ventricle_factors["R"]) / 2 for *_, d in draws])
    slope = np.polyfit(age, vent, 1)[0]
    assert slope == pytest.approx(0.02, abs=0.006)
    factors = np.exp(vent)
    assert np.percentile(factors, 95) / np.percentile(factors, 5) > 2.5  # several-fold across the cohort
    atrophy = np.array([d.atrophy_mm for *_, d in draws])
    assert np.corrcoef(age, atrophy)[0, 1] > 0.5
    stri = np.array([sum(d.local_log["striatum_L"]) for *_, d in draws])
    assert np.polyfit(age, stri, 1)[0] < 0
    # Left and right differ (asymmetry) but stay correlated.
    left = np.log([d.ventricle_factors["L"] for *_, d in draws])
    right = np.log([d.ventricle_factors["R"] for *_, d in draws])
    assert 0 < np.std(left - right) and np.corrcoef(left, right)[0, 1] > 0.7


def test_anatomy_draws_are_reproducible_with_the_seed():
    a = [d.as_dict() for *_, d in _draws(5)]
    b = [d.as_dict() for *_, d in _draws(5)]
    c = [d.as_dict() for *_, d in _draws(5, seed=6)]
    assert a == b and a != c


def test_resected_subjects_are_a_seeded_property_of_the_cohort():
    p = demo.DemoParams.from_config(dict(COARSE, n_subjects=12, n_resected=2))
    chosen = demo.resected_subjects(p)
    assert len(chosen) == 2 and chosen <= set(demo.subject_labels(12))
    assert demo.resected_subjects(p) == chosen                              # deterministic
    other = demo.DemoParams.from_config(dict(COARSE, n_subjects=12, n_resected=2, seed=COARSE.get("seed", 0) + 1))
    assert demo.resected_subjects(other) != chosen                          # drawn from the demo's seed
    assert demo.resected_subjects(demo.DemoParams.from_config(dict(COARSE, n_resected=0))) == set()
    # the planner's light path (no image libraries) agrees with the demo builder, defaults included
    assert cohort_resected({"inputs": {"demo": {"n_resected": 3}}}) == demo.resected_subjects(
        demo.DemoParams.from_config({"n_resected": 3}))
    # no study's split settings enter the choice
    assert cohort_resected({"inputs": {"demo": dict(COARSE, n_subjects=12, n_resected=2)},
                            "datasets": {"s2": {"split": {"seed": 3}}}}) == chosen


def test_resected_subject_has_a_csf_cavity_and_the_truth_says_so():
    p = demo.DemoParams.from_config(COARSE)
    s = demo.make_subject(0, p, resected=True)
    res = s.truth["resection"]
    assert res["resected"] and res["side"] in ("L", "R") and res["lobe"] == "temporal"
    assert s.resection is not None and s.resection.shape == s.image.shape
    vox_ml = float(np.prod(s.image.header.get_zooms()[:3])) / 1000
    assert s.resection.sum() * vox_ml == pytest.approx(res["volume_ml"], rel=0.25)
    assert 8 < res["volume_ml"] < 30
    t1 = np.asarray(s.image.dataobj, dtype=np.float32)
    parts = demo.template_parts()
    # The cavity's T1 signal is CSF-like: far below white matter, near the ventricles' level.
    tpl_wm = float(np.percentile(parts.data[parts.data > 0], 95))
    img_wm = float(np.percentile(t1[t1 > 0], 95))
    inside = t1[s.resection > 0]
    csf_rel = parts.csf_level / tpl_wm
    assert np.median(inside) / img_wm < csf_rel + 0.15
    # The cavity is on its recorded side (the scanner grid's x world coordinate).
    ijk = np.argwhere(s.resection > 0).mean(axis=0)
    x = (s.image.affine @ np.r_[ijk, 1.0])[0]
    centre = (s.image.affine @ np.r_[(np.asarray(s.image.shape) - 1) / 2, 1.0])[0]
    assert (x < centre) == (res["side"] == "L")
    plain = demo.make_subject(0, p)
    assert not plain.truth["resection"]["resected"] and not plain.resection.any()


def test_true_volumes_follow_the_drawn_anatomy():
    base = dict(COARSE, deformation_mm=0.0, ventricle_sd=0.0, ventricle_asymmetry_sd=0.0, atrophy_sd_mm=0.0)
    young = demo.make_subject(1, demo.DemoParams.from_config(dict(base, ventricle_age_slope=0.0)))
    old = demo.make_subject(1, demo.DemoParams.from_config(dict(base, ventricle_age_slope=0.05)))
    vy, vo = young.truth["volumes_ml"], old.truth["volumes_ml"]
    factor = old.truth["anatomy"]["volume_factors"]["ventricle_L"]
    assert factor > 2
    assert vo["ventricles"] / vy["ventricles"] == pytest.approx(factor, rel=0.15)
    assert vo["brain_tissue"] < vy["brain_tissue"]  # the ventricles grew into the brain
    for v, s in ((vy, young), (vo, old)):
        assert v["icv"] == pytest.approx(s.truth["anatomy"]["icv_target_ml"], rel=0.03)


def test_demo_defaults_match_the_schema():
    """inputs.demo in config/schema.yaml documents every DemoParams field with its default."""
    from dataclasses import fields
    from pathlib import Path

    import yaml

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/schema.yaml").read_text())
    props = schema["properties"]["inputs"]["properties"]["demo"]["properties"]
    defaults = demo.DemoParams()
    for f in fields(demo.DemoParams):
        if f.name == "extra":
            continue
        assert f.name in props and "description" in props[f.name], f.name
        value = getattr(defaults, f.name)
        assert props[f.name]["default"] == (list(value) if isinstance(value, tuple) else value), f.name
