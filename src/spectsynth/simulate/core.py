"""Simulation of one subject: DaT, perfusion, FDG and the CBF pair, with their ground truth.

Each tracer's name, modality, isotope and uptake model come from its entry in :mod:`.registry`;
the tracer groups (``simulate.tracers``) are :data:`.registry.GROUPS`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import quant
from ..io import save_image
from ..labels import LEVELS
from . import config as sim_config
from .anatomy import Anatomy, resample_to_grid
from .config import ConfigError
from .grid import Grid, PreparedAnatomy, prepare
from .kinetics import CBFKinetics, reconstructed_to_activity
from .physics import Physics, image_properties, make_physics, measured_resolution
from .registry import DAT, FDG, GROUPS, WATER, tracer
from .tracers import (
    SUBJECT_STREAM,
    DatDegradation,
    PerfusionModel,
    PetSession,
    SubjectPhysiology,
    dat_design,
    draw_defects,
    region_field,
    rng_for,
)
from .truth import write_truth

log = logging.getLogger(__name__)

#: Columns of what a physicist measures on an image (:func:`measured_properties`); in a DaT or
#: perfusion stack they are measured on its first (normal) image and empty for the others.
MEASURED_KEYS = ("meas_fwhm_mm", "meas_fwtm_mm", "meas_tail_fraction", "meas_noise_cv", "meas_wm_cv",
                 "extracerebral_fraction")


@dataclass
class SimulatedStack:
    """Volumes of one tracer of one subject on one camera grid, with one record each."""

    subject: str
    tracer: str
    modality: str
    grid: Grid
    volumes: list[np.ndarray]
    records: list[dict]
    meta: dict = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # volumes outside the 4-D stack

    def to_nifti(self) -> nib.Nifti1Image:
        """3-D NIfTI for one volume, 4-D (volume index last) for several; float32 counts."""
        data = self.volumes[0] if len(self.volumes) == 1 else np.stack(self.volumes, axis=-1)
        img = nib.Nifti1Image(np.asarray(data, np.float32), self.grid.affine)
        img.set_qform(self.grid.affine, code=1)
        img.set_sform(self.grid.affine, code=1)
        img.header.set_xyzt_units("mm")
        img.header["descrip"] = f"spectsynth {self.tracer} {self.modality}"[:80]
        return img

    def write(self, nifti_path: str | Path, tsv_path: str | Path, json_path: str | Path) -> None:
        save_image(self.to_nifti(), nifti_path)
        write_truth(self.records, self.meta, tsv_path, json_path)


def to_anatomy_grid(volume: np.ndarray, grid: Grid, anat: Anatomy, *, order: int = 1) -> np.ndarray:
    """Resample a camera-grid volume onto the anatomy (T1w) grid, through world coordinates."""
    return resample_to_grid(np.asarray(volume, np.float32), grid.affine, anat.shape, anat.affine,
                            order=order).astype(np.float32)


def anatomy_grid_image(volume: np.ndarray, anat: Anatomy) -> nib.Nifti1Image:
    """A volume on the anatomy grid as NIfTI, stored as scaled int16 (a quarter of the size)."""
    img = nib.Nifti1Image(np.asarray(volume, np.float32), anat.affine)
    img.set_qform(anat.affine, code=1)
    img.set_sform(anat.affine, code=1)
    img.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm")
    return img


def _grid_meta(grid: Grid) -> dict:
    return {"shape": list(grid.shape), "voxel_mm": grid.voxel_mm, "affine": np.round(grid.affine, 4).tolist()}


def prepare_grid(anat: Anatomy, cfg: dict, modality: str) -> PreparedAnatomy:
    """``anat`` on the camera grid of ``modality`` ("spect" or "pet") of a resolved config."""
    c = cfg[modality]
    return prepare(anat, c["matrix"], c["voxel_mm"], cfg["head"], max_fine_mm=cfg["max_fine_voxel_mm"],
                   what=modality.upper())


def measured_properties(img: np.ndarray, act: np.ndarray, prep: PreparedAnatomy, physics: Physics,
                        total_counts: float, transform=None) -> dict:
    """What a physicist measures on one image: resolution (line source through the same physics),
    noise in the deep white matter against the noise-free image, signal outside the brain.

    ``transform`` maps a camera image to the written one (e.g. counts to mL/100 g/min); the
    noise-free image goes through it too.
    """
    expected = physics.image(act, prep, total_counts=float(total_counts), rng=None)
    if transform is not None:
        expected = transform(expected)
    return measured_resolution(physics, prep) | image_properties(img, expected, prep)


S2_SPECT_INDEX = 999_999  # random stream of the S2 perfusion SPECT (the subject's baseline with its focus)


def subject_physiology(anat: Anatomy, cfg: dict, *, age: float | None = None,
                       resection: np.ndarray | None = None) -> SubjectPhysiology:
    """The subject's physiology beyond its tissues (``simulate.physiology``), seeded by subject."""
    return SubjectPhysiology(anat, cfg, seed=cfg["seed"], age=age, resection=resection)


def _true_dat(act: np.ndarray, prep: PreparedAnatomy, reference: str) -> dict:
    return quant.quantify_dat(act, prep.fine_maps, reference)


def simulate_dat(anat: Anatomy, config: dict | None = None, *, threads: int | None = None,
                 prep: PreparedAnatomy | None = None, physics: Physics | None = None,
                 degradations: list[DatDegradation] | None = None,
                 physiology: SubjectPhysiology | None = None) -> SimulatedStack:
    """DaT SPECT of one subject: its normal image (index 0) and every degradation of the design.

    Each degraded image's ``pair_index`` is 0, its undegraded original.  ``degradations``
    overrides the configured design (its first entry should be the normal).
    """
    cfg = sim_config.resolve(config)
    dat = tracer(DAT)
    prep = prep or prepare_grid(anat, cfg, dat.modality)
    physics = physics or make_physics(cfg, dat.modality, dat.energy_keV, threads=threads, isotope=dat.isotope,
                                      noise_gain=cfg["dat"]["noise_gain"], tail_fraction=cfg["dat"]["tail_fraction"])
    model = dat.uptake_model(prep, cfg, physics, seed=cfg["seed"], physiology=physiology)
    design = degradations if degradations is not None else dat_design(cfg["dat"], cfg["seed"])
    ref = cfg["dat"]["reference"]
    counts = float(cfg["dat"]["total_counts"])
    volumes, records = [], []
    for index, deg in enumerate(design):
        rng = rng_for(cfg["seed"], anat.subject, dat.name, index)
        side = str(rng.choice(["L", "R"]))
        t0 = time.perf_counter()
        act, info = model.activity(deg, side)
        img = physics.image(act, prep, total_counts=counts, rng=rng)
        seconds = time.perf_counter() - t0
        true = _true_dat(act, prep, ref)
        meas = quant.quantify_dat(img, prep.camera_weights, ref)
        props = (measured_properties(img, act, prep, physics, counts) if index == 0 else {})
        volumes.append(img)
        records.append({
            "index": index, "subject": anat.subject, "tracer": dat.name, "modality": dat.modality,
            "pattern": "normal" if deg.is_normal else "degraded", "design_set": deg.design_set,
            "desc": deg.desc, "pbr": deg.pbr, "cbr": deg.cbr, "slr": deg.slr,
            "affected_side": None if deg.is_normal else side,
            "putamen_gradient_L": info["gradient_applied"]["L"], "putamen_gradient_R": info["gradient_applied"]["R"],
            "age": model.age, "normal_age_term": model.target_model.get("age_term"),
            "pair_index": 0, "seed": cfg["seed"], "reference": ref,
            "true": {k: v for k, v in true.items() if k != "reference_mean"},
            "meas": {k: v for k, v in meas.items() if k != "reference_mean"},
            "total_counts": physics.last_detected_counts, "image_sum": float(img.sum()), "physics": physics.name,
            **{k: props.get(k) for k in MEASURED_KEYS},
        })
        log.info("subject %s %s %d/%d %s: measured SBR caudate %.2f putamen %.2f (%.2f s)", anat.subject, dat.name,
                 index + 1, len(design), deg.desc, meas["sbr_caudate"], meas["sbr_putamen"], seconds)
    meta = {"subject": anat.subject, "tracer": dat.name, "modality": dat.modality, "isotope": dat.isotope,
            "energy_keV": dat.energy_keV, "units": "counts", "physics": physics.describe(),
            "grid": _grid_meta(prep.camera), "seed": cfg["seed"],
            "random_stream": f"numpy SeedSequence(seed, crc32(subject), crc32({dat.name!r}), index)",
            "reference": ref, "total_counts_setting": counts,
            "calibration": {"target_normal_sbr": model.targets, "normal_sbr_model": model.target_model,
                            "specific_binding": model.specific,
                            "nonspecific": cfg["dat"]["nonspecific"], "method": (
                                "linear solve on the physics' noise-free response" if physics.calibration_is_exact else
                                "linear solve at the collimator resolution, refined with noise-free reconstructions")},
            "level_slices": prep.level_slices(), "levels_mm": prep.levels_mm,
            "putamen_gradient": cfg["dat"]["putamen_gradient"]}
    return SimulatedStack(anat.subject, dat.name, dat.modality, prep.camera, volumes, records, meta)


def _hemisphere_weights(prep: PreparedAnatomy, side: str, slices: tuple[int, int] | None = None) -> np.ndarray:
    w = prep.camera_weights["brain"] * prep.side_mask_camera(side)
    if slices is not None:
        w = w.copy()
        w[:, :, : slices[0]] = 0
        w[:, :, slices[1]:] = 0
    return w


def _perfusion_record(anat: Anatomy, tracer: str, index: int, pattern: str, defects, info, levels, img, act,
                      prep: PreparedAnatomy, model: PerfusionModel | None, physics: Physics, seed: int) -> dict:
    w = prep.camera_weights
    rec = {
        "index": index, "subject": anat.subject, "tracer": tracer, "modality": physics_modality(physics),
        "pattern": pattern, "n_defects": len(defects),
        "territories": [d.territory for d in defects], "depths": [round(d.depth, 4) for d in defects],
        "radii_mm": [round(d.radius_mm, 1) for d in defects],
        "centres_mm": [";".join(f"{v:.1f}" for v in d.centre_mm) for d in defects],
        "diaschisis_side": info.get("diaschisis_side"), "diaschisis_depth": info.get("diaschisis_depth", 0.0),
        "seed": seed,
    }
    for level in LEVELS:
        lv = levels.get(level)
        rec[f"pattern_{level}"] = lv["pattern"] if lv else None
        for side in ("L", "R"):
            rec[f"defect_ml_{level}_{side}"] = lv[f"defect_ml_{side}"] if lv else None
            rec[f"defect_depth_{level}_{side}"] = lv[f"defect_depth_{side}"] if lv else None
    fm = prep.fine_maps
    rec["true_gm_wm"] = quant.grey_white_ratio(act, fm["gm_mask"], fm["wm_mask"])
    rec["meas_gm_wm"] = quant.grey_white_ratio(img, w["gm_mask"], w["wm_mask"])
    rec["meas_csf_gm"] = quant.weighted_mean(img, w["csf_mask"], missing="nan") / quant.weighted_mean(img, w["gm_mask"])
    rec["meas_lr_ratio"] = quant.left_right_ratio(img, _hemisphere_weights(prep, "L"), _hemisphere_weights(prep, "R"))
    for level, sl in prep.level_slices().items():
        rec[f"meas_lr_{level}"] = quant.left_right_ratio(img, _hemisphere_weights(prep, "L", sl),
                                                         _hemisphere_weights(prep, "R", sl), missing="nan")
    rec["total_counts"] = physics.last_detected_counts
    rec["image_sum"] = float(img.sum())
    rec["physics"] = physics.name
    return rec


def physics_modality(physics: Physics) -> str:
    return getattr(physics, "modality", "spect")


def perfusion_patterns(pf_cfg: dict) -> list[str]:
    return (["normal"] * int(pf_cfg["n_normal"]) + ["unilateral"] * int(pf_cfg["n_unilateral"])
            + ["bilateral"] * int(pf_cfg["n_bilateral"]))


def simulate_perfusion(anat: Anatomy, config: dict | None = None, *, threads: int | None = None,
                       prep: PreparedAnatomy | None = None, physics: Physics | None = None,
                       physiology: SubjectPhysiology | None = None) -> SimulatedStack:
    """Perfusion SPECT of one subject: ``n_normal`` normal, then unilateral, then bilateral defects.

    Every volume carries the subject's regional and global perfusion (``physiology``, drawn
    from the config when not given).  ``extra["s2_spect"]`` is S2's SPECT: the subject's
    defect-free perfusion with its epileptic focus, recorded in ``meta["s2_spect"]``.
    """
    cfg = sim_config.resolve(config)
    pf = cfg["perfusion"]
    agent = tracer(pf["tracer"])
    prep = prep or prepare_grid(anat, cfg, agent.modality)
    physics = physics or make_physics(cfg, agent.modality, agent.energy_keV, threads=threads, isotope=agent.isotope)
    phys = physiology or subject_physiology(anat, cfg)
    model = agent.uptake_model(prep, cfg, physics, physiology=phys, tracer=agent.name)
    volumes, records = [], []
    patterns = perfusion_patterns(pf)
    for index, pattern in enumerate(patterns):
        rng = rng_for(cfg["seed"], anat.subject, agent.name, index)
        defects = draw_defects(prep, pattern, pf, rng)
        act, normal, info = model.activity(defects)
        levels = model.level_patterns(act, normal)
        t0 = time.perf_counter()
        img = physics.image(act, prep, total_counts=float(pf["total_counts"]), rng=rng)
        rec = _perfusion_record(anat, agent.name, index, pattern, defects, info, levels, img, act, prep, model,
                                physics, cfg["seed"]) | phys.record(agent.name, focus=False)
        props = measured_properties(img, act, prep, physics, pf["total_counts"]) if index == 0 else {}
        rec |= {k: props.get(k) for k in MEASURED_KEYS}
        volumes.append(img)
        records.append(rec)
        log.info("subject %s %s %d/%d %s: measured GM:WM %.2f (%.2f s)", anat.subject, agent.name, index + 1,
                 len(patterns), pattern, rec["meas_gm_wm"], time.perf_counter() - t0)
    meta = {"subject": anat.subject, "tracer": agent.name, "modality": agent.modality, "isotope": agent.isotope,
            "energy_keV": agent.energy_keV,
            "units": "counts", "physics": physics.describe(), "grid": _grid_meta(prep.camera), "seed": cfg["seed"],
            "calibration": {"target_gm_wm": model.target, "true_gm_wm": model.gm_to_wm},
            "level_slices": prep.level_slices(), "levels_mm": prep.levels_mm,
            "settings": {k: pf[k] for k in ("defect_depth", "defect_radius_mm", "penumbra_fwhm_mm", "diaschisis",
                                            "level_min_reduction", "level_min_volume_ml", "territories")}}
    # S2's SPECT: the subject's own perfusion (no territorial defect) with its epileptic focus,
    # imaged with the interictal tracer (a 99mTc agent by default: its own contrast and camera tail).
    ic = cfg["interictal"]
    ic_agent = tracer(ic["tracer"])
    ic_tracer = ic_agent.name
    ic_physics = physics if ic_agent.isotope == agent.isotope else make_physics(
        cfg, ic_agent.modality, ic_agent.energy_keV, threads=threads, isotope=ic_agent.isotope)
    ic_model = ic_agent.uptake_model(prep, cfg, ic_physics, physiology=phys, tracer=ic_tracer,
                                     gm_wm_ratio=float(ic["gm_wm_ratio"]))
    rng = rng_for(cfg["seed"], anat.subject, ic_tracer, S2_SPECT_INDEX)
    act = ic_model.normal_activity(focus=True)
    img = ic_physics.image(act, prep, total_counts=float(ic["total_counts"]), rng=rng)
    meta["s2_spect"] = _pet_record(anat, ic_tracer, S2_SPECT_INDEX, "interictal", img, act, prep, ic_physics,
                                   cfg["seed"], phys.record(ic_tracer, focus=True)
                                   | measured_properties(img, act, prep, ic_physics, ic["total_counts"]))
    meta["s2_spect"] |= {"true_gm_wm_tissue": ic_model.gm_to_wm, "target_gm_wm": ic_model.target}
    meta["interictal"] = {"tracer": ic_tracer, "physics": ic_physics.describe()}
    meta["physiology"] = cfg["physiology"]
    return SimulatedStack(anat.subject, agent.name, agent.modality, prep.camera, volumes, records, meta,
                          extra={"s2_spect": img})


def _pet_record(anat, tracer, index, pattern, img, act, prep, physics, seed, extra=None) -> dict:
    w, fm = prep.camera_weights, prep.fine_maps
    rec = {"index": index, "subject": anat.subject, "tracer": tracer, "modality": physics_modality(physics),
           "pattern": pattern, "seed": seed,
           "true_gm_wm": quant.grey_white_ratio(act, fm["gm_mask"], fm["wm_mask"]),
           "meas_gm_wm": quant.grey_white_ratio(img, w["gm_mask"], w["wm_mask"]),
           "meas_csf_gm": quant.weighted_mean(img, w["csf_mask"], missing="nan") / quant.weighted_mean(img, w["gm_mask"]),
           "total_counts": physics.last_detected_counts, "image_sum": float(img.sum()), "physics": physics.name}
    rec.update(extra or {})
    return rec


@dataclass
class PetSimulation:
    """FDG-PET (PET grid) and the CBF pair (SPECT-CBF on the SPECT grid, PET-CBF on the PET grid)."""

    fdg: SimulatedStack
    cbf_spect: SimulatedStack
    cbf_pet: SimulatedStack


def simulate_pet(anat: Anatomy, config: dict | None = None, *, threads: int | None = None,
                 physiology: SubjectPhysiology | None = None) -> PetSimulation:
    """FDG-PET and the PET-CBF / SPECT-CBF pair (one perfusion map imaged by both).

    The FDG carries the subject's metabolic physiology with its epileptic focus (S2's PET);
    the CBF pair its perfusion physiology (regional and global, no focus).
    """
    cfg = sim_config.resolve(config)
    pf = cfg["perfusion"]
    fdg_t, water, agent = tracer(FDG), tracer(WATER), tracer(pf["tracer"])
    pet_prep = prepare_grid(anat, cfg, fdg_t.modality)  # one PET grid and camera for FDG and 15O-water
    pet_physics = make_physics(cfg, fdg_t.modality, fdg_t.energy_keV)
    seed = cfg["seed"]
    phys = physiology or subject_physiology(anat, cfg)
    # FDG
    rng = rng_for(seed, anat.subject, fdg_t.name, 0)
    act = fdg_t.uptake_model(pet_prep, cfg, phys, focus=True, tracer=fdg_t.name)
    img = pet_physics.image(act, pet_prep, total_counts=float(cfg["fdg"]["total_counts"]), rng=rng)
    fdg_meta = {"subject": anat.subject, "tracer": fdg_t.name, "modality": fdg_t.modality, "isotope": fdg_t.isotope,
                "units": "counts", "physics": pet_physics.describe(), "grid": _grid_meta(pet_prep.camera), "seed": seed,
                "ratios": cfg["fdg"]["ratios"], "level_slices": pet_prep.level_slices()}
    fdg_props = measured_properties(img, act, pet_prep, pet_physics, cfg["fdg"]["total_counts"])
    fdg = SimulatedStack(anat.subject, fdg_t.name, fdg_t.modality, pet_prep.camera, [img],
                         [_pet_record(anat, fdg_t.name, 0, "interictal" if phys.focus else "normal", img, act,
                                      pet_prep, pet_physics, seed, phys.record(fdg_t.name, focus=True) | fdg_props)],
                         fdg_meta)
    # CBF pair: one perfusion map (true GM:WM from the SPECT calibration), two cameras.
    spect_prep = prepare_grid(anat, cfg, agent.modality)
    spect_physics = make_physics(cfg, agent.modality, agent.energy_keV, threads=threads, isotope=agent.isotope)
    spect_model = agent.uptake_model(spect_prep, cfg, spect_physics, physiology=phys, tracer=agent.name)
    pet_model = water.uptake_model(pet_prep, cfg, pet_physics, gm_to_wm=spect_model.gm_to_wm, physiology=phys,
                                   tracer=water.name)
    session = PetSession.draw(cfg["cbf"]["pet_session"], seed, anat.subject)
    rng = rng_for(seed, anat.subject, "CBF", 0)
    pattern = cfg["cbf"]["pattern"]
    if pattern == "random":
        pattern = str(rng.choice(["normal", "unilateral", "bilateral"]))
    defects = draw_defects(spect_prep, pattern, pf, rng)
    kin_cfg = cfg["cbf"]["kinetics"]
    kin = CBFKinetics.draw(kin_cfg, rng_for(seed, anat.subject, "CBF-kinetics", 0)) if kin_cfg["enabled"] else None
    pair = {}
    for name, prep, physics, model, counts, trc in (
            ("cbf_spect", spect_prep, spect_physics, spect_model, pf["total_counts"], agent.name),
            ("cbf_pet", pet_prep, pet_physics, pet_model, cfg["cbf"]["pet_total_counts"], water.name)):
        act, normal, info = model.activity(defects)
        levels = model.level_patterns(act, normal)
        noise = rng_for(seed, anat.subject, f"CBF-{name}", 0)
        units, extra = "counts", {}
        if kin is None:
            if name == "cbf_pet":  # the PET's own day: global and territorial flow differ
                act = (act * session.global_factor
                       * region_field(prep, session.territories, float(cfg["physiology"]["regional_fwhm_mm"])))
            img = physics.image(act, prep, total_counts=float(counts), rng=noise)
            extra = measured_properties(img, act, prep, physics, counts)
        else:
            # One true flow map; each tracer's own uptake goes through the camera, and the
            # reconstructed image is quantified back to mL/100 g/min as that tracer's method does.
            flow = kin.flow_map(act, model.gm_to_wm)
            if name == "cbf_pet":  # the PET's own day: global and territorial flow differ
                flow = session.flow(flow, prep, float(cfg["physiology"]["regional_fwhm_mm"]))
            uptake = kin.imp_uptake(flow) if name == "cbf_spect" else kin.water_uptake(flow)

            def to_flow(counts_img, uptake=uptake, name=name, prep=prep):
                out = reconstructed_to_activity(counts_img, uptake, prep.factor)
                return kin.imp_flow(out) if name == "cbf_spect" else session.quantify(out)

            counts_img = physics.image(uptake, prep, total_counts=float(counts), rng=noise)
            img = to_flow(counts_img)
            units = "mL/100g/min"
            cw = prep.camera_weights
            extra = kin.record() | {
                "true_gm_flow_map": quant.weighted_mean(flow, prep.fine_maps["gm_mask"], name="GM"),
                "true_wm_flow_map": quant.weighted_mean(flow, prep.fine_maps["wm_mask"], name="WM"),
                "meas_gm_flow": quant.weighted_mean(img, cw["gm_mask"], name="GM"),
                "meas_wm_flow": quant.weighted_mean(img, cw["wm_mask"], name="WM")}
            extra |= measured_properties(img, uptake, prep, physics, counts, transform=to_flow)
        if name == "cbf_pet":
            extra |= session.record()
        rec = _perfusion_record(anat, trc, 0, pattern, defects, info, levels, img, act, prep, model, physics, seed)
        rec["pair"] = name
        rec["units"] = units
        rec.update(extra)
        meta = {"subject": anat.subject, "tracer": trc, "modality": physics_modality(physics), "units": units,
                "physics": physics.describe(), "grid": _grid_meta(prep.camera), "seed": seed,
                "true_gm_wm": model.gm_to_wm, "pair_of": "cbf_pet" if name == "cbf_spect" else "cbf_spect",
                "level_slices": prep.level_slices()}
        if kin is not None:
            meta["kinetics"] = kin.record()
        pair[name] = SimulatedStack(anat.subject, trc, physics_modality(physics), prep.camera, [img], [rec], meta)
    for stack in pair.values():
        stack.records[0] |= phys.record(stack.tracer, focus=False)
    pair["cbf_pet"].meta["pet_session"] = session.record()
    return PetSimulation(fdg=fdg, cbf_spect=pair["cbf_spect"], cbf_pet=pair["cbf_pet"])


def simulate_subject(anat: Anatomy, config: dict | None = None, *, tracers: tuple[str, ...] | None = None,
                     threads: int | None = None, age: float | None = None,
                     resection: np.ndarray | None = None) -> dict[str, object]:
    """Everything the default studies need for one subject.

    Returns ``{"DaT": SimulatedStack, "perfusion": SimulatedStack, "pet": PetSimulation}``
    for the requested ``tracers`` (default: the config's ``tracers``).
    """
    cfg = sim_config.resolve(config)
    tracers = tuple(cfg["tracers"] if tracers is None else tracers)
    unknown = set(tracers) - set(GROUPS)
    if unknown:
        raise ConfigError(f"unknown tracer group(s) {sorted(unknown)}; choose {', '.join(GROUPS)}")
    out: dict[str, object] = {}
    prep = None
    phys = subject_physiology(anat, cfg, age=age, resection=resection)
    if "DaT" in tracers or "perfusion" in tracers:
        prep = prepare_grid(anat, cfg, "spect")
    if "DaT" in tracers:
        out["DaT"] = simulate_dat(anat, cfg, threads=threads, prep=prep, physiology=phys)
    if "perfusion" in tracers:
        out["perfusion"] = simulate_perfusion(anat, cfg, threads=threads, prep=prep, physiology=phys)
    if "pet" in tracers:
        out["pet"] = simulate_pet(anat, cfg, threads=threads, physiology=phys)
    return out


__all__ = ["SUBJECT_STREAM", "PetSimulation", "SimulatedStack", "anatomy_grid_image", "perfusion_patterns", "prepare_grid",
           "simulate_dat", "simulate_perfusion", "simulate_pet", "simulate_subject", "subject_physiology",
           "to_anatomy_grid"]
