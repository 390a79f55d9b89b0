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
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())["properties"]["simulate"]

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
    ({"dat": {"grid": {"pbr": [0.5, 1.2]}}}, r"pbr.*1\.2.*\[0, 1\]"),
    ({"dat": {"grid": {"cbr": [-0.1]}}}, r"cbr.*-0\.1"),
    ({"dat": {"grid": {"slr": [1.5]}}}, r"slr.*1\.5"),
    ({"physics": "projection", "projection": {"collimator": "XX-LEHR"}}, "unknown collimator code 'XX-LEHR'"),
    ({"physics": "projection", "projection": {"collimator": "LEHR"}}, "unknown collimator code 'LEHR'"),
    ({"dat": {"speed": 1}}, "unknown config key simulate.dat.speed"),
    ({"projection": {"views": 100, "subsets": 8}}, "multiple of subsets"),
    ({"perfusion": {"defect_depth": [0.6, 0.2]}}, "min <= max"),
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
    assert recs[0]["meas_gm_wm"] == pytest.approx(2.2, abs=0.08)
    assert recs[0]["meas_csf_gm"] < 0.6
    assert st.meta["calibration"]["true_gm_wm"] > 2.2
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
    assert np.corrcoef(a[anat.brain], b[anat.brain])[0, 1] > 0.8


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
    assert "res/sub-02/spect/sub-02_trc-HMPAO_space-T1w_spect.nii.gz" in t
    assert "res/sub-02/pet/sub-02_trc-H2O_space-T1w_desc-cbf_pet.nii.gz" in t
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
            "t1w": out / "perf_t1w.nii.gz"}
    pet = {k: out / f"{k}.nii.gz" for k in ("fdg", "fdg_t1w", "cbf_pet", "cbf_spect")}
    pet |= {"json": out / "pet.json", "truth": out / "pet.tsv"}
    run_dat(paths, dat, cfg, anat.subject)
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
    assert nib.load(perf["t1w"]).shape == anat.shape
    ptable = pd.read_csv(perf["truth"], sep="\t")
    assert {"pattern_CER", "pattern_BG", "pattern_COR", "meas_gm_wm"} <= set(ptable.columns)
    assert list(pd.read_csv(pet["truth"], sep="\t")["volume"]) == ["fdg", "cbf_spect", "cbf_pet"]
    t1 = tmp_path / "t1w.nii.gz"
    nib.save(nib.Nifti1Image(anat.t1, anat.affine), t1)
    png = out / "montage.png"
    run_montage({"t1w": t1, "dat": dat["nifti"], "dat_json": dat["json"], "perfusion": perf["nifti"],
                 "perfusion_json": perf["json"], "fdg": pet["fdg"], "cbf_spect": pet["cbf_spect"],
                 "cbf_pet": pet["cbf_pet"]}, png, anat.subject)
    summary = {"dat": out / "cohort.tsv", "figure": out / "sbr.png", "summary": out / "summary.json"}
    run_summary([dat["truth"]], summary)
    assert pd.read_csv(summary["dat"], sep="\t", dtype=str)["subject"].iloc[0] == anat.subject
    for f in (png, summary["figure"]):
        assert f.stat().st_size > 10_000
    assert json.loads(summary["summary"].read_text())["normal"]["meas_sbr_caudate"]["mean"] > 2.5


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
