"""Splits by subject: deterministic assignment of subjects to train / val / test, and the leak check.

Kept apart from :mod:`spectsynth.datasets` (and, like the whole data layer, free of the study
registry) so that the demo cohort's builder can use the same split as the datasets without
importing them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .config import core_defaults
from .errors import ConfigError
from .inputs.cohort import participant  # noqa: F401  (re-exported)
from .mapping import merge

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

# The split settings every dataset starts from (``$defs/split`` of the core options; see
# :func:`assign_splits`); each study's dataset block sets its own fractions and whether
# validation comes from the training subjects (absent: it does not).
SPLIT_DEFAULT: dict[str, Any] = core_defaults("$defs/split")


def assign_splits(subjects: Iterable[str], split_cfg: Mapping, *, dataset: str = "",
                  forced: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map each subject to ``train``/``val``/``test`` (deterministic).

    ``method: counts`` shuffles the sorted participant list with ``seed`` and cuts it into
    ``counts.train``, ``counts.val`` and ``counts.test`` participants, which must add up to the
    cohort; ``method: fractions`` cuts it by the fractions (rounded; every split with a
    positive fraction gets at least one participant when there are enough); ``method: lists``
    takes explicit lists, and subjects in no list are an error.  With ``val_within_train``
    validation shares the training subjects (S0's design) and the ``val`` share must be 0.

    ``forced`` (participant -> split) places some participants first (S2's resected patients go
    to its unseen test set); the shuffle then fills what is left of each split's quota.  A
    forced participant outside the cohort, or more forced into a split than its quota holds,
    is an error.
    """
    where = f"dataset {dataset}: " if dataset else ""
    units = sorted({str(s) for s in subjects})
    # Sessions of one participant (units "<sub>_ses-<ses>") always share a split.
    subjects = sorted({participant(u) for u in units})
    cfg = merge(SPLIT_DEFAULT, split_cfg)
    if cfg["method"] == "lists":
        lists = {k: [participant(str(s)) for s in (cfg["lists"].get(k) or [])] for k in SPLITS}
        check_split_leak({k: v for k, v in lists.items()}, dataset=dataset)
        mapping = {s: k for k, v in lists.items() for s in v}
        missing = [s for s in subjects if s not in mapping]
        if missing:
            raise ConfigError(
                f"{where}subject(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} are in none of "
                "split.lists.train/val/test; add them to one list or remove them from the subject list")
        return {u: mapping[participant(u)] for u in units}
    n = len(subjects)
    if cfg["method"] == "counts":
        counts = {k: cfg["counts"].get(k, 0) for k in SPLITS}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts.values()):
            raise ConfigError(f"{where}split.counts {counts} must be whole numbers >= 0")
        if cfg.get("val_within_train", False) and counts["val"] > 0:
            raise ConfigError(f"{where}split.val_within_train is true, so split.counts.val must be 0 "
                              "(validation uses other records of the training subjects)")
        total = sum(counts.values())
        if total != n:
            raise ConfigError(
                f"{where}split.counts asks for {counts['train']} + {counts['val']} + {counts['test']} = {total} "
                f"subjects, but the cohort has {n}. Set inputs.demo.n_subjects: {total} (demo cohort), give a "
                f"BIDS/DICOM cohort of exactly {total} participants (inputs.bids.participant_label / exclude "
                "select them), or change the split counts")
    elif cfg["method"] == "fractions":
        fr = {k: float(cfg["fractions"].get(k, 0.0)) for k in SPLITS}
        if any(v < 0 for v in fr.values()) or not math.isclose(sum(fr.values()), 1.0, abs_tol=1e-6):
            raise ConfigError(f"{where}split.fractions {fr} must be >= 0 and sum to 1")
        if cfg.get("val_within_train", False) and fr["val"] > 0:
            raise ConfigError(f"{where}split.val_within_train is true, so split.fractions.val must be 0 "
                              "(validation uses other records of the training subjects)")
        counts = {k: int(round(fr[k] * n)) for k in SPLITS}
        for k in ("val", "test"):
            if fr[k] > 0 and counts[k] == 0 and n >= 3:
                counts[k] = 1
        counts["train"] = n - counts["val"] - counts["test"]
    else:
        raise ConfigError(f"{where}split.method {cfg['method']!r} unknown; use counts, fractions or lists")
    forced = {participant(str(s)): k for s, k in (forced or {}).items()}
    stray = sorted(set(forced) - set(subjects))
    if stray:
        raise ConfigError(f"{where}subject(s) {stray[:10]} are to be placed in a fixed split but are not in the "
                          "cohort")
    by_participant: dict[str, str] = {}
    for k in SPLITS:
        fixed = sorted(s for s, v in forced.items() if v == k)
        if len(fixed) > counts[k]:
            raise ConfigError(
                f"{where}{len(fixed)} subject(s) must go to the {k} split ({', '.join(fixed[:10])}) but it holds "
                f"only {counts[k]}; give the {k} split more subjects (split.counts/fractions) or fewer such "
                "subjects (inputs.demo.n_resected for the demo's resections)")
        by_participant.update(dict.fromkeys(fixed, k))
    order = [s for s in subjects if s not in forced]
    np.random.default_rng(int(cfg["seed"]) if cfg["seed"] is not None else 0).shuffle(order)
    i = 0
    for k in SPLITS:
        free = counts[k] - sum(1 for v in forced.values() if v == k)
        for s in order[i:i + free]:
            by_participant[s] = k
        i += free
    return {u: by_participant[participant(u)] for u in units}


def study_split_seed(key: str) -> int:
    """The split seed a study draws from when ``split.seed`` is not set: derived from the study's
    key alone, so no study's subjects are shuffled like another's (the same seed over the same
    sorted cohort would give every study the same test subjects)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"spectsynth split {key}".encode()).digest()[:4], "big")


def check_split_leak(splits: Mapping[str, Iterable] | pd.DataFrame, *, dataset: str = "",
                     val_within_train: bool = False) -> None:
    """Stop when a subject appears in two splits.

    ``splits`` is ``{split: subjects}`` or an index table (columns subject, split and, for
    ``val_within_train``, record/slice_index).  With ``val_within_train`` train and val may
    share subjects but no source slice; test must share nothing with either.
    """
    where = f"dataset {dataset}: " if dataset else ""
    if isinstance(splits, pd.DataFrame):
        table = splits
        groups = {k: {participant(s) for s in table.loc[table["split"] == k, "subject"].astype(str)}
                  for k in SPLITS}
    else:
        table = None
        groups = {k: {participant(str(s)) for s in v} for k, v in splits.items()}
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if val_within_train and {a, b} == {"train", "val"}:
                if table is not None:
                    key = ["subject", "record", "slice_index"]
                    ta = set(map(tuple, table.loc[table["split"] == a, key].astype(str).values))
                    tb = set(map(tuple, table.loc[table["split"] == b, key].astype(str).values))
                    both = sorted(ta & tb)
                    if both:
                        raise ConfigError(f"{where}{len(both)} source slice(s) are in both train and val "
                                          f"(first: {both[0]}); the validation records must differ from "
                                          "the training records")
                continue
            both = sorted(groups[a] & groups[b])
            if both:
                raise ConfigError(
                    f"{where}subject(s) {both[:10]} appear in both the {a} and the {b} split; a subject "
                    "must belong to one split only. Fix split.lists (or split.seed/fractions)")


