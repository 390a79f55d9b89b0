"""pix2pix (S2 MRI/PET -> SPECT, S3 SPECT -> PET): U-Net generator and PatchGAN discriminator.

Network :mod:`.network`, losses :mod:`.losses` (BCE adversarial; L1 and SSIM terms from
:mod:`spectsynth.losses`), training :mod:`.recipe`; inference is the paired prediction
(:mod:`spectsynth.models.paired`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import fragment_defaults
from ..registry import Family

# The family's settings, declared in options.yaml beside this file.
DEFAULTS: dict[str, Any] = fragment_defaults(Path(__file__).with_name("options.yaml"))
SELECTION_METRICS = ("ssim", "l1")


def _networks():
    from .network import build

    return build


def _recipe():
    from .recipe import Pix2PixRecipe

    return Pix2PixRecipe


def _predict():
    from ..paired import predict_paired_table

    return predict_paired_table


FAMILY = Family(name="pix2pix", package=__name__, defaults=DEFAULTS, selection_metrics=SELECTION_METRICS,
                paired=True, prediction_units="normalised dataset units (see the gain/bias columns of the table)",
                networks=_networks, recipe=_recipe, predict=_predict)
