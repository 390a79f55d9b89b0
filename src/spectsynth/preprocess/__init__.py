"""Preprocessing: brain extraction, rigid/affine registration, resampling and QC.

* :mod:`.brain` - deepbet (default) or FSL BET brain extraction;
* :mod:`.scan_brain` - brain extraction of the registered PET (BET-like) and SPECT (histogram
  threshold), each by its own method as S2 did;
* :mod:`.register` - SimpleITK (or FSL FLIRT) registration, ITK transform files, grids and
  one-interpolation resampling through composed transforms;
* :mod:`.steps` - one function per workflow rule (file in, files out);
* :mod:`.qc` - QC figures and the registration-quality table.

Importing this package loads no model and touches no GPU.
"""

from .brain import BrainSettings, deepbet_weights, extract_brain
from .register import (
    Grid,
    RegistrationResult,
    RegistrationSettings,
    chain,
    load_transform,
    native_grid,
    register,
    resample,
    save_transform,
    save_transform_pair,
)
from .scan_brain import ScanBrainSettings, extract_pet_brain, extract_spect_brain

__all__ = [
    "BrainSettings",
    "Grid",
    "RegistrationResult",
    "RegistrationSettings",
    "chain",
    "deepbet_weights",
    "extract_brain",
    "load_transform",
    "native_grid",
    "register",
    "resample",
    "save_transform",
    "save_transform_pair",
    "ScanBrainSettings",
    "extract_pet_brain",
    "extract_spect_brain",
]
