"""Preprocessing: brain extraction, rigid/affine registration, resampling and QC.

* :mod:`.brain` - deepbet (default) or FSL BET brain extraction;
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
]
