"""Model registry: the families, their defaults and :func:`build_model`.

Importing this module does not import torch: the Snakefile reads the families while it builds
the DAG (through :func:`spectsynth.experiments.expand_experiments`; a dry-run must not need a
GPU build of torch, nor pay its import time).  Each family is a package of its own (network, defaults,
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

from typing import Any

from ..errors import ConfigError
from . import fastgan as _fastgan
from . import pix2pix as _pix2pix
from . import vae as _vae
from .registry import Family, make_registry

# name -> Family (defaults, selection metrics, paired or not, lazy network/recipe/inference)
REGISTRY = make_registry(*_vae.FAMILIES, _fastgan.FAMILY, _pix2pix.FAMILY)
FAMILIES = tuple(REGISTRY)

# Each family's defaults, from its package (models/<family>/__init__.py).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {name: dict(f.defaults) for name, f in REGISTRY.items()}


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
