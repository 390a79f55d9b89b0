"""The simulator (spectsynth.simulate): calibration to published ranges, physics, truth, files.

Anatomy: the MNI152 phantom at 2 mm (shipped atlases) and, when present, a real IXI subject.
The projection path runs on a tiny grid so that the whole file stays well under 2 minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from spectsynth import quant
from spectsynth.errors import ConfigError, InputDataError
from spectsynth.simulate import (
    DatDegradation,
    dat_design,
    load_anatomy,
    mni_anatomy,
    resolve,
    run_dat,
    run_montage,
    run_perfusion,
    run_pet,
    run_summary,
    simulate_dat,
    simulate_perfusion,
    simulate_pet,
    to_anatomy_grid,
    write_anatomy,
)
from spectsynth.simulate import config as sim_config
from spectsynth.simulate.core import prepare_grid
from spectsynth.simulate.grid import block_sum
from spectsynth.simulate.tracers import DatModel, putamen_retention
from spectsynth.simulate.truth import PUBLISHED_RANGES

REPO = Path(__file__).resolve().parents[1]
IXI = Path(__file__).resolve().parents[2] / "shared/data/ixi-sample"

# Normal targets without between-subject spread, so that single images can be checked
# against the published normal ranges.
FIXED = {"dat": {"normal_sbr_sd": {"caudate": 0.0, "putamen": 0.0}, "normal_asymmetry_sd": 0.0}}
NORMAL = DatDegradation()
PD = DatDegradation(0.5, 0.78, 0.75, "main")
# A tiny projection set-up: 20^3 voxels of 12 mm, 60 views, OSEM 4 x 6; one torch thread, as
# OpenMP threads that wait for a busy shared CPU slow PyTomography down many times over.
TINY = {"physics": "projection", "spect": {"matrix": 20, "voxel_mm": 12.0},
        "projection": {"views": 60, "subsets": 6}}


@pytest.fixture(scope="module")
def anat():
    return mni_anatomy(2.0, subject="phantom")


@pytest.fixture(scope="module")
def cfg():
    return resolve(FIXED)


@pytest.fixture(scope="module")
def prep(anat, cfg):
    return prepare_grid(anat, cfg, "spect")


def _in(value, group, measure):
    lo, hi = PUBLISHED_RANGES[group][measure]
    return lo <= value <= hi


def _check_published(records, *, check_ai=True):
    normal, pd_rec = records[0]["meas"], records[1]["meas"]
    assert _in(normal["sbr_caudate"], "normal", "caudate"), normal
    assert _in(normal["sbr_putamen"], "normal", "putamen"), normal
    assert _in(pd_rec["sbr_caudate"], "PD", "caudate"), pd_rec
    assert _in(pd_rec["sbr_putamen"], "PD", "putamen"), pd_rec
    # Partial-volume loss: the true ratios are higher than the measured ones.
    assert records[0]["true"]["sbr_caudate"] > normal["sbr_caudate"]
    assert records[0]["true"]["sbr_putamen"] > normal["sbr_putamen"]


# --- configuration ------------------------------------------------------------------------
def test_defaults_match_schema_fragment():
    """The simulator's own defaults are exactly the schema's (one set of numbers)."""
    full = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    schema = {**full["properties"]["simulate"], "$defs": full["$defs"]}

    def walk(node, dflt, where):
        assert node.get("additionalProperties") is False, where
        for key, sub in node["properties"].items():
            assert "description" in sub and "default" in sub, f"{where}.{key}"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, dflt[key], f"{where}.{key}")
            else:
                assert sub["default"] == dflt[key], f"{where}.{key}"

    walk(schema, sim_config.DEFAULTS, "simulate")
    defaults = sim_config.DEFAULTS
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(defaults, schema)


@pytest.mark.parametrize("section, match", [
    ({"dat": {"grid": {"pbr": [0.5, 1.2]}}}, r"simulate\.dat\.grid\.pbr\.1': value 1\.2 is out of range"),
    ({"dat": {"grid": {"cbr": [-0.1]}}}, r"simulate\.dat\.grid\.cbr\.0': value -0\.1"),
    ({"dat": {"grid": {"slr": [1.5]}}}, r"simulate\.dat\.grid\.slr\.0': value 1\.5"),
    ({"physics": "projection", "projection": {"collimator": "XX-LEHR"}}, "unknown collimator code 'XX-LEHR'"),
    ({"physics": "projection", "projection": {"collimator": "LEHR"}}, "unknown collimator code 'LEHR'"),
    ({"dat": {"speed": 1}}, "unknown config key simulate.dat.speed"),
    ({"projection": {"views": 100, "subsets": 8}}, "multiple of subsets"),
    ({"perfusion": {"defect_depth": [0.6, 0.2]}}, "min <= max"),
    ({"dat": {"age_decline_per_decade": 0.5}}, r"simulate\.dat\.age_decline_per_decade': value 0\.5 is out of range"),
    ({"dat": {"reference_age": "sixty"}}, r"simulate\.dat\.reference_age': value 'sixty' has the wrong type"),
])
def test_bad_configuration_stops_with_a_clear_message(section, match):
    with pytest.raises(ConfigError, match=match):
        resolve(section)


def test_bad_degradation_parameters(anat, cfg, prep):
    from spectsynth.simulate.physics import ImageDomainPhysics

    model = DatModel(prep, cfg, ImageDomainPhysics(9, 6), seed=1)
    with pytest.raises(ConfigError, match=r"PBR = 1\.3 is outside \[0, 1\]"):
        model.activity(DatDegradation(1.3, 1.0, 1.0), "L")
    with pytest.raises(ConfigError, match=r"SLR = -0\.2"):
        simulate_dat(anat, cfg, prep=prep, degradations=[DatDegradation(0.5, 0.5, -0.2)])


def test_grid_too_small_for_the_head(anat):
    with pytest.raises(ConfigError, match=r"subject phantom: the SPECT grid is too small for the head: "
                                          r"field of view 32 x 4 mm = 128 mm"):
        simulate_dat(anat, {"spect": {"matrix": 32}})


def test_orbit_must_clear_the_head(anat):
    tiny = resolve(TINY | {"projection": {"views": 60, "subsets": 6, "radius_mm": 80.0}})
    p = prepare_grid(anat, tiny, "spect")
    from spectsynth.simulate.physics import ProjectionPhysics

    with pytest.raises(ConfigError, match="orbit radius 80 mm does not clear the head"):
        ProjectionPhysics(tiny["projection"], 159.0, threads=1).system_matrix(p)


def test_dat_design_is_fixed_disjoint_and_within_limits():
    d = sim_config.DEFAULTS["dat"]
    design = dat_design(d, 7)
    assert design[0].is_normal and len(design) == 1 + d["n_main"] + d["n_validation"]
    assert [x.design_set for x in design[1:]].count("validation") == d["n_validation"]
    points = [(x.pbr, x.cbr, x.slr) for x in design[1:]]
    assert len(set(points)) == len(points)
    assert all(c >= p and 0 <= s <= 1 for p, c, s in points)
    assert dat_design(d, 7) == design and dat_design(d, 8) != design
    with pytest.raises(ConfigError, match="offers only"):
        dat_design(d | {"n_main": 500}, 7)


# --- DaT, image domain ------------------------------------------------------------------------
def test_dat_image_path_lands_in_published_ranges(anat, cfg, prep):
    st = simulate_dat(anat, cfg, prep=prep, degradations=[NORMAL, PD])
    _check_published(st.records)
    # Asymmetry of the PD case (the average of a few noise realisations) in the PD band.
    ais = [st.records[1]["meas"]["ai_putamen"]]
    for seed in (2, 3, 4):
        ais.append(simulate_dat(anat, cfg | {"seed": seed}, prep=prep, degradations=[PD]).records[0]["meas"]["ai_putamen"])
    assert _in(float(np.mean(ais)), "PD", "ai_putamen"), ais
    assert st.records[0]["meas"]["ai_putamen"] < 5.0
    # The more affected side is the one with less binding in the image.
    side = st.records[1]["affected_side"]
    other = "R" if side == "L" else "L"
    assert st.records[1]["meas"][f"sbr_putamen_{side}"] < st.records[1]["meas"][f"sbr_putamen_{other}"]
    assert st.records[1]["meas"][f"sbr_caudate_{side}"] < st.records[1]["meas"][f"sbr_caudate_{other}"]
    # Counts, pairing and physics in the record.
    assert st.records[1]["pair_index"] == 0 and st.records[1]["physics"] == "image"
    assert st.records[0]["total_counts"] == pytest.approx(cfg["dat"]["total_counts"], rel=0.01)


def test_normal_cohort_asymmetry_matches_published_band(prep):
    from spectsynth.simulate.physics import ImageDomainPhysics

    cfg = resolve({})
    model = DatModel(prep, cfg, ImageDomainPhysics(9, 6), seed=0, targets={r: 1.0 for r in quant.STRIATAL_REGIONS})
    prep.anatomy.subject, saved = "x", prep.anatomy.subject
    ais = []
    try:
        for i in range(400):
            prep.anatomy.subject = f"s{i}"
            t = model.subject_targets(cfg["seed"])
            ais.append(quant.asymmetry_index(t["putamen_L"], t["putamen_R"]))
    finally:
        prep.anatomy.subject = saved
    assert _in(float(np.mean(ais)), "normal", "ai_putamen"), np.mean(ais)


def _cohort_targets(dat_cfg, ages, seed=20250):
    """Mean caudate/putamen target (over the sides) of synthetic subjects, from their own DaT streams."""
    from spectsynth.simulate.tracers import SUBJECT_STREAM, normal_sbr_targets, rng_for

    out = []
    for i, age in enumerate(ages):
        z = rng_for(seed, f"s{i}", "DaT", SUBJECT_STREAM).standard_normal(3)
        t, info = normal_sbr_targets(z, dat_cfg, age)
        out.append(((t["caudate_L"] + t["caudate_R"]) / 2, (t["putamen_L"] + t["putamen_R"]) / 2,
                    info["age_term"]))
    return np.array(out)


def test_normal_targets_spread_as_configured_and_decline_with_age():
    d = sim_config.DEFAULTS["dat"]
    # The default spread is a normal database's: 10-20 % (Lange et al. 2014: caudate 17 %, putamen 14 %).
    for r in ("caudate", "putamen"):
        assert 0.10 <= d["normal_sbr_sd"][r] / d["normal_sbr"][r] <= 0.20, r
    ages = np.random.default_rng(3).uniform(20.0, 85.0, 3000)
    t = _cohort_targets(d, ages)
    # Without the age term the CV is the configured SD over the mean.
    flat = t[:, :2] / t[:, 2:3]
    for j, r in enumerate(("caudate", "putamen")):
        cv = flat[:, j].std(ddof=1) / flat[:, j].mean()
        assert cv == pytest.approx(d["normal_sbr_sd"][r] / d["normal_sbr"][r], abs=0.008), r
        # A regression on age recovers the decline per decade, relative to the mean at the reference age.
        slope, intercept = np.polyfit(ages - d["reference_age"], t[:, j], 1)
        assert intercept == pytest.approx(d["normal_sbr"][r], rel=0.02), r
        assert -10 * slope / intercept == pytest.approx(d["age_decline_per_decade"], abs=0.008), r
    # A cohort aged 45-80 (the demo's ages) measures a CV of at least 10 %, within the 10-20 % band.
    demo = _cohort_targets(d, np.random.default_rng(4).uniform(45.0, 80.0, 3000))
    cvs = demo[:, :2].std(axis=0, ddof=1) / demo[:, :2].mean(axis=0)
    assert np.all((cvs >= 0.12) & (cvs <= 0.18)), cvs


def test_normal_targets_without_age_have_no_age_term():
    from spectsynth.simulate.tracers import MIN_TARGET_SBR, normal_sbr_targets

    d = sim_config.DEFAULTS["dat"]
    z = np.array([0.7, -1.2, 0.4])
    none, info = normal_sbr_targets(z, d, None)
    at_ref, _ = normal_sbr_targets(z, d, d["reference_age"])
    assert info["age"] is None and info["age_term"] == 1.0 and none == at_ref
    assert info["age_adjusted_mean"] == d["normal_sbr"]
    assert none["caudate_L"] + none["caudate_R"] == pytest.approx(2 * (3.2 + 0.45 * 0.7))
    old, info80 = normal_sbr_targets(z, d, 80.0)
    assert info80["age_term"] == pytest.approx(1 - 0.055 * 2) and old["putamen_L"] / none["putamen_L"] == \
        pytest.approx(info80["age_term"])
    # The same draws, whatever the age: only the age term differs.
    assert normal_sbr_targets(z, d | {"age_decline_per_decade": 0.0}, 80.0)[0] == none
    # Far in the lower tail every target stays at the floor, so the calibration keeps a positive binding.
    low, info_low = normal_sbr_targets(np.array([-9.0, -9.0, 0.0]), d, 85.0)
    assert set(low.values()) == {MIN_TARGET_SBR} and len(info_low["floored"]) == 4


def test_dat_model_takes_the_age_of_the_physiology(anat, prep):
    from types import SimpleNamespace

    from spectsynth.simulate.physics import ImageDomainPhysics

    cfg = resolve({})
    physics = ImageDomainPhysics(9, 6)
    young = DatModel(prep, cfg, physics, seed=1, physiology=SimpleNamespace(age=40.0, cavity=lambda p: 0.0))
    plain = DatModel(prep, cfg, physics, seed=1)
    assert plain.age is None and plain.target_model["age_term"] == 1.0
    assert young.target_model["age_term"] == pytest.approx(1 + 0.055 * 2)
    for r in quant.STRIATAL_REGIONS:
        assert young.targets[r] == pytest.approx(plain.targets[r] * 1.11) and young.specific[r] > 0


def test_putamen_gradient_loses_posterior_first_and_keeps_the_mean():
    rank = (np.arange(1000) + 0.5) / 1000
    for kept in (0.1, 0.4, 0.8):
        r, g = putamen_retention(kept, rank, 0.6)
        assert r.mean() == pytest.approx(kept, abs=1e-4)
        assert r[:300].mean() < r[-300:].mean()
        assert r.min() >= 0 and r.max() <= 1 and g <= 0.6
    r, _ = putamen_retention(1.0, rank, 0.6)
    assert np.all(r == 1)


def test_same_seed_gives_byte_identical_files(anat, cfg, prep, tmp_path):
    paths = []
    for k in range(2):
        st = simulate_dat(anat, cfg, prep=prep, degradations=[NORMAL, PD])
        p = tmp_path / f"run{k}"
        st.write(p / "dat.nii.gz", p / "dat.tsv", p / "dat.json")
        paths.append(p)
    for name in ("dat.nii.gz", "dat.tsv"):
        assert (paths[0] / name).read_bytes() == (paths[1] / name).read_bytes(), name
    other = simulate_dat(anat, cfg | {"seed": cfg["seed"] + 1}, prep=prep, degradations=[NORMAL])
    assert not np.array_equal(other.volumes[0], st.volumes[0])


def test_output_grid_sits_on_the_subject_in_world_space(anat, cfg, prep):
    st = simulate_dat(anat, cfg, prep=prep, degradations=[NORMAL])
    img = st.to_nifti()
    assert np.allclose(img.affine, prep.camera.affine) and img.shape == prep.camera.shape
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    vol = st.volumes[0]
    # The image lines up with the striatum's own weights on the camera grid: no shift of the
    # weights by up to 2 voxels along any axis overlaps the counts better.
    w = sum(prep.camera_weights[r] for r in quant.STRIATAL_REGIONS)
    scores = {(dx, dy, dz): float((np.roll(w, (dx, dy, dz), axis=(0, 1, 2)) * vol).sum())
              for dx in range(-2, 3) for dy in range(-2, 3) for dz in range(-2, 3)}
    assert max(scores, key=scores.get) == (0, 0, 0)
    # Resampled to the anatomy grid the hot spot stays on the striatum.
    on_t1 = to_anatomy_grid(vol, st.grid, anat)
    assert on_t1.shape == anat.shape
    assert on_t1[np.isin(anat.striatum, [1, 2, 3, 4])].mean() > 2 * on_t1[anat.reference == 1].mean()


# --- perfusion, FDG, CBF ---------------------------------------------------------------------
def test_perfusion_contrast_defects_and_levels(anat, prep):
    cfg = resolve({"perfusion": {"n_unilateral": 2, "n_bilateral": 1, "defect_depth": [0.5, 0.6],
                                 "defect_radius_mm": [60, 80]}})
    st = simulate_perfusion(anat, cfg, prep=prep)
    recs = st.records
    assert [r["pattern"] for r in recs] == ["normal", "unilateral", "unilateral", "bilateral"]
    assert recs[0]["meas_gm_wm"] == pytest.approx(cfg["perfusion"]["gm_wm_ratio"], abs=0.08)
    assert recs[0]["meas_csf_gm"] < 0.6
    assert st.meta["calibration"]["true_gm_wm"] > cfg["perfusion"]["gm_wm_ratio"]
    # S2's interictal SPECT: its own 99mTc tracer and contrast, and what a physicist measures on it
    s2 = st.meta["s2_spect"]
    assert s2["tracer"] == "ECD" and s2["meas_gm_wm"] == pytest.approx(cfg["interictal"]["gm_wm_ratio"], abs=0.1)
    assert 12.0 <= s2["meas_fwhm_mm"] <= 14.5 and s2["meas_fwtm_mm"] > 1.82 * s2["meas_fwhm_mm"]
    assert 0.07 <= s2["meas_noise_cv"] <= 0.16 and s2["extracerebral_fraction"] > 0.05  # demo: qc/realism.tsv
    assert 12.0 <= recs[0]["meas_fwhm_mm"] <= 14.5 and recs[1]["meas_fwhm_mm"] is None  # measured on the normal
    for r in recs[1:3]:
        side = r["territories"][0][-1]
        # The affected hemisphere has fewer counts.
        assert (r["meas_lr_ratio"] < recs[0]["meas_lr_ratio"]) == (side == "L")
        assert any(r[f"pattern_{lv}"] == "unilateral" for lv in ("CER", "BG", "COR"))
        assert 0.5 <= r["depths"][0] <= 0.6
    assert recs[3]["n_defects"] == 2 and {t[-1] for t in recs[3]["territories"]} == {"L", "R"}
    assert all(recs[0][f"pattern_{lv}"] == "normal" for lv in ("CER", "BG", "COR"))


def test_fdg_and_cbf_pair(anat):
    cfg = resolve({"cbf": {"pattern": "unilateral"}})
    sim = simulate_pet(anat, cfg)
    fdg = sim.fdg.records[0]
    assert fdg["true_gm_wm"] > 3.5 and fdg["meas_gm_wm"] > 3.0 and fdg["meas_csf_gm"] < 0.3
    assert sim.fdg.grid.voxel_mm == 2.0
    spect, pet = sim.cbf_spect.records[0], sim.cbf_pet.records[0]
    assert spect["territories"] == pet["territories"] and spect["pattern"] == "unilateral"
    assert spect["true_gm_wm"] == pytest.approx(pet["true_gm_wm"], rel=0.05)
    # Same map, better resolution: PET measures more contrast than SPECT.
    assert pet["meas_gm_wm"] > spect["meas_gm_wm"] + 0.3
    a = to_anatomy_grid(sim.cbf_spect.volumes[0], sim.cbf_spect.grid, anat)
    b = to_anatomy_grid(sim.cbf_pet.volumes[0], sim.cbf_pet.grid, anat)
    assert a.shape == b.shape == anat.shape
    # Two sessions (the PET's own day, quantification and noise), not one map blurred twice
    r = np.corrcoef(a[anat.brain], b[anat.brain])[0, 1]
    assert 0.6 < r < 0.95, r
    assert pet["pet_session_global"] > 0 and pet["pet_session_calibration"] > 0 and "pet_session_MCA_L" in pet
    assert 0.08 <= pet["meas_noise_cv"] <= 0.17 and 5.0 <= pet["meas_fwhm_mm"] <= 8.0
    assert fdg["extracerebral_fraction"] > 0.03 and pet["extracerebral_fraction"] > 0.03


# --- projection path (PyTomography) ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(anat):
    pytest.importorskip("pytomography")
    c = resolve(FIXED | TINY)
    return c, prepare_grid(anat, c, "spect")


def test_pytomography_import_keeps_warning_filters():
    pytest.importorskip("pytomography")
    # PyTomography's own import switches every warning off (a catch-all "ignore" filter).
    code = ("import warnings; from spectsynth.simulate.physics import import_pytomography; "
            "before = list(warnings.filters); import_pytomography(); import pytomography; "
            "assert list(warnings.filters) == before, 'warning filters changed'; "
            "assert not [f for f in warnings.filters if f[0] == 'ignore' and f[1] is None and f[2] is Warning]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_projection_conserves_activity_and_cache_changes_nothing(tiny):
    from spectsynth.simulate.physics import ProjectionPhysics

    c, p = tiny
    act = block_sum(3.0 * p.fine_maps["gm"] + p.fine_maps["wm"], p.factor)
    plain = ProjectionPhysics(c["projection"], 159.0, cache_attenuation=False, threads=1)
    cached = ProjectionPhysics(c["projection"], 159.0, cache_attenuation=True, threads=1)
    per_view = plain.forward_project(act, p, attenuation=False).sum(axis=(1, 2))
    assert np.all(np.abs(per_view / act.sum() - 1) < 0.01)
    with_att_plain = plain.forward_project(act, p)
    with_att_cached = cached.forward_project(act, p)
    assert cached.last_cache_used
    assert np.allclose(with_att_plain, with_att_cached, rtol=1e-5, atol=1e-6 * with_att_plain.max())
    assert 0.2 < with_att_plain.sum() / per_view.sum() < 0.6  # attenuation of a head at 159 keV
    rec = cached.reconstruct(with_att_cached.astype(np.float32), p)
    assert rec.sum() == pytest.approx(act.sum(), rel=0.01)
    # Reused sensitivity images give the same reconstruction.
    again = cached.reconstruct(with_att_cached.astype(np.float32), p)
    assert cached._sensitivity and np.array_equal(rec, again)


def test_projection_path_same_seed_same_bytes(tiny):
    from spectsynth.simulate.physics import ProjectionPhysics

    c, p = tiny
    act = 3.0 * p.fine_maps["gm"] + p.fine_maps["wm"]
    physics = ProjectionPhysics(c["projection"] | {"iterations": 1, "subsets": 2}, 159.0, threads=1)
    a, b = (physics.image(act, p, total_counts=1e5, rng=np.random.default_rng(5)) for _ in range(2))
    assert a.tobytes() == b.tobytes()
    assert physics.last_detected_counts == pytest.approx(1e5, rel=0.02)


def test_dat_projection_path_lands_in_published_ranges(anat, tiny):
    c, p = tiny
    st = simulate_dat(anat, c, prep=p, degradations=[NORMAL, PD], threads=1)
    assert st.records[0]["physics"] == "projection" and st.meta["physics"]["collimator"] == "SY-LEHR"
    _check_published(st.records)
    assert st.records[1]["meas"]["ai_putamen"] > 10.0
    assert st.records[0]["total_counts"] == pytest.approx(c["dat"]["total_counts"], rel=0.01)


def test_file_names_and_targets():
    from spectsynth.simulate import paths
    from spectsynth.simulate.anatomy import ANATOMY_KEYS

    assert set(paths.anatomy_files("res")) == set(ANATOMY_KEYS)
    t = paths.targets("res", ["01", "02"], {"perfusion": {"tracer": "HMPAO"}})
    assert "res/sub-01/spect/sub-01_trc-DaT_spect.nii.gz" in t
    # S2's interictal SPECT is named by its own tracer (simulate.interictal.tracer, ECD by default)
    assert "res/sub-02/spect/sub-02_trc-ECD_space-scanner_spect.nii.gz" in t
    assert "res/sub-02/pet/sub-02_trc-H2O_space-scanner_desc-cbf_pet.nii.gz" in t
    assert not [f for f in t if "space-T1w" in f or "space-MNI152" in f]  # registration makes those
    scans = paths.scans("res", "02", {"perfusion": {"tracer": "HMPAO"}})
    assert scans["cbf_pet"]["native"] == "res/sub-02/pet/sub-02_trc-H2O_space-T1w_desc-cbf_pet.nii.gz"
    assert scans["perfusion"]["template"] == "res/sub-02/spect/sub-02_trc-ECD_space-MNI152_spect.nii.gz"
    assert scans["fdg"]["xfm"] == "res/sub-02/xfm/sub-02_trc-FDG_from-pet_to-T1w_mode-image_xfm.tfm"
    # extract_scan_brain's outputs: desc + "brain", as desc-ras -> desc-rasbrain for the T1w
    assert scans["perfusion"]["native_brain"] == "res/sub-02/spect/sub-02_trc-ECD_space-T1w_desc-brain_spect.nii.gz"
    assert scans["fdg"]["template_mask"] == "res/sub-02/pet/sub-02_trc-FDG_space-MNI152_desc-brain_mask.nii.gz"
    assert scans["cbf_spect"]["brain_qc"] == "res/sub-02/spect/sub-02_trc-HMPAO_desc-cbfbrain_qc.json"
    assert "res/figures/simulation_sbr_distribution.png" in t
    only_dat = paths.targets("res", ["01"], {"tracers": ["DaT"]})
    assert not [f for f in only_dat if "/pet/" in f or "IMP" in f]
    assert set(paths.montage_inputs("res", "01", {"tracers": ["DaT"]})) == {"t1w", "dat", "dat_json"}


# --- real anatomy, files, figures ---------------------------------------------------------------
@pytest.mark.skipif(not (IXI / "dlmuse").exists(), reason=f"IXI sample data not found at {IXI}")
def test_real_ixi_anatomy_normal_lands_in_published_range():
    from spectsynth.simulate import anatomy_from_label_image

    sub = "IXI012-HH-1211"
    anat = anatomy_from_label_image(IXI / f"dlmuse/{sub}-T1_ds_DLMUSE.nii.gz", "IXI012",
                                    t1_path=IXI / f"nifti/{sub}-T1_ds.nii.gz")
    st = simulate_dat(anat, resolve(FIXED), degradations=[NORMAL, PD])
    _check_published(st.records)


def test_load_anatomy_reports_the_broken_file(anat, tmp_path):
    paths = write_anatomy(anat, tmp_path)
    loaded = load_anatomy(paths, anat.subject)
    assert loaded.shape == anat.shape and loaded.levels == anat.levels
    broken = anat.striatum.copy()
    broken[broken == 4] = 0
    nib.save(nib.Nifti1Image(broken, anat.affine), paths["striatum"])
    with pytest.raises(InputDataError, match=r"subject phantom: .*striatum_dseg.*putamen_R.*missing"):
        load_anatomy(paths, anat.subject)


def test_rule_entry_points_write_every_file(anat, tmp_path):
    import dataclasses

    anat = dataclasses.replace(anat, subject="01")  # a label that looks like a number
    paths = write_anatomy(anat, tmp_path / "anat")
    cfg = FIXED | {"dat": FIXED["dat"] | {"n_main": 2, "n_validation": 1},
                   "perfusion": {"n_unilateral": 1, "n_bilateral": 1}}
    out = tmp_path / "out"
    dat = {"nifti": out / "dat.nii.gz", "json": out / "dat.json", "truth": out / "dat.tsv"}
    perf = {"nifti": out / "perf.nii.gz", "json": out / "perf.json", "truth": out / "perf.tsv",
            "scan": out / "perf_scan.nii.gz", "scan_json": out / "perf_scan.json"}
    pet = {k: out / f"{k}.nii.gz" for k in ("fdg", "cbf_pet", "cbf_spect")}
    pet |= {f"{k}_json": out / f"{k}.json" for k in ("fdg", "cbf_pet", "cbf_spect")}
    pet |= {"json": out / "pet.json", "truth": out / "pet.tsv"}
    run_dat(paths, dat, cfg, anat.subject, age=70.0)
    run_perfusion(paths, perf, cfg, anat.subject)
    run_pet(paths, pet, cfg, anat.subject)
    img = nib.load(dat["nifti"])
    assert img.shape == (64, 64, 64, 4)
    table = pd.read_csv(dat["truth"], sep="\t")
    assert list(table["index"]) == [0, 1, 2, 3] and list(table["design_set"]) == ["normal", "main", "main",
                                                                                 "validation"]
    for col in ("true_sbr_caudate_L", "meas_sbr_putamen_R", "meas_ai_putamen", "meas_pc_ratio", "seed",
                "total_counts", "physics", "pbr", "cbr", "slr", "subject", "tracer", "pattern"):
        assert col in table.columns, col
    meta = json.loads(dat["json"].read_text())
    assert len(meta["volumes"]) == 4 and meta["calibration"]["specific_binding"]["putamen_L"] > 0
    # The age term of the normal targets (5.5 % per decade below the mean at 60) in the sidecar and table.
    model = meta["calibration"]["normal_sbr_model"]
    assert model["age"] == 70.0 and model["age_term"] == pytest.approx(0.945)
    assert model["age_adjusted_mean"]["caudate"] == pytest.approx(3.2 * 0.945)
    assert meta["calibration"]["target_normal_sbr"]["caudate_L"] == pytest.approx(3.2 * 0.945)
    assert (table["age"] == 70.0).all() and table["normal_age_term"].to_numpy() == pytest.approx(0.945)
    scan = nib.load(perf["scan"])  # the scanner's own matrix and voxels, its true pose in the sidecar
    assert scan.shape in [tuple(c["matrix"]) for c in resolve(cfg)["frames"]["spect"]]
    truth = json.loads(perf["scan_json"].read_text())["SimulationTruth"]
    assert 0 < max(abs(v) for v in truth["pose"]["rotation_deg"]) <= 10.0
    assert 0.0 <= truth["field_of_view"]["brain_in_fov"] <= 1.0
    ptable = pd.read_csv(perf["truth"], sep="\t")
    assert {"pattern_CER", "pattern_BG", "pattern_COR", "meas_gm_wm"} <= set(ptable.columns)
    ptruth = pd.read_csv(pet["truth"], sep="\t")
    assert list(ptruth["volume"]) == ["fdg", "cbf_spect", "cbf_pet"]
    assert ptruth["pose_rotation_deg"].nunique() == 3 and "brain_in_fov" in ptruth.columns
    t1 = tmp_path / "t1w.nii.gz"
    nib.save(nib.Nifti1Image(anat.t1, anat.affine), t1)
    png = out / "montage.png"
    run_montage({"t1w": t1, "dat": dat["nifti"], "dat_json": dat["json"], "perfusion": perf["nifti"],
                 "perfusion_json": perf["json"], "fdg": pet["fdg"], "fdg_json": pet["fdg_json"],
                 "cbf_spect": pet["cbf_spect"], "cbf_spect_json": pet["cbf_spect_json"],
                 "cbf_pet": pet["cbf_pet"], "cbf_pet_json": pet["cbf_pet_json"]}, png, anat.subject)
    summary = {"dat": out / "cohort.tsv", "figure": out / "sbr.png", "summary": out / "summary.json"}
    run_summary([dat["truth"]], summary)
    assert pd.read_csv(summary["dat"], sep="\t", dtype=str)["subject"].iloc[0] == anat.subject
    for f in (png, summary["figure"]):
        assert f.stat().st_size > 10_000
    stats = json.loads(summary["summary"].read_text())["normal"]["meas_sbr_caudate"]
    assert stats["mean"] > 2.5 and stats["cv"] == pytest.approx(0.0, abs=1e-9)  # one normal image


# --- physiology beyond the T1w (regional/global variation, epileptic focus, resection) ---------
def _physiology(anat, section=None, subject=None, **kw):
    from dataclasses import replace

    from spectsynth.simulate.core import subject_physiology

    cfg = resolve(section or {})
    a = anat if subject is None else replace(anat, subject=subject)
    return subject_physiology(a, cfg, **kw), cfg


def test_focus_reduces_uptake_where_the_truth_says(anat, prep):
    from spectsynth.simulate.physics import ImageDomainPhysics
    from spectsynth.simulate.tracers import PerfusionModel

    phys, cfg = _physiology(anat)
    fc = phys.focus
    assert fc is not None and fc.side in ("L", "R") and fc.lobe in ("temporal", "frontal")
    rec = phys.record("FDG", focus=True)
    assert rec["focus_side"] == fc.side and rec["focus_lobe"] == fc.lobe
    assert rec["focus_radius_metabolism_mm"] >= rec["focus_radius_perfusion_mm"]
    x, y, z = (prep.fine.axis_mm(i) for i in range(3))
    dist = np.sqrt((x[:, None, None] - fc.centre_mm[0]) ** 2 + (y[None, :, None] - fc.centre_mm[1]) ** 2
                   + (z[None, None, :] - fc.centre_mm[2]) ** 2)
    brain = prep.fine_maps["brain"] > 0.5
    model = PerfusionModel(prep, cfg, ImageDomainPhysics(9, 6), physiology=phys)
    with_focus, without = model.normal_activity(focus=True), model.normal_activity(focus=False)
    for kind, depth, radius in (("perfusion", fc.depth_perfusion, fc.radius_perfusion_mm),
                                ("metabolism", fc.depth_metabolism, fc.radius_metabolism_mm)):
        red = phys.focus_reduction(prep, kind)
        inside = brain & (dist <= radius / 4)
        outside = brain & (dist >= radius + 3 * cfg["physiology"]["focus"]["penumbra_fwhm_mm"])
        assert inside.any() and outside.any()
        assert np.median(red[inside]) > 0.5 * depth, kind
        assert red.max() <= depth + 1e-6 and red[outside].max() < 1e-4, kind
        # The other hemisphere is untouched.
        other = brain & prep.side_mask_fine("R" if fc.side == "L" else "L")
        assert red[other].max() < 1e-4
    ratio = with_focus[brain & (dist <= fc.radius_perfusion_mm / 4)] / without[brain & (dist <= fc.radius_perfusion_mm / 4)]
    assert np.median(ratio) < 1 - 0.5 * fc.depth_perfusion
    assert np.allclose(with_focus[outside], without[outside])


def test_regional_variation_is_bounded_and_correlated_as_configured(anat, prep):
    phys, cfg = _physiology(anat)
    lim = cfg["physiology"]["regional_max"]
    brain = prep.fine_maps["brain"] > 0.5
    for kind in ("perfusion", "metabolism"):
        field = phys.regional_field(prep, kind)
        assert field[brain].min() >= 1 - lim - 1e-5 and field[brain].max() <= 1 + lim + 1e-5
        assert field[brain].std() > 0.005  # it does vary within the brain
        core = prep.fine_maps["MCA_L"] > 0.99
        assert abs(np.median(field[core]) - (1 + phys.regional[kind]["MCA_L"])) < 0.03

    def corr(rho):
        a, b = [], []
        for i in range(60):
            ph, _ = _physiology(anat, {"physiology": {"tracer_correlation": rho, "regional_max": 0.5,
                                                      "focus": {"enabled": False}}},
                                subject=f"s{i}")
            a += list(ph.regional["perfusion"].values()) + [np.log(ph.global_level["perfusion"])]
            b += list(ph.regional["metabolism"].values()) + [np.log(ph.global_level["metabolism"])]
        return float(np.corrcoef(a, b)[0, 1]), float(np.std(a))

    r0, sd = corr(0.0)
    r5, _ = corr(0.5)
    r1, _ = corr(1.0)
    assert abs(r0) < 0.12 and abs(r5 - 0.5) < 0.12 and r1 > 0.999
    assert abs(sd - 0.06) < 0.02  # regional_sd (with the global term at 0.12 mixed in)
    # Seeded by subject: the same subject gets the same physiology, another one another.
    p1, _ = _physiology(anat, subject="s1")
    p1b, _ = _physiology(anat, subject="s1")
    p2, _ = _physiology(anat, subject="s2")
    assert p1.regional == p1b.regional and p1.focus == p1b.focus and p1.regional != p2.regional


def test_global_level_falls_with_age(anat):
    young, cfg = _physiology(anat, age=40.0)
    old, _ = _physiology(anat, age=80.0)
    slope = cfg["physiology"]["global_age_slope"]
    for kind in ("perfusion", "metabolism"):
        # Same subject, same random draws: the ratio is the age term alone (reference age 60).
        ratio = old.global_level[kind] / young.global_level[kind]
        assert ratio == pytest.approx((1 + slope * 20) / (1 - slope * 20), rel=1e-9)
        assert ratio < 1


def test_resection_cavity_takes_no_tracer(anat, prep):
    from spectsynth.simulate.physics import ImageDomainPhysics
    from spectsynth.simulate.tracers import DatModel, PerfusionModel, fdg_activity

    x, y, z = (np.asarray(v) for v in np.meshgrid(*[np.arange(n) for n in anat.shape], indexing="ij"))
    world = np.einsum("ij,jxyz->ixyz", anat.affine[:3, :3], np.stack([x, y, z])) + anat.affine[:3, 3, None, None, None]
    cavity = (((world[0] + 38) / 14) ** 2 + ((world[1] - 0) / 20) ** 2 + ((world[2] + 26) / 12) ** 2 <= 1) & anat.brain
    phys, cfg = _physiology(anat, resection=cavity.astype(np.float32))
    assert phys.focus.side == "L" and phys.focus.lobe == "temporal"  # the focus sits where the surgeon operated
    rec = phys.record("IMP", focus=False)
    assert rec["resected"] and rec["resection_ml"] == pytest.approx(cavity.sum() * 8 / 1000, abs=0.01)
    c = phys.cavity(prep)
    inside = c > 0.99
    assert inside.sum() > 20
    physics = ImageDomainPhysics(9, 6)
    pm = PerfusionModel(prep, cfg, physics, physiology=phys)
    for act in (pm.normal_activity(), pm.normal_activity(focus=True), fdg_activity(prep, cfg, phys),
                DatModel(prep, cfg, physics, seed=1, physiology=phys).nonspecific):
        assert act[inside].max() < 1e-3
        assert act[prep.fine_maps["gm"] > 0.9].mean() > 0.5  # uptake elsewhere is kept


def test_s2_images_carry_the_focus_and_the_truth(anat, cfg, prep):
    from spectsynth.simulate.core import S2_SPECT_INDEX
    from spectsynth.simulate.physics import ImageDomainPhysics

    stack = simulate_perfusion(anat, {**FIXED, "perfusion": {"n_unilateral": 0, "n_bilateral": 0}}, prep=prep,
                               physics=ImageDomainPhysics(9, 6))
    s2 = stack.meta["s2_spect"]
    assert s2["index"] == S2_SPECT_INDEX and s2["focus"] and s2["pattern"] == "interictal"
    assert stack.records[0]["focus"] is False and "regional_MCA_L" in stack.records[0]
    img, normal = stack.extra["s2_spect"], stack.volumes[0]
    assert img.shape == normal.shape
    fc = [float(v) for v in s2["focus_centre_mm"].split(";")]
    ijk = np.rint(np.linalg.solve(stack.grid.affine, np.r_[fc, 1.0])[:3]).astype(int)
    r = int(np.ceil(s2["focus_radius_perfusion_mm"] / 4 / stack.grid.voxel_mm))
    sl = tuple(slice(max(i - r, 0), i + r + 1) for i in ijk)
    assert img[sl].sum() / img.sum() < normal[sl].sum() / normal.sum()


def test_focus_lobes_match_the_atlas_lobes():
    """The grey matter of the simulator's temporal/frontal lobes lies in the atlas's lobes."""
    from types import SimpleNamespace

    from spectsynth.anatomy import NMM_CSF, NMM_WHITE_MATTER, _split_name, atlas_labels, territory_atlas
    from spectsynth.labels import TERRITORIES
    from spectsynth.simulate.tracers import Landmarks, _world_axes, lobe_fraction

    img, names = atlas_labels()
    lab = np.asanyarray(img.dataobj)
    terr = np.asanyarray(territory_atlas().dataobj)
    striatum = np.zeros(lab.shape, np.int16)
    for code, nmm in ((1, 37), (2, 36), (3, 58), (4, 57)):
        striatum[lab == nmm] = code
    marks = Landmarks.of(SimpleNamespace(striatum=striatum, affine=img.affine, subject="atlas"))
    maps = {n: terr == k for k, n in TERRITORIES.items()}
    x, y, z = _world_axes(lab.shape, img.affine)
    grey = (lab > 0) & ~np.isin(lab, list(NMM_WHITE_MATTER) + list(NMM_CSF))
    lobes = {"temporal": ("STG", "MTG", "ITG", "TMP", "PP", "PT", "TTG", "FuG", "PHG", "Ent", "Hippocampus",
                          "Amygdala"),
             "frontal": ("ACgG", "MFC", "MSFG", "SFG", "MFG", "OpIFG", "TrIFG", "OrIFG", "AOrG", "LOrG", "MOrG",
                         "POrG", "GRe", "FRP", "FO", "SMC", "PrG", "MPrG", "SCA")}
    for lobe, keys in lobes.items():
        for side, word in (("L", "Left"), ("R", "Right")):
            ref = np.isin(lab, [n for n, nm in names.items() if _split_name(nm)[0] == word
                                and _split_name(nm)[1] in keys])
            ours = (lobe_fraction(maps, marks, lobe, side, x, y, z) > 0.5) & grey
            assert (ours & ref).sum() / ours.sum() > 0.8, (lobe, side)
            assert (ours & ref).sum() / (ref & grey).sum() > 0.55, (lobe, side)


def test_rule_entry_point_takes_the_age_and_the_demo_cavity(anat, tmp_path):
    """run_pet reads the age and a resection mask named in its inputs into every truth record."""
    import dataclasses

    from spectsynth.simulate.tracers import load_resection

    anat = dataclasses.replace(anat, subject="07")
    paths = dict(write_anatomy(anat, tmp_path / "anat"))
    world = nib.affines.apply_affine(anat.affine, np.argwhere(np.ones(anat.shape, bool))).reshape(*anat.shape, 3)
    cavity = (np.linalg.norm((world - [38.0, 2.0, -27.0]) / [15.0, 24.0, 14.0], axis=-1) <= 1) & anat.brain
    nib.save(nib.Nifti1Image(cavity.astype(np.uint8), anat.affine), tmp_path / "cavity.nii.gz")
    paths["resection"] = tmp_path / "cavity.nii.gz"
    # A subject without a resection has an all-zero mask (the demo writes one for everyone).
    nib.save(nib.Nifti1Image(np.zeros(anat.shape, np.uint8), anat.affine), tmp_path / "none.nii.gz")
    assert load_resection(tmp_path / "none.nii.gz", anat) is None
    out = tmp_path / "out"
    pet = {k: out / f"{k}.nii.gz" for k in ("fdg", "cbf_pet", "cbf_spect")}
    pet |= {f"{k}_json": out / f"{k}.json" for k in ("fdg", "cbf_pet", "cbf_spect")}
    pet |= {"json": out / "pet.json", "truth": out / "pet.tsv"}
    run_pet(paths, pet, FIXED, anat.subject, age=66.0)
    table = pd.read_csv(pet["truth"], sep="\t")
    assert list(table["resected"]) == [True] * 3 and (table["age"] == 66.0).all()
    assert (table["resection_ml"] > 5).all()
    fdg = table.iloc[0]
    assert fdg["focus_side"] == "R" and fdg["focus_lobe"] == "temporal" and bool(fdg["focus"])
    assert not table["focus"].iloc[1:].astype(bool).any()  # S3's CBF pair: no focus
    # the FDG scan lies in its own scanner frame: sample it at the T1w's voxels through its true pose
    from scipy import ndimage

    from spectsynth.simulate.frames import read_truth

    pose = np.asarray(read_truth(pet["fdg_json"])["pose"]["t1w_to_scanner"], float)
    scan = nib.load(pet["fdg"])
    ijk = nib.affines.apply_affine(np.linalg.inv(scan.affine) @ pose, world.reshape(-1, 3))
    img = ndimage.map_coordinates(np.asarray(scan.dataobj, np.float32), ijk.T, order=1).reshape(anat.shape)
    core = cavity & (np.linalg.norm((world - [38.0, 2.0, -27.0]) / [15.0, 24.0, 14.0], axis=-1) <= 0.4)
    assert img[core].mean() < 0.25 * img[anat.gm > 0.9].mean()


def test_nonzero_bbox_equals_argwhere_extent():
    from spectsynth.simulate.grid import nonzero_bbox

    rng = np.random.default_rng(0)
    for shape, density in (((9, 7, 5), 0.02), ((9, 7, 5), 0.5), ((1, 6, 4), 0.3), ((6, 8), 0.1)):
        a = (rng.random(shape) < density) * rng.random(shape).astype(np.float32)
        a[(0,) * a.ndim] = 0.0
        a.flat[rng.integers(a.size)] = 0.25          # at least one non-zero voxel
        idx = np.argwhere(a)
        lo, hi = nonzero_bbox(a)
        assert lo.tolist() == idx.min(axis=0).tolist() and hi.tolist() == idx.max(axis=0).tolist()
    assert nonzero_bbox(np.zeros((4, 3, 2), bool)) is None


def test_tissue_cores_are_computed_once_per_anatomy_and_equal_the_direct_call(monkeypatch):
    from spectsynth.simulate import grid

    anat = mni_anatomy(4.0, subject="phantom")
    calls = []
    direct = grid.quant.tissue_core_masks

    def counting(*args, **kwargs):
        calls.append(1)
        return direct(*args, **kwargs)

    monkeypatch.setattr(grid.quant, "tissue_core_masks", counting)
    first = grid.tissue_cores(anat)
    assert grid.tissue_cores(anat) is first and len(calls) == 2          # GM/WM, then CSF: once
    gm, wm = direct(anat.gm * anat.brain, anat.wm * anat.brain, tuple(anat.voxel_mm))
    csf, nothing = direct(anat.csf * anat.brain, np.zeros_like(anat.csf), tuple(anat.voxel_mm))
    assert np.array_equal(first[0], gm) and np.array_equal(first[1], wm) and np.array_equal(first[2], csf)
    assert not nothing.any()


# --- clinical resolution and noise, the PET's own session, sub-lobar physiology -------------------
def test_line_source_measures_the_psf_and_its_tail(prep):
    from spectsynth.simulate.physics import ImageDomainPhysics, measured_resolution

    plain = measured_resolution(ImageDomainPhysics(10.0, 8.0), prep)
    tailed = measured_resolution(ImageDomainPhysics(10.0, 8.0, tail_fraction=0.25, tail_fwhm_mm=60.0), prep)
    # Gaussian core: sqrt(10^2 + 8^2) = 12.8 mm, widened a little by the 4 mm voxels
    assert 12.5 <= plain["meas_fwhm_mm"] <= 14.0
    assert plain["meas_fwtm_mm"] == pytest.approx(1.82 * plain["meas_fwhm_mm"], rel=0.06)
    # the broad tail barely moves the half maximum but puts counts far from the source
    assert 0.07 < plain["meas_tail_fraction"] < 0.13 and tailed["meas_tail_fraction"] > plain["meas_tail_fraction"] + 0.1
    assert abs(tailed["meas_fwhm_mm"] - plain["meas_fwhm_mm"]) < 1.0


def test_noise_gain_scales_the_variance_and_keeps_the_mean(anat, prep):
    from spectsynth.simulate.physics import ImageDomainPhysics, image_properties

    act = prep.fine_maps["gm"] * 2.0 + prep.fine_maps["wm"]
    cv = {}
    for gain in (1.0, 16.0):
        ph = ImageDomainPhysics(10.0, 8.0, noise_gain=gain)
        img = ph.image(act, prep, total_counts=4e6, rng=np.random.default_rng(1))
        expected = ph.image(act, prep, total_counts=4e6, rng=None)
        assert float(img.sum()) == pytest.approx(float(expected.sum()), rel=0.01)
        cv[gain] = image_properties(img, expected, prep)["meas_noise_cv"]
    assert cv[16.0] / cv[1.0] == pytest.approx(4.0, rel=0.15)   # SD grows with sqrt(gain)
    with pytest.raises(ConfigError, match="noise gain"):
        ImageDomainPhysics(10.0, noise_gain=0.5)


def test_region_field_is_the_per_region_weighted_mean(prep):
    """region_field filters the weighted sum once (linearity), as filtering every region's fraction
    and weighting them would: ``1 + sum_r d_r G(w_r) / (sum_r G(w_r) + G(rest of the brain))``."""
    from spectsynth.simulate.physics import gaussian
    from spectsynth.simulate.tracers import VARIATION_REGIONS, region_field

    m, vox = prep.fine_maps, prep.fine.voxel_mm
    regions = {name: m[name] for name in VARIATION_REGIONS[:6]}
    for side in ("L", "R"):
        regions[f"cerebellum_{side}"] = m["cerebellum"] * prep.side_mask_fine(side)
        regions[f"striatum_{side}"] = m["striatum_any"] * prep.side_mask_fine(side)
    factors = {name: 0.02 * (i - 4) for i, name in enumerate(regions)}
    num = sum(factors[r] * gaussian(w, 16.0, vox) for r, w in regions.items())
    den = sum(gaussian(w, 16.0, vox) for w in regions.values())
    den = den + gaussian(np.clip(m["brain"] - sum(regions.values()), 0.0, None), 16.0, vox)
    want = 1.0 + np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    got = region_field(prep, factors, 16.0)
    brain = m["brain"] > 0.5
    assert np.abs(got - want)[brain].max() < 1e-5 and np.abs(got - want).max() < 1e-3
    assert got[brain].std() > 0.01


def test_pet_session_is_its_own_day(prep):
    from spectsynth.simulate.tracers import PetSession, region_field

    cfg = sim_config.DEFAULTS["cbf"]["pet_session"]
    a, b = PetSession.draw(cfg, 1, "01"), PetSession.draw(cfg, 1, "02")
    assert a == PetSession.draw(cfg, 1, "01") and a != b
    draws = [PetSession.draw(cfg, 1, f"{i:03d}").global_factor for i in range(300)]
    assert float(np.std(np.log(draws))) == pytest.approx(cfg["global_sd"], rel=0.15)
    assert np.allclose(region_field(prep, {}, 16.0), 1.0)
    none = PetSession(1.0, {}, 1.0, 0.0)
    flow = np.array([10.0, 50.0, 90.0])
    assert np.allclose(none.quantify(flow), flow)
    biased = PetSession(1.0, {}, 1.0, 0.1)
    q = biased.quantify(flow)
    assert q[1] == pytest.approx(50.0) and q[2] > 90.0 and q[0] < 10.0


def test_sublobar_field_is_one_field_on_every_grid(anat):
    from spectsynth.simulate.core import subject_physiology

    cfg = resolve({"physiology": {"sublobar_sd": 0.1, "regional_sd": 0.0, "global_sd": 0.0}})
    phys = subject_physiology(anat, cfg)
    spect, pet = prepare_grid(anat, cfg, "spect"), prepare_grid(anat, cfg, "pet")
    s = phys.sublobar_field(spect, "perfusion")
    p = phys.sublobar_field(pet, "perfusion")
    inside = spect.fine_maps["brain"] > 0.99
    assert float(np.std(s[inside])) == pytest.approx(0.1, rel=0.3)
    assert np.all(s[spect.fine_maps["brain"] == 0] == 1.0)
    # the same world-space field: sampled on the SPECT's fine grid, the PET's matches it
    from spectsynth.simulate.anatomy import resample_to_grid

    p_on_s = resample_to_grid(p, pet.fine.affine, spect.fine.shape, spect.fine.affine, order=1)
    assert np.corrcoef(s[inside], p_on_s[inside])[0, 1] > 0.9
    # perfusion and metabolism share part of it (tracer_correlation 0.5)
    m = phys.sublobar_field(spect, "metabolism")
    r = np.corrcoef(s[inside], m[inside])[0, 1]
    assert 0.2 < r < 0.8, r
