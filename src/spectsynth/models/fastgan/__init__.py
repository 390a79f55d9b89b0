"""S1's conditional FastGAN: generator, discriminator with reconstruction decoders, EMA generator.

Network :mod:`.network`, losses :mod:`.losses` (hinge, Eq. 4 reconstruction), training
:mod:`.recipe`, checkpoint selection :mod:`.scoring` (feature network, S1 distances,
:func:`~.scoring.gan_score`), inference :mod:`.infer` (samples per condition).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import fragment_defaults, read_fragment
from ..registry import Family

OPTIONS = Path(__file__).with_name("options.yaml")
# The family's settings, declared in options.yaml beside this file.
DEFAULTS: dict[str, Any] = fragment_defaults(OPTIONS)
# How a FastGAN checkpoint is selected (``selection_criterion``, computed by
# spectsynth.models.fastgan.scoring.gan_score): the Frechet distance of a feature network's
# embeddings, or the distance of the conditions' own quantities (mean counts, L/R ratio, which S1
# tests); the first is the default. Both are evaluated and kept (best-<criterion>.pt).
GAN_CRITERIA: tuple[str, ...] = tuple(read_fragment(OPTIONS)["experiments.*.selection_criterion"]["enum"])
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
