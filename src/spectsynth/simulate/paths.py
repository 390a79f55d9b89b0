"""File names of the simulation stage (inputs from the anatomy stage, outputs, targets).

The Snakemake rules and any later stage that reads simulated volumes use these functions, so
every name is defined once.  ``subject`` may be a Snakemake wildcard pattern ("{subject}").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .config import DEFAULTS


def _sim(cfg: Mapping | None) -> dict:
    cfg = dict(cfg or {})
    return {
        "tracers": list(cfg.get("tracers", DEFAULTS["tracers"])),
        "perfusion_tracer": dict(cfg.get("perfusion", {})).get("tracer", DEFAULTS["perfusion"]["tracer"]),
    }


def anatomy_files(out: str, subject: str = "{subject}") -> dict[str, str]:
    """The anatomy stage's files of one subject (keys of :data:`.anatomy.ANATOMY_KEYS`)."""
    a = f"{out}/sub-{subject}/anat/sub-{subject}"
    return {
        "brain": f"{a}_desc-brain_mask.nii.gz",
        "striatum": f"{a}_desc-striatum_dseg.nii.gz",
        "reference": f"{a}_desc-reference_dseg.nii.gz",
        "territories": f"{a}_desc-territories_dseg.nii.gz",
        "gm": f"{a}_label-GM_probseg.nii.gz",
        "wm": f"{a}_label-WM_probseg.nii.gz",
        "csf": f"{a}_label-CSF_probseg.nii.gz",
        "levels": f"{a}_levels.tsv",
    }


def t1w_file(out: str, subject: str = "{subject}") -> str:
    """The T1w the montage is drawn on (the input stage's RAS+ copy, same world space)."""
    return f"{out}/sub-{subject}/anat/sub-{subject}_desc-ras_T1w.nii.gz"


def dat_files(out: str, subject: str = "{subject}") -> dict[str, str]:
    """DaT stack (4-D, volume 0 = normal), its JSON sidecar and its truth table."""
    s = f"{out}/sub-{subject}/spect/sub-{subject}_trc-DaT"
    return {"nifti": f"{s}_spect.nii.gz", "json": f"{s}_spect.json", "truth": f"{s}_truth.tsv"}


def perfusion_files(out: str, subject: str = "{subject}", cfg: Mapping | None = None) -> dict[str, str]:
    """Perfusion stack, sidecar, truth table, and the normal volume on the T1w grid (S2's SPECT)."""
    tracer = _sim(cfg)["perfusion_tracer"]
    s = f"{out}/sub-{subject}/spect/sub-{subject}_trc-{tracer}"
    return {"nifti": f"{s}_spect.nii.gz", "json": f"{s}_spect.json", "truth": f"{s}_truth.tsv",
            "t1w": f"{s}_space-T1w_spect.nii.gz"}


def pet_files(out: str, subject: str = "{subject}", cfg: Mapping | None = None) -> dict[str, str]:
    """FDG-PET (PET grid and T1w grid), the CBF pair on the T1w grid, one truth table + JSON."""
    tracer = _sim(cfg)["perfusion_tracer"]
    p = f"{out}/sub-{subject}/pet/sub-{subject}"
    s = f"{out}/sub-{subject}/spect/sub-{subject}"
    return {
        "fdg": f"{p}_trc-FDG_pet.nii.gz",
        "fdg_t1w": f"{p}_trc-FDG_space-T1w_pet.nii.gz",
        "cbf_pet": f"{p}_trc-H2O_space-T1w_desc-cbf_pet.nii.gz",
        "cbf_spect": f"{s}_trc-{tracer}_space-T1w_desc-cbf_spect.nii.gz",
        "json": f"{p}_desc-simulation_truth.json",
        "truth": f"{p}_desc-simulation_truth.tsv",
    }


def montage_file(out: str, subject: str = "{subject}") -> str:
    return f"{out}/sub-{subject}/figures/sub-{subject}_desc-simulation_montage.png"


def montage_inputs(out: str, subject: str, cfg: Mapping | None = None) -> dict[str, str]:
    """Named inputs of the montage of one subject (what the configured tracers produce)."""
    tracers = _sim(cfg)["tracers"]
    files = {"t1w": t1w_file(out, subject)}
    if "DaT" in tracers:
        d = dat_files(out, subject)
        files |= {"dat": d["nifti"], "dat_json": d["json"]}
    if "perfusion" in tracers:
        p = perfusion_files(out, subject, cfg)
        files |= {"perfusion": p["nifti"], "perfusion_json": p["json"]}
    if "pet" in tracers:
        q = pet_files(out, subject, cfg)
        files |= {k: q[k] for k in ("fdg", "cbf_spect", "cbf_pet")}
    return files


def summary_files(out: str, cfg: Mapping | None = None) -> dict[str, str]:
    """Cohort outputs: truth tables, the DaT summary and the SBR-distribution figure."""
    tracers = _sim(cfg)["tracers"]
    files = {"dat": f"{out}/simulation/truth_dat.tsv", "summary": f"{out}/simulation/summary_dat.json",
             "figure": f"{out}/figures/simulation_sbr_distribution.png"}
    if "perfusion" in tracers:
        files["perfusion"] = f"{out}/simulation/truth_perfusion.tsv"
    if "pet" in tracers:
        files["pet"] = f"{out}/simulation/truth_pet.tsv"
    return files


def summary_inputs(out: str, subjects: Sequence[str], cfg: Mapping | None = None) -> dict[str, list[str]]:
    tracers = _sim(cfg)["tracers"]
    files = {"dat": [dat_files(out, s)["truth"] for s in subjects]}
    if "perfusion" in tracers:
        files["perfusion"] = [perfusion_files(out, s, cfg)["truth"] for s in subjects]
    if "pet" in tracers:
        files["pet"] = [pet_files(out, s, cfg)["truth"] for s in subjects]
    return files


def targets(out: str, subjects: Sequence[str], cfg: Mapping | None = None) -> list[str]:
    """Every output of the simulation stage for ``rule all``."""
    tracers = _sim(cfg)["tracers"]
    files: list[str] = []
    for s in subjects:
        if "DaT" in tracers:
            files += list(dat_files(out, s).values())
        if "perfusion" in tracers:
            files += list(perfusion_files(out, s, cfg).values())
        if "pet" in tracers:
            files += list(pet_files(out, s, cfg).values())
        files.append(montage_file(out, s))
    if "DaT" in tracers and subjects:
        files += list(summary_files(out, cfg).values())
    return files
