"""The model-family registry: one :class:`Family` per ``model:`` value of an experiment.

Light on purpose (no torch): the Snakefile imports :mod:`spectsynth.models` while it builds
the DAG.  A family's network, training recipe and inference are reached through its lazy
accessors, which import the family's modules only when called.

Each family package (``spectsynth.models.<package>``) holds::

    __init__.py   its defaults and its registry entries (light)
    network.py    its networks and ``build(family, cfg)`` -> torch.nn.ModuleDict
    losses.py     its own losses (the shared ones are in spectsynth.losses)
    recipe.py     its training recipe (the steps the generic loop in spectsynth.train calls)
    infer.py      its inference (predictions of the test split)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Family:
    """What the rest of the package needs to know about a model family.

    ``defaults``: the family's settings (merged into every experiment of it);
    ``selection_metrics``: the ``selection_metric`` values it accepts (first = usual);
    ``paired``: whether it predicts one output per test slice (input -> target) rather than
    sampling images per condition; ``prediction_units``: what its predictions' pixel values
    mean (written into the prediction file);
    ``selection_criteria``: the ``selection_criterion`` values it accepts (first = default;
    empty when the family has none);
    ``networks``/``recipe``/``predict``: lazy accessors returning ``build(family, cfg)``, the
    training recipe class and ``predict(nets, spec, test_shard, index, *, batch_size,
    device, seed) -> (arrays, table)``.
    """

    name: str
    package: str
    defaults: Mapping[str, Any]
    selection_metrics: tuple[str, ...]
    paired: bool
    prediction_units: str
    networks: Callable[[], Callable]
    recipe: Callable[[], type]
    predict: Callable[[], Callable]
    selection_criteria: tuple[str, ...] = ()

    def build(self, cfg: Mapping):
        """The family's networks for a resolved experiment spec (a ``torch.nn.ModuleDict``)."""
        return self.networks()(self.name, cfg)


def network_inputs(cfg: Mapping, defaults: Mapping[str, Any]) -> tuple[int, int, int, Callable[[str], Any]]:
    """What every family's ``build(family, cfg)`` reads from a resolved spec: the slice size, the
    number of input and of target channels (at least 1 each), and a lookup of the family's
    options (the spec's value, else the family's default)."""
    def option(key: str) -> Any:
        return cfg.get(key, defaults.get(key))

    n_in = len(cfg.get("input_channels") or []) or 1
    n_out = len(cfg.get("target_channels") or []) or 1
    return int(cfg["size"]), n_in, n_out, option


def make_registry(*families: Family) -> Mapping[str, Family]:
    """A read-only name -> family mapping (names must be unique)."""
    out: dict[str, Family] = {}
    for f in families:
        if f.name in out:
            raise ValueError(f"model family {f.name!r} is registered twice")
        out[f.name] = f
    return MappingProxyType(out)
