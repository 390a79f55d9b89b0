"""Synthetic SPECT/PET from real anatomy, with two physics paths and ground truth.

Typical use::

    from spectsynth.simulate import mni_anatomy, simulate_subject
    anat = mni_anatomy(2.0)                      # or load_anatomy(paths, subject)
    results = simulate_subject(anat, {"physics": "image"})
    results["DaT"].write("dat.nii.gz", "dat_truth.tsv", "dat.json")

Modules: :mod:`.anatomy` (inputs), :mod:`.phantom` (MNI152/label-image anatomies),
:mod:`.grid` (camera grids, partial-volume maps, head model), :mod:`.registry` (the
tracers: one entry each, see "Adding a tracer" there), :mod:`.tracers` (activity models and
calibration), :mod:`.physics` (image- and projection-domain imaging),
:mod:`.truth` (ground-truth records), :mod:`.plots` (figures), :mod:`.run` (rule entry points).
"""

import importlib

# Names -> the submodule that defines them. Imported on first use (PEP 562), so that importing a
# light submodule (config, design, paths, frames) does not load the physics and its torch import.
_WHERE = {
    "Anatomy": "anatomy", "load_anatomy": "anatomy",
    "DEFAULTS": "config", "resolve": "config",
    "PetSimulation": "core", "SimulatedStack": "core", "prepare_grid": "core", "simulate_dat": "core",
    "simulate_perfusion": "core", "simulate_pet": "core", "simulate_subject": "core", "to_anatomy_grid": "core",
    "anatomy_from_label_image": "phantom", "mni_anatomy": "phantom", "write_anatomy": "phantom",
    "ImageDomainPhysics": "physics", "ProjectionPhysics": "physics", "make_physics": "physics",
    "run_dat": "run", "run_montage": "run", "run_perfusion": "run", "run_pet": "run", "run_summary": "run",
    "DatDegradation": "design", "dat_design": "design",
    "TRACERS": "registry", "Tracer": "registry", "tracer": "registry",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULTS", "TRACERS", "Anatomy", "DatDegradation", "ImageDomainPhysics", "PetSimulation", "ProjectionPhysics",
    "SimulatedStack", "Tracer", "anatomy_from_label_image", "dat_design", "load_anatomy", "make_physics", "mni_anatomy",
    "prepare_grid",
    "resolve", "run_dat", "run_montage", "run_perfusion", "run_pet", "run_summary", "simulate_dat",
    "simulate_perfusion", "simulate_pet", "simulate_subject", "to_anatomy_grid", "tracer", "write_anatomy",
]
