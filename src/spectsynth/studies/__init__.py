"""The studies the pipeline reproduces, one module each, registered here in one place.

========  ===========================================  ==========================
study     what                                         module
========  ===========================================  ==========================
S0        VAE: a patient's pseudo-normal DaTscan        :mod:`.s0`
S1        conditional FastGAN perfusion SPECT slices    :mod:`.s1`
S2        pix2pix MRI / PET -> perfusion SPECT          :mod:`.s2`
S3        pix2pix CBF SPECT -> 15O-water PET            :mod:`.s3`
========  ===========================================  ==========================

Adding a study: a package here with a :class:`~.base.Study` subclass, one line in
:data:`REGISTRY`, its options beside it (``options.yaml``: its ``datasets.<key>`` block and any
option of its own; spectsynth.schema places them into the configuration schema), an
``experiments:`` entry in the config, and its report captions beside it (or in workflow/report/). The rules loop over the registry; rules of
its own go in a .smk file beside its module (:attr:`~.base.Study.rules`; S0's ``rules.smk``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import datasets as _datasets
from .. import design as _design
from ..errors import ConfigError
from ..inputs.cohort import cohort_resected
from ..mapping import merge
from .base import Context, Output, Study
from .s0 import STUDY as _S0
from .s1 import STUDY as _S1
from .s2 import STUDY as _S2
from .s3 import STUDY as _S3

REGISTRY: dict[str, Study] = {s.name: s for s in (_S0, _S1, _S2, _S3)}
BY_KEY: dict[str, Study] = {s.key: s for s in REGISTRY.values()}

__all__ = ["BY_KEY", "DATASET_DEFAULTS", "REGISTRY", "Context", "Output", "Study", "build_dataset",
           "cohort_resected", "dataset_design", "dataset_entries", "dataset_names", "dataset_spec",
           "dataset_subject_files", "extract_slices", "for_dataset", "get", "study_experiments"]

# Each dataset's defaults are its study's (``dataset_defaults``, read from its options.yaml).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {s.key: s.dataset_defaults for s in REGISTRY.values()}


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
    ds = cfg.get("datasets") or {}
    return [n for s in REGISTRY.values() for n in s.dataset_names(merge(s.dataset_defaults, ds.get(s.key)))]


# The data layer (spectsynth.datasets, spectsynth.design) is handed its study; these find the
# study of a dataset name and pass it on.
def _owner(cfg: Mapping, name: str) -> Study:
    try:
        return for_dataset(name)
    except ConfigError:
        raise ConfigError(f"dataset {name}: unknown; datasets are {', '.join(dataset_names(cfg))}") from None


def dataset_spec(cfg: Mapping, name: str) -> dict[str, Any]:
    """Resolved settings of dataset ``name`` (:func:`spectsynth.design.dataset_spec` of its study)."""
    return _design.dataset_spec(_owner(cfg, name), cfg, name)


def dataset_design(cfg: Mapping, name: str, subjects: Sequence[str]) -> _design.DatasetDesign:
    """The design of dataset ``name`` for these subjects (:func:`spectsynth.design.dataset_design`)."""
    return _design.dataset_design(_owner(cfg, name), cfg, name, subjects)


def build_dataset(name: str, records: Iterable[Mapping], cfg: Mapping, out_dir: str | Path):
    """Build dataset ``name`` (:func:`spectsynth.datasets.build_dataset` of its study)."""
    return _datasets.build_dataset(_owner(cfg, name), name, records, cfg, out_dir)


def extract_slices(study: str, records: Iterable[Mapping], spec: Mapping):
    """The slices of a dataset of study ``study`` (``S0`` .. ``S3``; :func:`spectsynth.datasets.extract_slices`)."""
    return _datasets.extract_slices(get(study), records, spec)


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


def verdict_files(ctx) -> dict[str, str]:
    """Every enabled study's ``verdicts.tsv`` (path -> experiment; empty for a study evaluated once
    for all its experiments), for the rule ``headline``."""
    out: dict[str, str] = {}
    for st in REGISTRY.values():
        exps = ctx.experiments_of(st.name)
        if "verdicts" not in st.evaluation or not exps:
            continue
        path = st.evaluation_paths(ctx.out)["verdicts"]
        if st.per_experiment:
            out.update({path.format(experiment=e): e for e in exps})
        else:
            out[path] = ""
    return out
