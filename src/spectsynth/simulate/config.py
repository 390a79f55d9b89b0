"""Defaults and checks of the ``simulate:`` config section.

The workflow validates the config against its JSON schema (``simulate`` in
``config/schema.yaml``), the source of these defaults: :data:`DEFAULTS` is a copy that
``tests/test_defaults_single_source.py`` holds equal to what the schema fills in
(``spectsynth.config.schema_defaults(schema, "simulate")``), so that the package can be used
without reading the schema. :func:`resolve` repeats the checks that matter for users who call
the package directly, fills in defaults and returns a plain dict.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .registry import GROUPS, TRACER_SECTIONS, extracerebral_defaults, one_of

DEFAULTS: dict[str, Any] = {
    "tracers": ["DaT", "perfusion", "pet"],
    "seed": 20250,
    "physics": "image",
    "max_fine_voxel_mm": 2.0,
    "head": {"csf_mm": 2.0, "bone_mm": 7.0, "scalp_mm": 5.0},
    "spect": {"matrix": 64, "voxel_mm": 4.0, "fwhm_mm": 10.0, "post_filter_fwhm_mm": 8.0,
              "tail_fraction": {"I-123": 0.15, "Tc-99m": 0.1}, "tail_fwhm_mm": 60.0, "noise_gain": 20.0},
    "projection": {
        "collimator": "SY-LEHR",
        "intrinsic_fwhm_mm": 3.8,
        "views": 120,
        "radius_mm": 135.0,
        "iterations": 4,
        "subsets": 8,
        "post_filter_fwhm_mm": 8.0,
        "cache_attenuation": True,
        "cache_max_gb": 4.0,
        "reuse_sensitivity": True,
        "device": "auto",
        "threads": 1,
        "calibration_refinements": 1,
    },
    "pet": {"matrix": 128, "voxel_mm": 2.0, "fwhm_mm": 5.0, "post_filter_fwhm_mm": 4.0, "tail_fraction": 0.0,
            "tail_fwhm_mm": 40.0, "noise_gain": 16.0},
    "dat": {
        "total_counts": 2.0e6,
        "noise_gain": 2.0,
        "tail_fraction": 0.25,
        "reference": "occipital",
        "normal_sbr": {"caudate": 3.2, "putamen": 1.85},
        "normal_sbr_sd": {"caudate": 0.45, "putamen": 0.25},
        "normal_asymmetry_sd": 0.10,
        "age_decline_per_decade": 0.055,
        "reference_age": 60.0,
        "nonspecific": {"gm": 1.0, "wm": 0.75, "csf": 0.0},
        "putamen_gradient": 0.6,
        "grid": {
            "pbr": [0.15, 0.3, 0.45, 0.6, 0.75, 0.9],
            "cbr": [0.5, 0.65, 0.8, 0.95],
            "slr": [0.6, 0.75, 0.9, 1.0],
        },
        "n_main": 17,
        "n_validation": 10,
    },
    "perfusion": {
        "tracer": "IMP",
        "total_counts": 4.0e6,
        "gm_wm_ratio": 1.9,
        "n_normal": 1,
        "n_unilateral": 4,
        "n_bilateral": 4,
        "territories": ["ACA", "MCA", "PCA"],
        "defect_depth": [0.2, 0.6],
        "defect_radius_mm": [30.0, 90.0],
        "penumbra_fwhm_mm": 16.0,
        "diaschisis": 0.3,
        "level_min_reduction": 0.15,
        "level_min_volume_ml": 5.0,
    },
    "fdg": {"ratios": {"gm": 5.0, "wm": 1.0, "csf": 0.0}, "total_counts": 5.0e7},
    # S2's interictal SPECT: a 99mTc perfusion agent (S2 cites ECD, Gruenwald et al. 1994).
    "interictal": {"tracer": "ECD", "gm_wm_ratio": 1.8, "total_counts": 2.5e6},
    "cbf": {
        "pattern": "random",
        "pet_total_counts": 2.0e7,
        # One true flow map, each tracer's own kinetics (spectsynth.simulate.kinetics).
        "kinetics": {
            "enabled": True,
            "gm_flow": [70.0, 7.0],          # true flow of pure grey matter, mean and SD between subjects
            "ps_water": 104.0,               # Herscovitch et al. 1987
            "vd_true": [30.0, 3.0],          # the subject's IMP Vd, mean and SD
            "vd_assumed": 30.0,              # ARG's fixed Vd (Iida et al. 1994)
            "scan_mid_min": 35.0,            # SPECT mid-scan time (Iida: 30-40 min optimal)
            "sample_min": 10.0,              # the one calibrating arterial sample
            "standard_input": {"amplitude": 1.0, "peak_min": 1.0, "shape": 3.0, "slow_fraction": 0.08,
                               "slow_rise_min": 3.0, "slow_decay_min": 120.0},
            # log-normal SD of the subject's input against the standard: the scale, which the one
            # blood sample corrects, and the shape, which it cannot (Iida: ~5 % in the 40-min integral)
            "input_variation": {"amplitude": 0.3, "peak_min": 0.15, "slow_fraction": 0.04,
                                "slow_decay_min": 0.06},
            "cross_calibration_sd": 0.03,
        },
        # The PET's own session (another day than the SPECT): global and territorial flow, and
        # the PET's own quantification error.
        "pet_session": {"global_sd": 0.09, "territory_sd": 0.05, "calibration_sd": 0.04,
                        "flow_exponent_sd": 0.05},
    },
    # Scanner frames of the PET/SPECT that S2 and S3 read (spectsynth.simulate.frames). SPECT as
    # S2's Table 1 (128 x 128 x 47 at 3.89 mm); PET reconstructed at 2 mm (S2's scanners give
    # 0.8 x 0.8 x 2 mm, which holds no more detail than the 5 mm PSF at 8x the voxels).
    "frames": {
        "rotation_deg": 10.0,
        "shift_mm": 15.0,
        "spect": [{"matrix": [128, 128, 83], "voxel_mm": [2.34, 2.34, 2.34]},
                  {"matrix": [128, 128, 47], "voxel_mm": [3.89, 3.89, 3.89]},
                  {"matrix": [128, 128, 44], "voxel_mm": [4.79, 4.79, 4.79]}],
        "pet": [{"matrix": [180, 180, 132], "voxel_mm": [2.0, 2.0, 2.0]},
                {"matrix": [202, 202, 111], "voxel_mm": [2.0, 2.0, 2.0]}],
        "motion": {"rotation_deg": 4.0, "shift_mm": 6.0, "moved_fraction": [0.2, 0.5]},
    },
    "physiology": {
        "regional_sd": 0.06,
        "regional_max": 0.15,
        "regional_fwhm_mm": 16.0,
        "tracer_correlation": 0.5,
        "global_sd": 0.12,
        "global_age_slope": -0.004,
        "reference_age": 60.0,
        "sublobar_sd": 0.08,
        "sublobar_fwhm_mm": 12.0,
        # One default per tracer that has one (spectsynth.simulate.registry: Tracer.extracerebral).
        "extracerebral": extracerebral_defaults(),
        "focus": {
            "enabled": True,
            "lobes": ["temporal", "frontal"],
            "lobe_weights": {"temporal": 0.7, "frontal": 0.3},
            "radius_mm": [15.0, 30.0],
            "metabolism_extent_ratio": [1.0, 1.5],
            "depth_perfusion": [0.10, 0.25],
            "depth_metabolism": [0.15, 0.30],
            "penumbra_fwhm_mm": 8.0,
        },
    },
}


def _merge(base: dict, override: Mapping, path: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}.{key}"
        if key not in base:
            raise ConfigError(f"unknown config key {where}; known keys of {path}: {', '.join(sorted(base))}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
            out[key] = _merge(base[key], value, where)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _num(cfg: dict, key: str, lo: float, hi: float, where: str, *, integer: bool = False) -> None:
    v = cfg[key]
    ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key} must be {kind}, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{where}.{key} = {v} is outside [{lo}, {hi}]")


def _unit_list(values: Any, where: str) -> None:
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{where} must be a non-empty list of numbers in [0, 1]")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where} holds {v!r}; every value must lie in [0, 1]")


def _range2(values: Any, lo: float, hi: float, where: str) -> None:
    if (not isinstance(values, (list, tuple)) or len(values) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise ConfigError(f"{where} must be a [min, max] pair of numbers")
    if not lo <= values[0] <= values[1] <= hi:
        raise ConfigError(f"{where} = {list(values)} must satisfy {lo} <= min <= max <= {hi}")


@lru_cache(maxsize=1)
def collimator_table() -> dict[str, str]:
    """Collimator codes PyTomography knows (its ``collim.col``), without importing it."""
    spec = importlib.util.find_spec("pytomography")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("simulate.physics is 'projection' but PyTomography is not installed; install it "
                          "with `pip install pytomography==3.4.0 torch==<your torch version>` or choose "
                          "simulate.physics: image")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "collim.col"
    table: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("*"):
            parts = line[1:].split()
            if parts:
                table.setdefault(parts[0], " ".join(parts[13:]).strip())
    return table


def check_collimator(code: str) -> None:
    """Refuse a collimator code PyTomography does not know exactly (it would match substrings)."""
    table = collimator_table()
    if code not in table:
        lehr = sorted(c for c in table if c.endswith("LEHR"))
        raise ConfigError(f"unknown collimator code {code!r} in simulate.projection.collimator; use a code of "
                          f"PyTomography's collimator table, e.g. {', '.join(lehr[:12])}")
    # PyTomography takes the first line *containing* the code: make sure that is this code.
    spec = importlib.util.find_spec("pytomography")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "collim.col"
    for line in path.read_text(errors="replace").splitlines():
        if code in line:
            first = line[1:].split()[0] if line.startswith("*") else None
            if first != code:
                raise ConfigError(f"collimator code {code!r} is ambiguous in PyTomography's table (it also "
                                  f"matches {line.strip()[:40]!r}); choose another code")
            break


def _check_tracer(cfg: dict, section: str) -> None:
    """``simulate.<section>.tracer`` names a tracer the registry allows there (registry.TRACER_SECTIONS)."""
    allowed = TRACER_SECTIONS[section]()
    if cfg[section]["tracer"] not in allowed:
        raise ConfigError(f"simulate.{section}.tracer must be {one_of(allowed)}, not {cfg[section]['tracer']!r}")


def resolve(section: Mapping | None) -> dict:
    """Defaults merged with ``section`` (the ``simulate:`` config), checked; raises ConfigError."""
    cfg = _merge(DEFAULTS, section or {}, "simulate")
    w = "simulate"
    if not isinstance(cfg["tracers"], (list, tuple)) or any(t not in GROUPS for t in cfg["tracers"]):
        raise ConfigError(f"simulate.tracers must list some of {', '.join(GROUPS)}, got {cfg['tracers']!r}")
    _num(cfg, "seed", 0, 2**32 - 1, w, integer=True)
    if cfg["physics"] not in ("image", "projection"):
        raise ConfigError(f"simulate.physics must be 'image' or 'projection', not {cfg['physics']!r}")
    _num(cfg, "max_fine_voxel_mm", 0.5, 4.0, w)
    for k in ("csf_mm", "bone_mm", "scalp_mm"):
        _num(cfg["head"], k, 0.0, 30.0, f"{w}.head")
    for mod, lo_fwhm in (("spect", 0.0), ("pet", 0.0)):
        c = cfg[mod]
        _num(c, "matrix", 8, 512, f"{w}.{mod}", integer=True)
        _num(c, "voxel_mm", 0.5, 16.0, f"{w}.{mod}")
        _num(c, "fwhm_mm", lo_fwhm, 40.0, f"{w}.{mod}")
        _num(c, "post_filter_fwhm_mm", 0.0, 40.0, f"{w}.{mod}")
        _num(c, "tail_fwhm_mm", 0.0, 200.0, f"{w}.{mod}")
        _num(c, "noise_gain", 1.0, 1000.0, f"{w}.{mod}")
    for iso in cfg["spect"]["tail_fraction"]:  # one per SPECT isotope (registry.spect_isotopes)
        _num(cfg["spect"]["tail_fraction"], iso, 0.0, 0.9, f"{w}.spect.tail_fraction")
    _num(cfg["pet"], "tail_fraction", 0.0, 0.9, f"{w}.pet")
    p = cfg["projection"]
    for key, lo, hi, integer in (("intrinsic_fwhm_mm", 0, 10, False), ("views", 4, 360, True),
                                 ("radius_mm", 50, 400, False), ("iterations", 1, 100, True),
                                 ("subsets", 1, 60, True), ("post_filter_fwhm_mm", 0, 40, False),
                                 ("cache_max_gb", 0, 1024, False), ("calibration_refinements", 0, 5, True),
                                 ("threads", 1, 256, True)):
        _num(p, key, lo, hi, f"{w}.projection", integer=integer)
    if p["views"] % p["subsets"]:
        raise ConfigError(f"simulate.projection.views ({p['views']}) must be a multiple of subsets ({p['subsets']})")
    if p["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"simulate.projection.device must be auto, cpu or cuda, not {p['device']!r}")
    for key in ("cache_attenuation", "reuse_sensitivity"):
        if not isinstance(p[key], bool):
            raise ConfigError(f"simulate.projection.{key} must be true or false, not {p[key]!r}")
    if not isinstance(p["collimator"], str):
        raise ConfigError("simulate.projection.collimator must be a collimator code such as 'SY-LEHR'")
    if cfg["physics"] == "projection":
        check_collimator(p["collimator"])
    d = cfg["dat"]
    _num(d, "total_counts", 1e3, 1e10, f"{w}.dat")
    _num(d, "noise_gain", 1.0, 1000.0, f"{w}.dat")
    _num(d, "tail_fraction", 0.0, 0.9, f"{w}.dat")
    if d["reference"] not in ("occipital", "cerebellum", "brain_minus_striatum"):
        raise ConfigError(f"simulate.dat.reference must be occipital, cerebellum or brain_minus_striatum, "
                          f"not {d['reference']!r}")
    for k in ("caudate", "putamen"):
        _num(d["normal_sbr"], k, 0.1, 20.0, f"{w}.dat.normal_sbr")
        _num(d["normal_sbr_sd"], k, 0.0, 2.0, f"{w}.dat.normal_sbr_sd")
    _num(d, "normal_asymmetry_sd", 0.0, 0.5, f"{w}.dat")
    _num(d, "age_decline_per_decade", 0.0, 0.2, f"{w}.dat")
    _num(d, "reference_age", 0.0, 120.0, f"{w}.dat")
    for k in ("gm", "wm", "csf"):
        _num(d["nonspecific"], k, 0.0, 10.0, f"{w}.dat.nonspecific")
    _num(d, "putamen_gradient", 0.0, 1.0, f"{w}.dat")
    _unit_list(d["grid"]["pbr"], "simulate.dat.grid.pbr (PBR, putaminal binding retained)")
    _unit_list(d["grid"]["cbr"], "simulate.dat.grid.cbr (CBR, caudate binding retained)")
    _unit_list(d["grid"]["slr"], "simulate.dat.grid.slr (SLR, side ratio)")
    _num(d, "n_main", 0, 1000, f"{w}.dat", integer=True)
    _num(d, "n_validation", 0, 1000, f"{w}.dat", integer=True)
    pf = cfg["perfusion"]
    _check_tracer(cfg, "perfusion")
    _num(pf, "total_counts", 1e3, 1e10, f"{w}.perfusion")
    _num(pf, "gm_wm_ratio", 1.0, 6.0, f"{w}.perfusion")
    for k in ("n_normal", "n_unilateral", "n_bilateral"):
        _num(pf, k, 0, 1000, f"{w}.perfusion", integer=True)
    if not pf["territories"] or any(t not in ("ACA", "MCA", "PCA") for t in pf["territories"]):
        raise ConfigError(f"simulate.perfusion.territories must list some of ACA, MCA, PCA, got {pf['territories']!r}")
    _range2(pf["defect_depth"], 0.0, 1.0, "simulate.perfusion.defect_depth")
    _range2(pf["defect_radius_mm"], 5.0, 300.0, "simulate.perfusion.defect_radius_mm")
    _num(pf, "penumbra_fwhm_mm", 0.0, 60.0, f"{w}.perfusion")
    _num(pf, "diaschisis", 0.0, 1.0, f"{w}.perfusion")
    _num(pf, "level_min_reduction", 0.01, 1.0, f"{w}.perfusion")
    _num(pf, "level_min_volume_ml", 0.0, 1000.0, f"{w}.perfusion")
    for k in ("gm", "wm", "csf"):
        _num(cfg["fdg"]["ratios"], k, 0.0, 100.0, f"{w}.fdg.ratios")
    _num(cfg["fdg"], "total_counts", 1e3, 1e12, f"{w}.fdg")
    ic = cfg["interictal"]
    _check_tracer(cfg, "interictal")
    _num(ic, "gm_wm_ratio", 1.0, 6.0, f"{w}.interictal")
    _num(ic, "total_counts", 1e3, 1e10, f"{w}.interictal")
    if cfg["cbf"]["pattern"] not in ("random", "normal", "unilateral", "bilateral"):
        raise ConfigError(f"simulate.cbf.pattern must be random, normal, unilateral or bilateral, "
                          f"not {cfg['cbf']['pattern']!r}")
    _num(cfg["cbf"], "pet_total_counts", 1e3, 1e12, f"{w}.cbf")
    kin = cfg["cbf"]["kinetics"]
    if not isinstance(kin["enabled"], bool):
        raise ConfigError("simulate.cbf.kinetics.enabled must be true or false")
    for k in ("gm_flow", "vd_true"):
        v = kin[k]
        if (not isinstance(v, (list, tuple)) or len(v) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                or not (0.0 < v[0] <= 200.0 and 0.0 <= v[1] <= v[0])):
            raise ConfigError(f"simulate.cbf.kinetics.{k} = {v!r} must be [mean, sd] with 0 < mean <= 200 "
                              "and 0 <= sd <= mean")
    _num(kin, "ps_water", 1.0, 10000.0, f"{w}.cbf.kinetics")
    _num(kin, "vd_assumed", 1.0, 200.0, f"{w}.cbf.kinetics")
    _num(kin, "scan_mid_min", 1.0, 600.0, f"{w}.cbf.kinetics")
    _num(kin, "sample_min", 0.5, 600.0, f"{w}.cbf.kinetics")
    _num(kin, "cross_calibration_sd", 0.0, 1.0, f"{w}.cbf.kinetics")
    for k in ("global_sd", "territory_sd", "calibration_sd", "flow_exponent_sd"):
        _num(cfg["cbf"]["pet_session"], k, 0.0, 1.0, f"{w}.cbf.pet_session")
    for k in kin["standard_input"]:
        _num(kin["standard_input"], k, 0.0 if k == "slow_fraction" else 1e-3, 1000.0, f"{w}.cbf.kinetics.standard_input")
    for k in kin["input_variation"]:
        _num(kin["input_variation"], k, 0.0, 2.0, f"{w}.cbf.kinetics.input_variation")
    from .frames import check as check_frames

    check_frames(cfg["frames"])
    ph, wp = cfg["physiology"], f"{w}.physiology"
    for key, lo, hi in (("regional_sd", 0.0, 0.5), ("regional_max", 0.0, 0.5), ("regional_fwhm_mm", 0.0, 60.0),
                        ("tracer_correlation", 0.0, 1.0), ("global_sd", 0.0, 1.0),
                        ("global_age_slope", -0.02, 0.02), ("reference_age", 0.0, 120.0),
                        ("sublobar_sd", 0.0, 0.3), ("sublobar_fwhm_mm", 2.0, 60.0)):
        _num(ph, key, lo, hi, wp)
    for trc in ph["extracerebral"]:  # one per tracer with a default (registry.extracerebral_defaults)
        _num(ph["extracerebral"], trc, 0.0, 5.0, f"{wp}.extracerebral")
    fc = ph["focus"]
    if not isinstance(fc["enabled"], bool):
        raise ConfigError(f"{wp}.focus.enabled must be true or false, not {fc['enabled']!r}")
    if not fc["lobes"] or any(lb not in ("temporal", "frontal") for lb in fc["lobes"]):
        raise ConfigError(f"{wp}.focus.lobes must list some of temporal, frontal, got {fc['lobes']!r}")
    bad = {k: v for k, v in fc["lobe_weights"].items() if k not in ("temporal", "frontal")
           or isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
    if bad or sum(float(fc["lobe_weights"].get(lb, 0)) for lb in fc["lobes"]) <= 0:
        raise ConfigError(f"{wp}.focus.lobe_weights {fc['lobe_weights']!r} must give each of temporal/frontal a "
                          "weight >= 0, with a positive weight for at least one lobe in focus.lobes")
    _range2(fc["radius_mm"], 2.0, 100.0, f"{wp}.focus.radius_mm")
    _range2(fc["metabolism_extent_ratio"], 0.2, 5.0, f"{wp}.focus.metabolism_extent_ratio")
    _range2(fc["depth_perfusion"], 0.0, 1.0, f"{wp}.focus.depth_perfusion")
    _range2(fc["depth_metabolism"], 0.0, 1.0, f"{wp}.focus.depth_metabolism")
    _num(fc, "penumbra_fwhm_mm", 0.0, 40.0, f"{wp}.focus")
    return cfg


def check_dat_parameters(pbr: float, cbr: float, slr: float) -> None:
    """Refuse degradation parameters outside [0, 1]."""
    for name, v in (("PBR", pbr), ("CBR", cbr), ("SLR", slr)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"DaT degradation parameter {name} = {v!r} is outside [0, 1]; "
                              f"{name} is a fraction of the normal specific binding")
