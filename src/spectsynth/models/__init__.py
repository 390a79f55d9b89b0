"""Model families and the expansion of the ``experiments:`` config into runnable experiments.

Importing this module does not import torch: the Snakefile calls
:func:`expand_experiments` while it builds the DAG (a dry-run must not need a GPU build of
torch, nor pay its import time).  Each family is a package of its own (network, defaults,
losses, training recipe, inference) registered in :data:`REGISTRY`
(:class:`~spectsynth.models.registry.Family`); its networks are imported lazily by
:func:`build_model`.

Families (``model:`` in an experiment):

========  ===========  ==================  ================================================
family    studies      package             networks (keys of the ModuleDict of build_model)
========  ===========  ==================  ================================================
vae       S0 clinical  ``models.vae``      ``vae``: :class:`~spectsynth.models.vae.network.VAE`
cvae      S0 restore   ``models.vae``      ``vae``: :class:`~spectsynth.models.vae.network.ConditionalVAE`
fastgan   S1           ``models.fastgan``  ``G``, ``D``: conditional FastGAN (the EMA copy of G is made by its recipe)
pix2pix   S2, S3       ``models.pix2pix``  ``G``: U-Net, ``D``: PatchGAN
========  ===========  ==================  ================================================
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from ..errors import ConfigError
from ..labels import LEVELS, PATTERNS
from . import fastgan as _fastgan
from . import pix2pix as _pix2pix
from . import vae as _vae
from .registry import Family, make_registry

# name -> Family (defaults, selection metrics, paired or not, lazy network/recipe/inference)
REGISTRY = make_registry(*_vae.FAMILIES, _fastgan.FAMILY, _pix2pix.FAMILY)
FAMILIES = tuple(REGISTRY)
STUDIES = ("S0", "S1", "S2", "S3")

# Which families may serve which study.
STUDY_FAMILIES = {"S0": ("vae", "cvae"), "S1": ("fastgan",), "S2": ("pix2pix",), "S3": ("pix2pix",)}

# Published settings (the paper-scale values); the demo config overrides epochs/batch sizes.
STUDY_DEFAULTS: dict[str, dict[str, Any]] = {
    # S0 gives no optimiser details: Adam 1e-3, batch 16, 300 epochs are the pipeline's choice.
    "S0": {"epochs": 300, "batch_size": 16, "lr": 1e-3, "betas": [0.9, 0.999], "selection_metric": "ssim"},
    # S1: Adam 2e-4, betas 0.9/0.999, 1000 epochs, batch 4.
    "S1": {"epochs": 1000, "batch_size": 4, "lr": 2e-4, "betas": [0.9, 0.999], "selection_metric": "gan"},
    # S2: batch 8, lr 1e-4, 1000 epochs; beta1 0.5 and lambda_L1 100 kept from the pix2pix
    # reference S2 says it started from (S2 reports only the changed batch size and rate).
    "S2": {"epochs": 1000, "batch_size": 8, "lr": 1e-4, "betas": [0.5, 0.999], "selection_metric": "ssim"},
    # S3 names no settings: S2's batch size and rate, the pix2pix reference's 200 epochs.
    "S3": {"epochs": 200, "batch_size": 8, "lr": 1e-4, "betas": [0.5, 0.999], "selection_metric": "ssim"},
}

# preset: original = the pix2pix paper (Isola et al. 2017): lr 2e-4, beta1 0.5, lambda 100, batch 1.
# preset: paper_weights = the loss weights lambda_L1 = 100, lambda_SSIM = 1 (S2's L1+SSIM runs as
# first reproduced), under which the SSIM term is only ~1-3 % of the generator loss.
PRESETS: dict[str, dict[str, Any]] = {
    "study": {},
    "original": {"lr": 2e-4, "betas": [0.5, 0.999], "lambda_l1": 100.0, "batch_size": 1},
    "paper_weights": {"lambda_l1": 100.0},
}
# lambda_SSIM of S2's l1+ssim runs under a preset (the l1 runs always have 0; S3 keeps its own)
PRESET_SSIM_WEIGHT: dict[str, float] = {"paper_weights": 1.0}

# Each family's defaults, from its package (models/<family>/__init__.py).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {name: dict(f.defaults) for name, f in REGISTRY.items()}

COMMON_DEFAULTS: dict[str, Any] = {"lr_decay_start_epoch": None, "seed": None, "gpu": None,
                                   "mem_mb": None, "runtime": None, "preset": "study",
                                   "description": ""}

S2_INPUTS = {"mri": ["mri"], "pet": ["pet"], "mri+pet": ["mri", "pet"]}
S2_SPACES = ("native", "template")
# loss token -> default lambda_ssim.  With lambda_L1 = 100 the two pixel terms start at about
# 100 x 0.7 (L1 of an untrained generator on (-1, 1) slices) and lambda_SSIM x 1 (1 - SSIM):
# lambda_SSIM = 50 gives the SSIM term about 40 % of the generator loss at the start and about
# half near S2's published end point (L1 ~ 0.05, SSIM ~ 0.87), so the SSIM arm can matter.
# The shares are measured in every run's history.csv (G_share_*); preset paper_weights keeps 1.
S2_SSIM_WEIGHT = 50.0
S2_LOSSES = {"l1": 0.0, "l1+ssim": S2_SSIM_WEIGHT}
S1_VARIANTS = {"A": list(LEVELS), "B": ["COR"]}

_TOKEN = {"mri+pet": "mripet", "l1+ssim": "l1ssim"}

# Keys an experiment entry may hold (the schema documents each).
EXPERIMENT_KEYS = (
    {"study", "model", "enabled", "variants", "inputs", "spaces", "losses", "epochs", "batch_size", "lr",
     "betas", "selection_metric"}
    | set(COMMON_DEFAULTS)
    | set().union(*(set(d) for d in FAMILY_DEFAULTS.values()))
)

# Settings of the harness (config ``training:``) copied into every resolved experiment.
TRAINING_DEFAULTS: dict[str, Any] = {
    "device": None, "amp": "auto", "channels_last": False, "num_workers": 0, "seed": 1234,
    "checkpoint_every": 1, "checkpoint_every_steps": 0, "keep_checkpoints": 2,
    "on_config_change": "restart", "validate_every": 1, "progress": True, "preload_max_mb": 2048,
    "threads": 1, "gpu": None, "mem_mb": 4000, "runtime": 60,
}


def _fail(name: str, problem: str, hint: str) -> ConfigError:
    return ConfigError(f"experiment {name}: {problem}. {hint}")


def _as_list(value: Any, default: list) -> list:
    if value is None:
        return list(default)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _dataset_size(cfg: dict, key: str, name: str) -> int:
    ds = (cfg.get("datasets") or {}).get(key) or {}
    size = int(ds.get("size", 64))
    if size < 32 or size & (size - 1):
        raise _fail(name, f"datasets.{key}.size is {size}", "Use a power of two >= 32 (32, 64, 128, 256)")
    return size


def expand_experiments(cfg: dict) -> dict[str, dict[str, Any]]:
    """Expand the compact ``experiments:`` entries into one resolved spec per run.

    * S1 entries expand over ``variants`` (A: CER/BG/COR with condition level x pattern,
      B: COR only with condition pattern) -> ``<name>_A``, ``<name>_B``;
    * S2 entries expand over ``inputs`` x ``spaces`` x ``losses`` (default the full 3 x 2 x 2
      grid = 12 runs) -> ``<name>_<input>_<space>_<loss>`` with the tokens ``mri``, ``pet``,
      ``mripet`` and ``l1``, ``l1ssim``;
    * S0 and S3 entries give one run each.

    Each resolved spec is a plain dict (JSON/YAML-serialisable): the study's published
    settings, overridden by the family defaults, the preset and the entry's own values, plus the
    dataset it reads, its channels, its condition layout, the harness settings (``training:``)
    and its Snakemake resources.  Entries with ``enabled: false`` are skipped.  Unknown
    studies, models or keys raise :class:`~spectsynth.errors.ConfigError` naming the entry.
    """
    training = {**TRAINING_DEFAULTS, **(cfg.get("training") or {})}
    unknown_t = set(training) - set(TRAINING_DEFAULTS)
    if unknown_t:
        raise ConfigError(f"training: unknown key(s) {sorted(unknown_t)}; known: {sorted(TRAINING_DEFAULTS)}")
    compute = cfg.get("compute") or {}
    if training["device"] is None:
        training["device"] = compute.get("device") or "auto"
    if training["gpu"] is None:
        training["gpu"] = int(compute.get("gpus") or 0)
    out: dict[str, dict[str, Any]] = {}
    for name, entry in (cfg.get("experiments") or {}).items():
        entry = dict(entry or {})
        if not entry.get("enabled", True):
            continue
        unknown = set(entry) - EXPERIMENT_KEYS
        if unknown:
            raise _fail(name, f"unknown key(s) {sorted(unknown)}",
                        f"Remove them; an experiment takes {', '.join(sorted(EXPERIMENT_KEYS))}")
        study = str(entry.get("study", ""))
        model = str(entry.get("model", ""))
        if study not in STUDIES:
            raise _fail(name, f"unknown study {study!r}", f"Set study to one of {', '.join(STUDIES)}")
        if model not in FAMILIES:
            raise _fail(name, f"unknown model {model!r}", f"Set model to one of {', '.join(FAMILIES)}")
        if model not in STUDY_FAMILIES[study]:
            raise _fail(name, f"model {model!r} does not serve study {study}",
                        f"Use model {' or '.join(STUDY_FAMILIES[study])} for {study}")
        preset = entry.get("preset") or "study"
        if preset not in PRESETS:
            raise _fail(name, f"unknown preset {preset!r}", f"Use one of {', '.join(PRESETS)}")
        base: dict[str, Any] = {**COMMON_DEFAULTS, **STUDY_DEFAULTS[study], **FAMILY_DEFAULTS[model],
                                **PRESETS[preset]}
        for k, v in entry.items():
            if v is not None and k not in ("variants", "inputs", "spaces", "losses", "enabled"):
                base[k] = copy.deepcopy(v)
        base["preset"] = preset
        for k in ("gpu", "mem_mb", "runtime", "seed"):
            if base.get(k) is None:
                base[k] = training[k]
        runs = _expand_runs(name, study, model, entry, cfg)
        for run_name, extra in runs:
            if run_name in out:
                raise _fail(run_name, "defined twice", "Rename one of the experiments entries")
            spec = {**copy.deepcopy(base), **extra, "experiment": run_name, "entry": name,
                    "study": study, "model": model}
            spec["training"] = {k: v for k, v in training.items()
                                if k not in ("gpu", "mem_mb", "runtime", "threads")}
            spec["resources"] = {"gpu": int(spec.pop("gpu")), "mem_mb": int(spec.pop("mem_mb")),
                                 "runtime": int(spec.pop("runtime")), "threads": int(training["threads"])}
            _check_spec(spec)
            out[run_name] = spec
    return out


def _expand_runs(name: str, study: str, model: str, entry: dict, cfg: dict) -> list[tuple[str, dict]]:
    if study == "S0":
        size = _dataset_size(cfg, "s0", name)
        if model == "cvae":
            return [(name, {"dataset": "s0", "size": size, "input_channels": ["damaged"],
                            "target_channels": ["original"], "task": "restoration"})]
        return [(name, {"dataset": "s0", "size": size, "input_channels": ["damaged"],
                        "target_channels": ["original"], "task": "clinical"})]
    if study == "S1":
        size = _dataset_size(cfg, "s1", name)
        variants = _as_list(entry.get("variants"), list(S1_VARIANTS))
        bad = [v for v in variants if v not in S1_VARIANTS]
        if bad or not variants:
            raise _fail(name, f"unknown S1 variant(s) {bad}", "Use variants A and/or B")
        runs = []
        for v in variants:
            levels = S1_VARIANTS[v]
            cond = {"variant": v, "levels": levels, "patterns": list(PATTERNS),
                    "use_level": v == "A", "n_cond": (len(LEVELS) if v == "A" else 0) + len(PATTERNS)}
            runs.append((f"{name}_{v}", {"dataset": "s1", "size": size, "input_channels": [],
                                         "target_channels": ["slice"], "condition": cond}))
        return runs
    if study == "S2":
        size = _dataset_size(cfg, "s2", name)
        inputs = _as_list(entry.get("inputs"), list(S2_INPUTS))
        spaces = _as_list(entry.get("spaces"), list(S2_SPACES))
        losses = _as_list(entry.get("losses"), list(S2_LOSSES))
        for values, allowed, key in ((inputs, S2_INPUTS, "inputs"), (spaces, S2_SPACES, "spaces"),
                                     (losses, S2_LOSSES, "losses")):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise _fail(name, f"unknown {key} {bad}", f"Use values from {', '.join(allowed)}")
        runs = []
        for inp, space, loss in itertools.product(inputs, spaces, losses):
            tok = "_".join(_TOKEN.get(t, t) for t in (inp, space, loss))
            extra = {"dataset": f"s2_{space}", "size": size, "input_channels": S2_INPUTS[inp],
                     "target_channels": ["spect"], "input": inp, "space": space, "loss": loss}
            if entry.get("lambda_ssim") is None:
                preset_ssim = PRESET_SSIM_WEIGHT.get(entry.get("preset") or "study")
                extra["lambda_ssim"] = S2_LOSSES[loss] if loss == "l1" or preset_ssim is None else preset_ssim
            elif loss == "l1":
                extra["lambda_ssim"] = 0.0
            runs.append((f"{name}_{tok}", extra))
        return runs
    size = _dataset_size(cfg, "s3", name)
    return [(name, {"dataset": "s3", "size": size, "input_channels": ["spect_cbf"],
                    "target_channels": ["pet_cbf"], "loss": "l1+ssim" if entry.get("lambda_ssim") else "l1"})]


def _check_spec(spec: dict) -> None:
    name = spec["experiment"]
    for key in ("epochs", "batch_size"):
        if int(spec[key]) < 1:
            raise _fail(name, f"{key} is {spec[key]}", f"Set {key} to a positive integer")
    if float(spec["lr"]) <= 0:
        raise _fail(name, f"lr is {spec['lr']}", "Set a positive learning rate")
    if len(spec["betas"]) != 2 or not all(0 <= float(b) < 1 for b in spec["betas"]):
        raise _fail(name, f"betas {spec['betas']} invalid", "Give two Adam betas in [0, 1), e.g. [0.5, 0.999]")
    metrics = {"vae": ("ssim", "l1"), "cvae": ("ssim", "l1"), "pix2pix": ("ssim", "l1"), "fastgan": ("gan",)}
    if spec["selection_metric"] not in metrics[spec["model"]]:
        raise _fail(name, f"selection_metric {spec['selection_metric']!r} does not fit model {spec['model']}",
                    f"Use one of {', '.join(metrics[spec['model']])}")
    if spec["model"] == "fastgan":
        from ..selection import GAN_CRITERIA

        if spec["selection_criterion"] not in GAN_CRITERIA:
            raise _fail(name, f"selection_criterion {spec['selection_criterion']!r} is unknown",
                        f"Use one of {', '.join(GAN_CRITERIA)}")
    if spec["training"]["on_config_change"] not in ("restart", "error"):
        raise _fail(name, f"training.on_config_change is {spec['training']['on_config_change']!r}",
                    "Use restart or error")


def get_family(name: str) -> Family:
    """The registered :class:`~spectsynth.models.registry.Family` called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}") from None


def build_model(family: str, cfg: dict):
    """Build the networks of a family as a ``torch.nn.ModuleDict``.

    ``cfg`` is a resolved experiment spec (or any dict with ``size``, ``input_channels``,
    ``target_channels``, ``condition`` and the family's options; a missing option takes the
    family's default).
    """
    return get_family(family).build(cfg)


def init_weights(module, gain: float = 0.02) -> None:
    """DCGAN/pix2pix initialisation: conv/linear weights ~ N(0, gain), batch-norm ~ N(1, gain)."""
    import torch.nn as nn

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
