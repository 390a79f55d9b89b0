"""S0's variational autoencoders: ``vae`` (clinical task) and ``cvae`` (restoration task).

Network :mod:`.network`, losses :mod:`.losses` (ELBO), training :mod:`.recipe`, inference
:mod:`.infer` (the paired prediction shared with pix2pix, and sampling a normal database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import fragment_defaults
from ..registry import Family

# The families' settings, declared in options.yaml beside this file.
DEFAULTS: dict[str, Any] = fragment_defaults(Path(__file__).with_name("options.yaml"))
SELECTION_METRICS = ("ssim", "l1")


def _networks():
    from .network import build

    return build


def _recipe():
    from .recipe import VAERecipe

    return VAERecipe


def _predict():
    from ..paired import predict_paired_table

    return predict_paired_table


FAMILIES = tuple(
    Family(name=name, package=__name__, defaults=dict(DEFAULTS), selection_metrics=SELECTION_METRICS,
           paired=True, prediction_units="normalised dataset units (see the gain/bias columns of the table)",
           networks=_networks, recipe=_recipe, predict=_predict)
    for name in ("vae", "cvae"))
