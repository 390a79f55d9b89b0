"""File names of the preprocessing and anatomy stages (targets for the workflow's `rule all`).

The Snakemake rules (``workflow/rules/preprocess.smk``, ``anatomy.smk``) spell the per-rule
patterns; these functions list the concrete per-subject files a run must produce, so that the
list is defined once and testable.  ``has_modality(subject, modality)`` tells whether a subject
has a PET or SPECT input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..paths import bids


def anat(out: str, subject: str, **entities) -> str:
    """One anat file of a subject: ``<out>/sub-<s>/anat/sub-<s>_..._<suffix><extension>``
    (the entities, ``suffix`` and ``extension`` as :func:`spectsynth.paths.bids` takes them)."""
    return bids(out, subject=subject, datatype="anat", **entities)


def figure(out: str, subject: str, desc: str, suffix: str = "qc") -> str:
    """A subject's QC figure: ``<out>/sub-<s>/figures/sub-<s>_desc-<desc>_<suffix>.png``."""
    return bids(out, subject=subject, datatype="figures", desc=desc, suffix=suffix, extension=".png")


def preprocess_targets(out: str, subjects: Iterable[str],
                       has_modality: Callable[[str, str], bool]) -> list[str]:
    """Per-subject preprocessing outputs (PET/SPECT only where present) and the quality table."""
    files = []
    for s in subjects:
        files += [
            anat(out, s, desc="rasbrain", suffix="T1w"),
            anat(out, s, space="MNI152", desc="brain", suffix="T1w"),
            anat(out, s, desc="brain", suffix="T1w"),
            figure(out, s, "templateoutline"),
            figure(out, s, "labels"),
            figure(out, s, "brainmask"),
        ]
        for mod in ("pet", "spect"):
            if has_modality(s, mod):
                files += [bids(out, subject=s, datatype=mod, space=space, suffix=mod)
                          for space in ("T1w", "MNI152")]
    files.append(f"{out}/qc/registration_quality.tsv")
    return files


def anatomy_targets(out: str, subjects: Iterable[str]) -> list[str]:
    """Per-subject anatomy outputs on the native grid."""
    files = []
    for s in subjects:
        files += [anat(out, s, desc=d, suffix="dseg") for d in ("striatum", "reference", "territories")]
        files += [anat(out, s, label=t, suffix="probseg") for t in ("GM", "WM", "CSF")]
        files.append(anat(out, s, suffix="levels", extension=".tsv"))
    return files


def registration_qc_files(out: str, subjects: Iterable[str],
                          has_modality: Callable[[str, str], bool]) -> list[str]:
    """Every per-subject registration/anatomy QC JSON that the quality table gathers."""
    files = []
    for s in subjects:
        files += [anat(out, s, space="MNI152", desc="registration", suffix="qc", extension=".json"),
                  anat(out, s, desc="anatomy", suffix="qc", extension=".json")]
        for mod in ("pet", "spect"):
            if has_modality(s, mod):
                files.append(bids(out, subject=s, datatype=mod, space="T1w", suffix=mod, extension=".json"))
    return files
