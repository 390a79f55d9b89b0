"""File-level entry points of the simulation rules: read inputs, simulate, write outputs.

Each workflow script calls exactly one of these with ``snakemake.input``/``output``
mappings, the ``simulate`` config section, the subject and the thread count.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import InputDataError
from ..io import load_image, write_json, write_table
from . import config as sim_config
from .anatomy import ANATOMY_KEYS, load_anatomy
from .core import simulate_dat, simulate_perfusion, simulate_pet, subject_physiology
from .frames import read_truth as read_scan_truth
from .frames import to_scanner_frame, write_scan
from .plots import Panel, montage, sbr_distribution
from .registry import DAT, GROUPS, SCANS, TRACERS
from .tracers import load_resection
from .truth import read_truth, write_truth

log = logging.getLogger(__name__)


def _need(mapping: Mapping, keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise KeyError(f"{what}: missing named file(s) {', '.join(missing)}")


def _anatomy(anatomy: Mapping, subject: str):
    _need(anatomy, ANATOMY_KEYS, "anatomy inputs")
    return load_anatomy({k: anatomy[k] for k in ANATOMY_KEYS}, subject)


def _physiology(anat, cfg: dict, anatomy: Mapping, age: float | None):
    """The subject's physiology; ``anatomy`` may name a ``resection`` cavity mask (demo ground truth)."""
    return subject_physiology(anat, cfg, age=age, resection=load_resection(anatomy.get("resection"), anat))


def run_dat(anatomy: Mapping[str, str], outputs: Mapping[str, str], config: Mapping | None, subject: str,
            threads: int = 1, age: float | None = None) -> None:
    """DaT stack of one subject: ``outputs`` has ``nifti``, ``json`` and ``truth`` (TSV)."""
    _need(outputs, ("nifti", "json", "truth"), "simulate_dat outputs")
    cfg = sim_config.resolve(config)
    t0 = time.perf_counter()
    anat = _anatomy(anatomy, subject)
    stack = simulate_dat(anat, cfg, threads=threads, physiology=_physiology(anat, cfg, anatomy, age))
    stack.write(outputs["nifti"], outputs["truth"], outputs["json"])
    log.info("subject %s: %d DaT volumes in %.1f s", subject, len(stack.volumes), time.perf_counter() - t0)


def _scan(stack, volume: np.ndarray, anat, cfg: dict, scan: str, nifti: str, sidecar: str,
          units: str = "counts", tracer: str | None = None) -> dict:
    """Write ``volume`` (on ``stack``'s camera grid) in its own scanner frame; return its pose/FOV record."""
    sc = to_scanner_frame(volume, stack.grid.affine, anat.brain, anat.affine, frames_cfg=cfg["frames"],
                          modality=stack.modality, seed=cfg["seed"], subject=anat.subject, scan=scan,
                          centre_mm=stack.grid.centre)
    write_scan(sc, nifti, sidecar, subject=anat.subject, scan=scan, modality=stack.modality,
               tracer=tracer or stack.tracer,
               units=units, source_grid=stack.meta.get("grid"))
    log.info("subject %s %s: scanner frame %s at %s mm, pose %s deg / %s mm, brain in FOV %.3f", anat.subject,
             scan, "x".join(map(str, sc.matrix)), "x".join(f"{v:g}" for v in sc.voxel_mm),
             sc.pose.record()["rotation_deg"], sc.pose.record()["shift_mm"], sc.fov["brain_in_fov"])
    return {"pose_rotation_deg": ";".join(f"{v:.2f}" for v in sc.pose.rotation_deg),
            "pose_shift_mm": ";".join(f"{v:.2f}" for v in sc.pose.shift_mm), **sc.fov}


def run_perfusion(anatomy: Mapping[str, str], outputs: Mapping[str, str], config: Mapping | None, subject: str,
                  threads: int = 1, age: float | None = None) -> None:
    """Perfusion stack of one subject; ``scan`` gets S2's SPECT (the subject's perfusion with its
    epileptic focus, no territorial defect) in its own scanner frame."""
    _need(outputs, ("nifti", "json", "truth", "scan", "scan_json"), "simulate_perfusion outputs")
    cfg = sim_config.resolve(config)
    anat = _anatomy(anatomy, subject)
    stack = simulate_perfusion(anat, cfg, threads=threads, physiology=_physiology(anat, cfg, anatomy, age))
    stack.write(outputs["nifti"], outputs["truth"], outputs["json"])
    _scan(stack, stack.extra["s2_spect"], anat, cfg, "perfusion", outputs["scan"], outputs["scan_json"],
          tracer=cfg["interictal"]["tracer"])


def run_pet(anatomy: Mapping[str, str], outputs: Mapping[str, str], config: Mapping | None, subject: str,
            threads: int = 1, age: float | None = None) -> None:
    """FDG-PET and the CBF pair, each in its own scanner frame, with one truth table."""
    keys = GROUPS["pet"].scans
    _need(outputs, (*keys, *(f"{k}_json" for k in keys), "json", "truth"), "simulate_pet outputs")
    cfg = sim_config.resolve(config)
    anat = _anatomy(anatomy, subject)
    sim = simulate_pet(anat, cfg, threads=threads, physiology=_physiology(anat, cfg, anatomy, age))
    records, meta = [], {"subject": subject, "stacks": {}}
    for name in keys:
        stack = getattr(sim, name)
        units = stack.meta.get("units", "counts")
        frame = _scan(stack, stack.volumes[0], anat, cfg, name, outputs[name], outputs[f"{name}_json"], units)
        rec = dict(stack.records[0]) | {"volume": name, "file": Path(outputs[name]).name} | frame
        records.append(rec)
        meta["stacks"][name] = stack.meta
    write_truth(records, meta, outputs["truth"], outputs["json"])


def _load_4d(path: str | Path, subject: str) -> tuple[np.ndarray, np.ndarray]:
    if not Path(path).exists():
        raise InputDataError("file does not exist", subject=subject, path=path,
                             hint="Run the simulation rules of this subject first")
    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def _colormap(tracer: str | None) -> str:
    """The montage colour map of a tracer (its registry entry; the panels' default for an unknown one)."""
    return TRACERS[tracer].colormap if tracer in TRACERS else Panel.cmap


def run_montage(inputs: Mapping[str, str], output: str | Path, subject: str) -> None:
    """Montage of one subject's simulated images next to its T1w.

    ``inputs`` keys: ``t1w``; optional ``dat`` + ``dat_json``, ``perfusion`` +
    ``perfusion_json``, ``fdg``, ``cbf_spect``, ``cbf_pet`` (any subset).
    """
    _need(inputs, ("t1w",), "plot_simulation inputs")
    t1_img = load_image(inputs["t1w"], subject=subject)
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    panels: list[Panel] = []
    levels_mm: dict[str, list[float]] = {}
    if "perfusion_json" in inputs:
        levels_mm = json.loads(Path(inputs["perfusion_json"]).read_text()).get("levels_mm", {})
    elif "dat_json" in inputs:
        levels_mm = json.loads(Path(inputs["dat_json"]).read_text()).get("levels_mm", {})

    def z_of(level: str, default: float = 5.0) -> float:
        lv = levels_mm.get(level)
        return float(np.mean(lv)) if lv else default

    if "dat" in inputs:
        data, aff = _load_4d(inputs["dat"], subject)
        vols = data if data.ndim == 4 else data[..., None]
        records = json.loads(Path(inputs["dat_json"]).read_text())["volumes"] if "dat_json" in inputs else []
        cmap = _colormap(DAT)
        panels.append(Panel(f"{DAT} normal", vols[..., 0], aff, z_of("BG"), cmap))
        if records and vols.shape[-1] > 1:
            worst = min((r for r in records if r["pattern"] != "normal"), key=lambda r: r["pbr"] + r["cbr"])
            panels.append(Panel(f"{DAT} PBR {worst['pbr']:g} CBR {worst['cbr']:g} SLR {worst['slr']:g}",
                                vols[..., worst["index"]], aff, z_of("BG"), cmap))
    if "perfusion" in inputs:
        data, aff = _load_4d(inputs["perfusion"], subject)
        vols = data if data.ndim == 4 else data[..., None]
        meta = json.loads(Path(inputs["perfusion_json"]).read_text()) if "perfusion_json" in inputs else {}
        tracer = meta.get("tracer", "perfusion")
        shown = set()
        for rec in meta.get("volumes", [{"index": 0, "pattern": "normal"}]):
            if rec["pattern"] in shown:
                continue
            shown.add(rec["pattern"])
            level = next((lv for lv in ("COR", "BG", "CER") if rec.get(f"pattern_{lv}") not in (None, "normal")), "BG")
            terr = ", ".join(rec.get("territories", []))
            title = " ".join(p for p in (tracer, rec["pattern"], terr, f"({level})") if p)
            panels.append(Panel(title, vols[..., rec["index"]], aff, z_of(level), _colormap(tracer)))
    for key in GROUPS["pet"].scans:
        if key in inputs:
            data, aff = _load_4d(inputs[key], subject)
            tracer = SCANS[key].tracer
            if f"{key}_json" in inputs:  # a scanner frame: shown where its true pose puts it in the T1w
                pose = np.asarray(read_scan_truth(inputs[f"{key}_json"])["pose"]["t1w_to_scanner"], float)
                aff = np.linalg.inv(pose) @ aff
                tracer = json.loads(Path(inputs[f"{key}_json"]).read_text()).get("TracerName", tracer)
            panels.append(Panel(SCANS[key].title, data if data.ndim == 3 else data[..., 0], aff, z_of("BG"),
                                _colormap(tracer)))
    montage(t1, t1_img.affine, panels, output, subject=subject)


def run_summary(dat_truth: Sequence[str], outputs: Mapping[str, str], *, perfusion_truth: Sequence[str] = (),
                pet_truth: Sequence[str] = ()) -> None:
    """Cohort truth tables and the SBR-distribution figure.

    ``outputs`` keys: ``dat`` (TSV), ``figure`` (PNG); optional ``perfusion`` and ``pet`` (TSV).
    """
    _need(outputs, ("dat", "figure"), "summarize_simulation outputs")
    table = read_truth(dat_truth)
    for key, paths in (("dat", dat_truth), ("perfusion", perfusion_truth), ("pet", pet_truth)):
        if key in outputs:
            t = table if key == "dat" else read_truth(paths)
            write_table(t, outputs[key], what=f"cohort {key} truth table", na_rep="n/a")
    sbr_distribution(table, outputs["figure"])
    if "summary" in outputs:
        write_json(summary_stats(table), outputs["summary"])


def summary_stats(table: pd.DataFrame) -> dict:
    """Mean, SD and CV (SD / mean) of the measured SBR of the normal images; means of the degraded ones by PBR."""
    out: dict[str, dict] = {}
    normal = table[table["pattern"] == "normal"]
    cols = ["meas_sbr_caudate", "meas_sbr_putamen", "meas_ai_putamen", "meas_pc_ratio"]
    out["normal"] = {}
    for c in cols:
        mean, sd = float(normal[c].mean()), float(normal[c].std(ddof=0))
        out["normal"][c] = {"mean": mean, "sd": sd, "cv": sd / mean if mean else None}
    out["by_pbr"] = {f"{p:g}": {c: float(g[c].mean()) for c in cols}
                     for p, g in table[table["pattern"] != "normal"].groupby("pbr")}
    return out
