"""Synthetic SPECT/PET from real anatomy, with two physics paths and ground truth.

Typical use::

    from spectsynth.simulate import mni_anatomy, simulate_subject
    anat = mni_anatomy(2.0)                      # or load_anatomy(paths, subject)
    results = simulate_subject(anat, {"physics": "image"})
    results["DaT"].write("dat.nii.gz", "dat_truth.tsv", "dat.json")

Modules: :mod:`.anatomy` (inputs), :mod:`.phantom` (MNI152/label-image anatomies),
:mod:`.grid` (camera grids, partial-volume maps, head model), :mod:`.tracers` (activity
models and calibration), :mod:`.physics` (image- and projection-domain imaging),
:mod:`.truth` (ground-truth records), :mod:`.plots` (figures), :mod:`.run` (rule entry points).
"""

from .anatomy import Anatomy, load_anatomy
from .config import DEFAULTS, resolve
from .core import (
    PetSimulation,
    SimulatedStack,
    prepare_grid,
    simulate_dat,
    simulate_perfusion,
    simulate_pet,
    simulate_subject,
    to_anatomy_grid,
)
from .phantom import anatomy_from_label_image, mni_anatomy, write_anatomy
from .physics import ImageDomainPhysics, ProjectionPhysics, make_physics
from .run import run_dat, run_montage, run_perfusion, run_pet, run_summary
from .tracers import DatDegradation, dat_design

__all__ = [
    "DEFAULTS", "Anatomy", "DatDegradation", "ImageDomainPhysics", "PetSimulation", "ProjectionPhysics",
    "SimulatedStack", "anatomy_from_label_image", "dat_design", "load_anatomy", "make_physics", "mni_anatomy",
    "prepare_grid",
    "resolve", "run_dat", "run_montage", "run_perfusion", "run_pet", "run_summary", "simulate_dat",
    "simulate_perfusion", "simulate_pet", "simulate_subject", "to_anatomy_grid", "write_anatomy",
]
