"""The expansion of the ``experiments:`` config into runnable experiments.

Importing this module does not import torch: the Snakefile calls :func:`expand_experiments`
while it builds the DAG. An entry names its study (``study:``, one of
:data:`spectsynth.studies.REGISTRY`) and model family (``model:``, one of
:data:`spectsynth.models.FAMILIES`); the study expands it into runs
(:meth:`spectsynth.studies.base.Study.expand`: S1 over its variants, S2 over inputs x spaces x
losses, S0 and S3 one run each). Each resolved spec is a plain dict (JSON/YAML-serialisable):
the study's published settings, overridden by the family defaults, the preset and the entry's
own values, plus the dataset it reads, its channels, its condition layout, the harness settings
(``training:``) and its Snakemake resources.
"""

from __future__ import annotations

import copy
from typing import Any

from .config import core_defaults
from .errors import ConfigError
from .models import FAMILIES, FAMILY_DEFAULTS, get_family
from .studies import REGISTRY
from .studies.base import fail

# preset: original = the pix2pix paper (Isola et al. 2017): lr 2e-4, beta1 0.5, lambda 100, batch 1.
# preset: paper_weights = the pix2pix default weights with lambda_SSIM = 1 (lambda_L1 = 100; not a
# value S2 publishes), under which the SSIM term is only ~1-3 % of the generator loss.
PRESETS: dict[str, dict[str, Any]] = {
    "study": {},
    "original": {"lr": 2e-4, "betas": [0.5, 0.999], "lambda_l1": 100.0, "batch_size": 1},
    "paper_weights": {"lambda_l1": 100.0},
}

# The defaults of the keys every entry has that neither the study nor the family sets (declared in
# the core option fragment, spectsynth/options.yaml, $defs/experiment).
COMMON_DEFAULTS: dict[str, Any] = {
    k: core_defaults(f"$defs/experiment/{k}")
    for k in ("lr_decay_start_epoch", "seed", "gpu", "mem_mb", "runtime", "preset", "description")}

# Keys of an entry that a study reads to expand it into runs (S1: variants; S2: inputs, spaces, losses).
STUDY_ENTRY_KEYS = set().union(*(set(s.entry_keys) for s in REGISTRY.values()))

# Keys an experiment entry may hold (the schema documents each).
EXPERIMENT_KEYS = (
    {"study", "model", "enabled", "epochs", "batch_size", "lr", "betas", "selection_metric"}
    | STUDY_ENTRY_KEYS
    | set(COMMON_DEFAULTS)
    | set().union(*(set(d) for d in FAMILY_DEFAULTS.values()))
)

# Settings of the harness (config ``training:``) copied into every resolved experiment.
TRAINING_DEFAULTS: dict[str, Any] = core_defaults("training")

# Checkpoint-selection metrics each family can be scored by (its registry entry).
SELECTION_METRICS = {name: get_family(name).selection_metrics for name in FAMILIES}


def training_settings(cfg: dict) -> dict[str, Any]:
    """The harness settings (``training:`` over :data:`TRAINING_DEFAULTS`, device and GPUs from
    ``compute:`` where unset)."""
    training = {**TRAINING_DEFAULTS, **(cfg.get("training") or {})}
    unknown_t = set(training) - set(TRAINING_DEFAULTS)
    if unknown_t:
        raise ConfigError(f"training: unknown key(s) {sorted(unknown_t)}; known: {sorted(TRAINING_DEFAULTS)}")
    compute = cfg.get("compute") or {}
    if training["device"] is None:
        training["device"] = compute.get("device") or "auto"
    if training["gpu"] is None:
        training["gpu"] = int(compute.get("gpus") or 0)
    return training


def selected_studies(cfg: dict) -> list[str]:
    """The studies a configuration runs: its ``studies:`` list, or every registered study."""
    chosen = cfg.get("studies")
    if chosen is None:
        return list(REGISTRY)
    unknown = [s for s in chosen if s not in REGISTRY]
    if unknown:
        raise ConfigError(f"studies: unknown study {', '.join(map(repr, unknown))}; the studies are "
                          f"{', '.join(REGISTRY)}")
    return [s for s in REGISTRY if s in chosen]


def expand_experiments(cfg: dict) -> dict[str, dict[str, Any]]:
    """Expand the compact ``experiments:`` entries into one resolved spec per run (see the module
    docstring). Entries with ``enabled: false`` are skipped, and so are the entries of a study the
    top-level ``studies:`` list leaves out.  Unknown studies, models or keys raise
    :class:`~spectsynth.errors.ConfigError` naming the entry."""
    training = training_settings(cfg)
    selected = selected_studies(cfg)
    out: dict[str, dict[str, Any]] = {}
    for name, entry in (cfg.get("experiments") or {}).items():
        entry = dict(entry or {})
        if not entry.get("enabled", True) or (str(entry.get("study", "")) not in selected
                                              and str(entry.get("study", "")) in REGISTRY):
            continue
        unknown = set(entry) - EXPERIMENT_KEYS
        if unknown:
            raise fail(name, f"unknown key(s) {sorted(unknown)}",
                       f"Remove them; an experiment takes {', '.join(sorted(EXPERIMENT_KEYS))}")
        study_name = str(entry.get("study", ""))
        model = str(entry.get("model", ""))
        if study_name not in REGISTRY:
            raise fail(name, f"unknown study {study_name!r}", f"Set study to one of {', '.join(REGISTRY)}")
        study = REGISTRY[study_name]
        if model not in FAMILIES:
            raise fail(name, f"unknown model {model!r}", f"Set model to one of {', '.join(FAMILIES)}")
        if model not in study.families:
            raise fail(name, f"model {model!r} does not serve study {study_name}",
                       f"Use model {' or '.join(study.families)} for {study_name}")
        misplaced = sorted(k for k in set(entry) & STUDY_ENTRY_KEYS
                           if entry[k] is not None and k not in study.entry_keys)
        if misplaced:
            raise fail(name, f"key(s) {misplaced} belong to another study",
                       f"Remove them; study {study_name} reads {', '.join(study.entry_keys) or 'none of them'}")
        preset = entry.get("preset") or "study"
        if preset not in PRESETS:
            raise fail(name, f"unknown preset {preset!r}", f"Use one of {', '.join(PRESETS)}")
        # A family option whose default is automatic (null, e.g. pix2pix's generator_depth) enters
        # the spec only when an entry sets it: adding such an option leaves every existing
        # experiment's spec, and so its checkpoints' configuration hash, as it was.
        family = {k: v for k, v in FAMILY_DEFAULTS[model].items() if v is not None}
        base: dict[str, Any] = {**COMMON_DEFAULTS, **study.training_defaults, **family, **PRESETS[preset]}
        for k, v in entry.items():
            if v is not None and k not in STUDY_ENTRY_KEYS and k != "enabled":
                base[k] = copy.deepcopy(v)
        base["preset"] = preset
        for k in ("gpu", "mem_mb", "runtime", "seed"):
            if base.get(k) is None:
                base[k] = training[k]
        for run_name, extra in study.expand(name, model, entry, cfg):
            if run_name in out:
                raise fail(run_name, "defined twice", "Rename one of the experiments entries")
            spec = {**copy.deepcopy(base), **extra, "experiment": run_name, "entry": name,
                    "study": study_name, "model": model}
            spec["training"] = {k: v for k, v in training.items()
                                if k not in ("gpu", "mem_mb", "runtime", "threads")}
            # The job's CPUs (the rule's threads, SLURM's cpus-per-task) hold torch's threads and
            # the DataLoader workers, each a process of its own; torch gets its configured threads.
            spec["resources"] = {"gpu": int(spec.pop("gpu")), "mem_mb": int(spec.pop("mem_mb")),
                                 "runtime": int(spec.pop("runtime")),
                                 "threads": int(training["threads"]) + int(training["num_workers"]),
                                 "torch_threads": int(training["threads"])}
            _check_spec(spec)
            out[run_name] = spec
    return out


def _check_spec(spec: dict) -> None:
    name = spec["experiment"]
    for key in ("epochs", "batch_size"):
        if int(spec[key]) < 1:
            raise fail(name, f"{key} is {spec[key]}", f"Set {key} to a positive integer")
    if float(spec["lr"]) <= 0:
        raise fail(name, f"lr is {spec['lr']}", "Set a positive learning rate")
    if len(spec["betas"]) != 2 or not all(0 <= float(b) < 1 for b in spec["betas"]):
        raise fail(name, f"betas {spec['betas']} invalid", "Give two Adam betas in [0, 1), e.g. [0.5, 0.999]")
    metrics = SELECTION_METRICS[spec["model"]]
    if spec["selection_metric"] not in metrics:
        raise fail(name, f"selection_metric {spec['selection_metric']!r} does not fit model {spec['model']}",
                   f"Use one of {', '.join(metrics)}")
    criteria = get_family(spec["model"]).selection_criteria
    if criteria and spec["selection_criterion"] not in criteria:
        raise fail(name, f"selection_criterion {spec['selection_criterion']!r} is unknown",
                   f"Use one of {', '.join(criteria)}")
    if spec["training"]["on_config_change"] not in ("restart", "error"):
        raise fail(name, f"training.on_config_change is {spec['training']['on_config_change']!r}",
                   "Use restart or error")
