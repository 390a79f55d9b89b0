"""File names of the simulation stage (inputs from the anatomy stage, outputs, targets).

The Snakemake rules and any later stage that reads simulated volumes use these functions, so
every name is defined once.  ``subject`` may be a Snakemake wildcard pattern ("{subject}").
A file's ``trc-`` label, its modality and the scans of each tracer group come from
:mod:`.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..paths import bids, entities_of
from .config import DEFAULTS
from .registry import DAT, GROUPS, SCANS, TRACER_SECTIONS, Scan, tracer


def _sim(cfg: Mapping | None) -> dict:
    """The configured tracer groups and, per section that chooses a tracer, its tracer (defaults filled in)."""
    cfg = dict(cfg or {})
    return {
        "tracers": list(cfg.get("tracers", DEFAULTS["tracers"])),
        "chosen": {sec: dict(cfg.get(sec, {})).get("tracer", DEFAULTS[sec]["tracer"]) for sec in TRACER_SECTIONS},
    }


def _entities(scan: Scan, chosen: Mapping[str, str]) -> tuple[str, str, str]:
    """(modality, trc, desc) of a scan, the entity strings with their leading underscore."""
    t = scan.tracer_of(chosen)
    return t.modality, f"_trc-{t.trc}", f"_desc-{scan.desc}" if scan.desc else ""


def anatomy_files(out: str, subject: str = "{subject}") -> dict[str, str]:
    """The anatomy stage's files of one subject (keys of :data:`.anatomy.ANATOMY_KEYS`)."""
    def a(**kw):
        return bids(out, subject=subject, datatype="anat", **kw)

    return {
        "brain": a(desc="brain", suffix="mask"),
        "striatum": a(desc="striatum", suffix="dseg"),
        "reference": a(desc="reference", suffix="dseg"),
        "territories": a(desc="territories", suffix="dseg"),
        "gm": a(label="GM", suffix="probseg"),
        "wm": a(label="WM", suffix="probseg"),
        "csf": a(label="CSF", suffix="probseg"),
        "levels": a(suffix="levels", extension=".tsv"),
    }


def t1w_file(out: str, subject: str = "{subject}") -> str:
    """The T1w the montage is drawn on (the input stage's RAS+ copy, same world space)."""
    return bids(out, subject=subject, datatype="anat", desc="ras", suffix="T1w")


def dat_files(out: str, subject: str = "{subject}") -> dict[str, str]:
    """DaT stack (4-D, volume 0 = normal), its JSON sidecar and its truth table."""
    return _stack_files(out, subject, tracer(DAT).trc)


def _stack_files(out: str, subject: str, trc: str) -> dict[str, str]:
    def s(suffix, ext):
        return bids(out, subject=subject, datatype="spect", trc=trc, suffix=suffix, extension=ext)

    return {"nifti": s("spect", ".nii.gz"), "json": s("spect", ".json"), "truth": s("truth", ".tsv")}


def scan_file(out: str, subject: str, modality: str, trc: str, desc: str, space: str,
              ext: str = ".nii.gz") -> str:
    """One scan of a subject: ``<out>/sub-<s>/<modality>/sub-<s><trc>_space-<space><desc>_<modality>``.

    ``trc`` and ``desc`` are entity strings with their leading underscore ("_trc-FDG", "" or
    "_desc-cbf"), as the workflow's wildcards hold them.  ``space`` "scanner" is the image as the
    simulated scanner wrote it; "T1w" and "MNI152" are the registered images (register_modality).
    """
    return bids(out, subject=subject, datatype=modality, **entities_of(trc), space=space,
                **entities_of(desc), suffix=modality, extension=ext)


def brain_desc(desc: str) -> str:
    """The desc entity string of a scan's brain-extracted version: ``""`` -> ``"_desc-brain"``,
    ``"_desc-cbf"`` -> ``"_desc-cbfbrain"`` (as the T1w's ``desc-ras`` -> ``desc-rasbrain``)."""
    return f"{desc or '_desc-'}brain"


def scan_brain_files(out: str, subject: str, modality: str, trc: str, desc: str) -> dict[str, str]:
    """What extract_scan_brain writes for one registered scan: the brain-extracted scan and its
    mask on the native (``space-T1w``) and template (``space-MNI152``) grids, and one QC JSON."""
    bdesc = brain_desc(desc)
    files = {}
    for key, space in (("native", "T1w"), ("template", "MNI152")):
        files[f"{key}_brain"] = scan_file(out, subject, modality, trc, bdesc, space)
        files[f"{key}_mask"] = bids(out, subject=subject, datatype=modality, **entities_of(trc), space=space,
                                    **entities_of(bdesc), suffix="mask")
    files["brain_qc"] = bids(out, subject=subject, datatype=modality, **entities_of(trc), **entities_of(bdesc),
                             suffix="qc", extension=".json")
    return files


def perfusion_files(out: str, subject: str = "{subject}", cfg: Mapping | None = None) -> dict[str, str]:
    """Perfusion stack, sidecar, truth table, and S2's interictal SPECT in its scanner frame (named
    by its own tracer, ``simulate.interictal.tracer``)."""
    chosen = _sim(cfg)["chosen"]
    mod, trc, desc = _entities(SCANS["perfusion"], chosen)
    return _stack_files(out, subject, tracer(chosen["perfusion"]).trc) | {
            "scan": scan_file(out, subject, mod, trc, desc, "scanner"),
            "scan_json": scan_file(out, subject, mod, trc, desc, "scanner", ".json")}


def pet_files(out: str, subject: str = "{subject}", cfg: Mapping | None = None) -> dict[str, str]:
    """FDG-PET and the CBF pair, each in its scanner frame with its sidecar; one truth table + JSON."""
    chosen = _sim(cfg)["chosen"]
    files = {}
    for key in ("fdg", "cbf_pet", "cbf_spect"):  # the scans of GROUPS["pet"], in the rule's order of outputs
        mod, trc, desc = _entities(SCANS[key], chosen)
        files[key] = scan_file(out, subject, mod, trc, desc, "scanner")
        files[f"{key}_json"] = scan_file(out, subject, mod, trc, desc, "scanner", ".json")
    truth = {key: bids(out, subject=subject, datatype="pet", desc="simulation", suffix="truth", extension=ext)
             for key, ext in (("json", ".json"), ("truth", ".tsv"))}
    return files | truth


def scans(out: str, subject: str, cfg: Mapping | None = None) -> dict[str, dict[str, str]]:
    """Every scanner-frame scan of a subject and what the pipeline makes of it.

    Keys: ``perfusion`` (S2's SPECT), ``fdg`` (S2's PET), ``cbf_spect`` and ``cbf_pet`` (S3), as
    the configured tracers produce them.  Each entry: ``modality``, ``trc``, ``desc``,
    ``frame`` and ``frame_json`` (simulation outputs), ``native`` (``space-T1w``, S2's native
    grid) and ``template`` (``space-MNI152``) from register_modality, its ``xfm`` and ``qc``;
    ``native_brain``, ``template_brain``, ``native_mask``, ``template_mask`` and ``brain_qc``
    from extract_scan_brain (:func:`scan_brain_files`).
    """
    sim = _sim(cfg)
    todo = [name for group in GROUPS.values() if group.name in sim["tracers"] for name in group.scans]
    out_scans = {}
    for name in todo:
        mod, trc, desc = _entities(SCANS[name], sim["chosen"])
        out_scans[name] = {
            "modality": mod, "trc": trc, "desc": desc, "label": f"{mod}{trc}{desc}",
            "frame": scan_file(out, subject, mod, trc, desc, "scanner"),
            "frame_json": scan_file(out, subject, mod, trc, desc, "scanner", ".json"),
            "native": scan_file(out, subject, mod, trc, desc, "T1w"),
            "template": scan_file(out, subject, mod, trc, desc, "MNI152"),
            "xfm": bids(out, subject=subject, datatype="xfm", **entities_of(trc), **entities_of(desc),
                        from_=mod, to="T1w", mode="image", suffix="xfm", extension=".tfm"),
            "qc": scan_file(out, subject, mod, trc, desc, "T1w", ".json"),
            **scan_brain_files(out, subject, mod, trc, desc),
        }
    return out_scans


def scan_qc_inputs(out: str, subjects: Sequence[str], cfg: Mapping | None = None) -> list[dict[str, str]]:
    """One entry per simulated scan for the registration-error table (spectsynth.scan_qc)."""
    return [{"subject": s, "scan": name, "label": sc["label"], "modality": sc["modality"], "xfm": sc["xfm"],
             "frame_json": sc["frame_json"], "mask": anatomy_files(out, s)["brain"]}
            for s in subjects for name, sc in scans(out, s, cfg).items()]


def montage_file(out: str, subject: str = "{subject}") -> str:
    return bids(out, subject=subject, datatype="figures", desc="simulation", suffix="montage", extension=".png")


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
        files |= {k: q[k] for k in ("fdg", "fdg_json", "cbf_spect", "cbf_spect_json", "cbf_pet", "cbf_pet_json")}
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
