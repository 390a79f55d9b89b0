"""Model registry: the families, their defaults and :func:`build_model`.

Importing this module does not import torch: the Snakefile reads the families while it builds
the DAG (through :func:`spectsynth.experiments.expand_experiments`; a dry-run must not need a
GPU build of torch, nor pay its import time).  The networks are imported lazily by
:func:`build_model`.

Families (``model:`` in an experiment):

========  ===========  =========================================================
family    studies      networks (keys of the ModuleDict returned by build_model)
========  ===========  =========================================================
vae       S0 clinical  ``vae``: :class:`~spectsynth.models.vae.VAE`
cvae      S0 restore   ``vae``: :class:`~spectsynth.models.vae.ConditionalVAE`
fastgan   S1           ``G``, ``D``: conditional FastGAN (the EMA copy of G is made by the harness)
pix2pix   S2, S3       ``G``: U-Net, ``D``: PatchGAN
========  ===========  =========================================================
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..labels import LEVELS, PATTERNS

FAMILIES = ("vae", "cvae", "fastgan", "pix2pix")

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "vae": {"latent_dim": 128, "base_channels": 32, "max_channels": 256, "beta": 1.0,
            "kl_warmup_epochs": 10, "vae_recon": "mse"},
    "cvae": {"latent_dim": 128, "base_channels": 32, "max_channels": 256, "beta": 1.0,
             "kl_warmup_epochs": 10, "vae_recon": "mse"},
    "fastgan": {"latent_dim": 256, "embed_dim": 64, "base_channels": 16, "max_channels": 512,
                "ema_decay": 0.999, "recon_norm": "l1", "spectral_norm": True,
                "gan_feature_weight": 1.0, "gan_eval_samples": 64, "gan_feature_steps": 300,
                "selection_criterion": "feature_distance"},
    "pix2pix": {"ngf": 64, "ndf": 64, "n_layers": 3, "use_dropout": True, "lambda_adv": 1.0,
                "lambda_l1": 100.0, "lambda_ssim": 0.0},
}

def build_model(family: str, cfg: dict):
    """Build the networks of a family as a ``torch.nn.ModuleDict``.

    ``cfg`` is a resolved experiment spec (or any dict with ``size``, ``input_channels``,
    ``target_channels``, ``condition`` and the family's options).
    """
    import torch.nn as nn

    def opt(key: str):
        return cfg.get(key, FAMILY_DEFAULTS.get(family, {}).get(key))

    size = int(cfg["size"])
    n_in = len(cfg.get("input_channels") or []) or 1
    n_out = len(cfg.get("target_channels") or []) or 1
    if family == "vae":
        from .vae import VAE
        return nn.ModuleDict({"vae": VAE(n_out, size, latent_dim=opt("latent_dim"),
                                         base_channels=opt("base_channels"),
                                         max_channels=opt("max_channels"))})
    if family == "cvae":
        from .vae import ConditionalVAE
        return nn.ModuleDict({"vae": ConditionalVAE(n_in, n_out, size, latent_dim=opt("latent_dim"),
                                                    base_channels=opt("base_channels"),
                                                    max_channels=opt("max_channels"))})
    if family == "fastgan":
        from .fastgan import Discriminator, Generator
        n_cond = int((cfg.get("condition") or {}).get("n_cond", len(LEVELS) + len(PATTERNS)))
        g = Generator(size, n_cond, latent_dim=opt("latent_dim"), embed_dim=opt("embed_dim"),
                      base_channels=opt("base_channels"), max_channels=opt("max_channels"),
                      out_channels=n_out, spectral=bool(opt("spectral_norm")))
        d = Discriminator(size, n_cond, base_channels=opt("base_channels"),
                          max_channels=opt("max_channels"), in_channels=n_out,
                          spectral=bool(opt("spectral_norm")))
        return nn.ModuleDict({"G": g, "D": d})
    if family == "pix2pix":
        from .pix2pix import PatchDiscriminator, UnetGenerator
        g = UnetGenerator(n_in, n_out, size, ngf=opt("ngf"), use_dropout=bool(opt("use_dropout")))
        d = PatchDiscriminator(n_in + n_out, ndf=opt("ndf"), n_layers=opt("n_layers"))
        return nn.ModuleDict({"G": g, "D": d})
    raise ConfigError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")


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
