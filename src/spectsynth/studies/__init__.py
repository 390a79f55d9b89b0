"""The studies the pipeline reproduces, one module each, registered here in one place.

========  ===========================================  ==========================
study     what                                         module
========  ===========================================  ==========================
S0        VAE: a patient's pseudo-normal DaTscan        :mod:`.s0`
S1        conditional FastGAN perfusion SPECT slices    :mod:`.s1`
S2        pix2pix MRI / PET -> perfusion SPECT          :mod:`.s2`
S3        pix2pix CBF SPECT -> 15O-water PET            :mod:`.s3`
========  ===========================================  ==========================

Adding a study: a module (or package) here with a :class:`~.base.Study` subclass, one line in
:data:`REGISTRY`, its ``datasets.<key>`` block and an ``experiments:`` entry in the config
schema, and its report captions in workflow/report/. The rules loop over the registry.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError
from .base import Context, Output, Study
from .s0 import STUDY as _S0
from .s1 import STUDY as _S1
from .s2 import STUDY as _S2
from .s3 import STUDY as _S3

REGISTRY: dict[str, Study] = {s.name: s for s in (_S0, _S1, _S2, _S3)}
BY_KEY: dict[str, Study] = {s.key: s for s in REGISTRY.values()}

__all__ = ["BY_KEY", "REGISTRY", "Context", "Output", "Study", "dataset_entries", "dataset_names",
           "dataset_subject_files", "for_dataset", "get", "cohort_resected",
           "study_experiments"]


def get(name: str) -> Study:
    """The study called ``name`` (``S0`` .. ``S3``)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown study {name!r}; studies are {', '.join(REGISTRY)}") from None


def for_dataset(dataset: str) -> Study:
    """The study a dataset belongs to (``s2_native`` -> S2)."""
    key = dataset.split("_", 1)[0]
    if key not in BY_KEY:
        raise ConfigError(f"dataset {dataset}: unknown; datasets start with one of {', '.join(BY_KEY)}")
    return BY_KEY[key]


def dataset_names(cfg: Mapping) -> list[str]:
    """Every dataset the configuration defines (wildcard values of ``{dataset}``)."""
    from .base import merge

    ds = cfg.get("datasets") or {}
    return [n for s in REGISTRY.values() for n in s.dataset_names(merge(s.dataset_defaults, ds.get(s.key)))]


def study_experiments(experiments: Mapping[str, Mapping], study: str) -> list[str]:
    """Names of the enabled experiments of one study, sorted."""
    return sorted(name for name, spec in experiments.items() if spec.get("study") == study)


def dataset_entries(dataset: str, subject_files: Mapping[str, Mapping[str, str]]) -> list[dict]:
    """Entries of ``dataset`` for every subject (its study's :meth:`~.base.Study.entries`), for
    :func:`spectsynth.datasets.records_from_files`.

    At planning time the workflow only knows each subject's files; the parameters of every
    simulated volume (PBR/CBR/SLR, pattern per level, ...) are in the simulator's truth tables,
    which exist only after simulation: the studies read them here."""
    study = for_dataset(dataset)
    out: list[dict] = []
    for subject, files in subject_files.items():
        out += study.entries(dataset, subject, files)
    return out


def dataset_subject_files(dataset: str, out: str, subjects, sim: Mapping,
                          config: Mapping | None = None) -> dict[str, dict[str, str]]:
    """Per subject, the files one dataset reads (its study's :meth:`~.base.Study.subject_files`).

    With ``config``, the subjects the study leaves out (post-surgical ones, unless its
    ``resected_split`` takes them) are left out here too, so nothing is made for them."""
    study = for_dataset(dataset)
    if config is not None and study.resected_split is None:
        left_out = cohort_resected(config, subjects)
        subjects = [s for s in subjects if s not in left_out]
    return {s: study.subject_files(dataset, out, s, sim) for s in subjects}


def cohort_resected(config: Mapping | None, subjects=None) -> set[str]:
    """Participants of the cohort with a surgical resection (post-surgical brains).

    The demo cohort resects ``inputs.demo.n_resected`` subjects, drawn from the demo's own seed
    (:func:`spectsynth.inputs.demo.resected_subjects`); a BIDS cohort marks them in
    ``participants.tsv`` (column ``resection``: yes/true/1).  A study's ``resected_split`` says
    where they go: S2 puts them in its unseen test set, every other study leaves them out.
    """
    config = dict(config or {})
    inputs = dict(config.get("inputs") or {})
    source = inputs.get("source", "demo")
    if source == "demo":
        from ..inputs.cohort import DEFAULT_N_SUBJECTS, DEFAULT_SEED, resected_labels

        demo = dict(inputs.get("demo") or {})
        chosen = resected_labels(demo.get("n_subjects", DEFAULT_N_SUBJECTS), demo.get("seed", DEFAULT_SEED),
                                 demo.get("n_resected", 0))
    elif source == "bids":
        from pathlib import Path

        from ..inputs.participants import subjects_flagged

        root = (inputs.get("bids") or {}).get("root")
        chosen = subjects_flagged(str(Path(root) / "participants.tsv") if root else None, "resection")
    else:
        chosen = set()
    if subjects is None:
        return chosen
    from ..splits import participant

    return {str(s) for s in subjects if participant(str(s)) in chosen}
