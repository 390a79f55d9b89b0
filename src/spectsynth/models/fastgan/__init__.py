"""S1's conditional FastGAN: generator, discriminator with reconstruction decoders, EMA generator.

Network :mod:`.network`, losses :mod:`.losses` (hinge, Eq. 4 reconstruction), training
:mod:`.recipe`, checkpoint selection :mod:`.scoring` (feature network, S1 distances,
:func:`~.scoring.gan_score`), inference :mod:`.infer` (samples per condition).
"""

from __future__ import annotations

from typing import Any

from ..registry import Family

# How a FastGAN checkpoint is selected (``selection_criterion``, computed by
# spectsynth.models.fastgan.scoring.gan_score): the Frechet distance of a feature network's
# embeddings, or the distance of the conditions' own quantities (mean counts, L/R ratio, which S1
# tests); the first is the default. Both are evaluated and kept (best-<criterion>.pt).
GAN_CRITERIA = ("feature_distance", "study_quantities")

DEFAULTS: dict[str, Any] = {"latent_dim": 256, "embed_dim": 64, "base_channels": 16, "max_channels": 512,
                            "ema_decay": 0.999, "recon_norm": "l1", "spectral_norm": True,
                            "gan_feature_weight": 1.0, "gan_eval_samples": 64, "gan_feature_steps": 300,
                            "selection_criterion": GAN_CRITERIA[0]}
SELECTION_METRICS = ("gan",)


def _networks():
    from .network import build

    return build


def _recipe():
    from .recipe import FastGANRecipe

    return FastGANRecipe


def _predict():
    from .infer import predict_gan_table

    return predict_gan_table


FAMILY = Family(name="fastgan", package=__name__, defaults=DEFAULTS, selection_metrics=SELECTION_METRICS,
                paired=False, prediction_units="max-normalised [0, 1] (dataset s1 units)",
                selection_criteria=GAN_CRITERIA,
                networks=_networks, recipe=_recipe, predict=_predict)
