"""Published reference values of the reproduced studies.

Each study keeps its own in ``spectsynth/studies/<key>/published.py`` (``PUBLISHED``); this
module reads them through the study registry. An entry is a mapping with

* ``source`` -- where the numbers are printed (paper, table or figure);
* ``scale`` -- the data they were measured on (patients, test slices), printed beside them
  so a reader sees at once how far a run is from the paper's scale;
* named groups of values (e.g. ``table4`` for S2, ``ssim`` and ``regressions`` for S3), each
  a tuple of plain records (dicts) or a dict of numbers.

The evaluation reads the values through :func:`published` / :func:`published_records` and
writes them next to the run's own numbers (``published.tsv`` of each study).  Add a quantity by
adding a named group to the study's entry.  Nothing in
this module is computed: every number is copied from the paper named in ``source``.

S0 and S1 hold their values under ``values``, one record per quantity:
``quantity`` (what is measured), ``published`` (as printed), ``value`` (number or None),
``relation`` (``=``, ``<``, ``>``; a paper that gives only a bound, "< 3 px", "P > 0.08", keeps the
bound as text and, where it can be compared, as a number), ``unit`` and ``source``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EvaluationError


def published(study: str) -> dict[str, Any]:
    """The published entry of ``study``; an :class:`EvaluationError` names the known studies."""
    from importlib import import_module

    from . import REGISTRY

    if study not in REGISTRY:
        raise EvaluationError(f"no published values for study {study!r} (known: {', '.join(REGISTRY)})",
                              hint="Add them to the study's published.py under spectsynth/studies/")
    return import_module(f"{type(REGISTRY[study]).__module__}.published").PUBLISHED


def published_records(study: str, group: str) -> list[dict]:
    """One named group of a study's published values as a list of records (dicts)."""
    entry = published(study)
    if group not in entry:
        known = [k for k in entry if k not in ("source", "scale")]
        raise EvaluationError(f"study {study} has no published group {group!r} (known: {', '.join(known)})",
                              hint="Add it to the study's published.py under spectsynth/studies/")
    value = entry[group]
    if isinstance(value, Mapping):
        return [{"name": k, "value": v} for k, v in value.items()]
    return [dict(r) for r in value]


def reading_scores() -> dict[tuple[str, str], float]:
    """The published mean similarity scores of the predicted images, by (reading, source): the
    ``reading`` group of every study that reports one (S3), for :func:`spectsynth.reading.score_reading`."""
    from . import REGISTRY

    return {(reading, "prediction"): float(v) for name in REGISTRY
            for reading, v in (published(name).get("reading") or {}).items()}
