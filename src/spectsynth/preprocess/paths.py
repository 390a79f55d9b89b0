"""File names of the preprocessing and anatomy stages (targets for the workflow's `rule all`).

The Snakemake rules (``workflow/rules/preprocess.smk``, ``anatomy.smk``) spell the per-rule
patterns; these functions list the concrete per-subject files a run must produce, so that the
list is defined once and testable.  ``has_modality(subject, modality)`` tells whether a subject
has a PET or SPECT input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def anat(out: str, subject: str) -> str:
    """Prefix of a subject's anat files: ``<out>/sub-<s>/anat/sub-<s>``."""
    return f"{out}/sub-{subject}/anat/sub-{subject}"


def preprocess_targets(out: str, subjects: Iterable[str],
                       has_modality: Callable[[str, str], bool]) -> list[str]:
    """Per-subject preprocessing outputs (PET/SPECT only where present) and the quality table."""
    files = []
    for s in subjects:
        a = anat(out, s)
        files += [
            f"{a}_desc-rasbrain_T1w.nii.gz",
            f"{a}_space-MNI152_desc-brain_T1w.nii.gz",
            f"{a}_desc-brain_T1w.nii.gz",
            f"{out}/sub-{s}/figures/sub-{s}_desc-templateoutline_qc.png",
            f"{out}/sub-{s}/figures/sub-{s}_desc-labels_qc.png",
            f"{out}/sub-{s}/figures/sub-{s}_desc-brainmask_qc.png",
        ]
        for mod in ("pet", "spect"):
            if has_modality(s, mod):
                files += [f"{out}/sub-{s}/{mod}/sub-{s}_space-T1w_{mod}.nii.gz",
                          f"{out}/sub-{s}/{mod}/sub-{s}_space-MNI152_{mod}.nii.gz"]
    files.append(f"{out}/qc/registration_quality.tsv")
    return files


def anatomy_targets(out: str, subjects: Iterable[str]) -> list[str]:
    """Per-subject anatomy outputs on the native grid."""
    files = []
    for s in subjects:
        a = anat(out, s)
        files += [f"{a}_desc-striatum_dseg.nii.gz", f"{a}_desc-reference_dseg.nii.gz",
                  f"{a}_desc-territories_dseg.nii.gz", f"{a}_label-GM_probseg.nii.gz",
                  f"{a}_label-WM_probseg.nii.gz", f"{a}_label-CSF_probseg.nii.gz", f"{a}_levels.tsv"]
    return files


def registration_qc_files(out: str, subjects: Iterable[str],
                          has_modality: Callable[[str, str], bool]) -> list[str]:
    """Every per-subject registration/anatomy QC JSON that the quality table gathers."""
    files = []
    for s in subjects:
        files += [f"{anat(out, s)}_space-MNI152_desc-registration_qc.json",
                  f"{anat(out, s)}_desc-anatomy_qc.json"]
        for mod in ("pet", "spect"):
            if has_modality(s, mod):
                files.append(f"{out}/sub-{s}/{mod}/sub-{s}_space-T1w_{mod}.json")
    return files
