"""The published designs: which subjects and how many images every dataset holds.

:func:`dataset_design` decides, from the configuration, the subject list and the simulation
design alone (no image is read), each subject's split and the number of images of every split
and condition.  :func:`spectsynth.datasets.build_dataset` builds what it says and stops when
the built index differs from it; ``spectsynth plan`` prints it (:func:`plan`,
:func:`format_plan`).  So the plan cannot drift from what is built.

Designs
-------
* **S0** (slides): every MRI's DaT stack holds the normal original, ``simulate.dat.n_main``
  "main" and ``n_validation`` "validation" degradations (the simulator's ``design_set`` of each
  volume, in its truth table).  ``datasets.s0.design_sets`` says which set each split takes:
  train = the training MRIs x main, val = the *same* MRIs x validation
  (``split.val_within_train``), test = the other MRIs x main; the test MRIs' validation
  degradations are not used.  Paper: 36 x 17 = 612, 36 x 10 = 360, 9 x 17 = 153.
* **S1** (Table 1): ``datasets.s1.counts`` gives the slices per level x pattern of the training
  split, multiplied by ``counts_scale`` and rounded half up (a non-zero cell keeps at least one
  slice, so every condition stays); the val and test splits hold the same table scaled by their
  number of subjects relative to the training split.  A cell of 0 (S1: bilateral at CER) is an
  excluded condition.  The slices are drawn from the simulated scans of the split's subjects
  whose pattern at that level matches (:func:`sample_cells`).
* **S2 / S3**: ``n_slices`` axial slices of every subject.

Splits are by subject (:func:`spectsynth.splits.assign_splits`): explicit numbers
(``split.method: counts``, checked against the cohort size), fractions or lists.  Each study
shuffles with its own seed (``split.seed``, derived from the study's key when not set), so no
study's test set follows another's.  Post-surgical subjects (:func:`spectsynth.inputs.cohort.cohort_resected`)
go where the study's ``resected_split`` says: S2's unseen test set; every other study leaves
them out (its counts add up to the cohort without them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import CORE_FRAGMENT, declared
from .errors import ConfigError, InputDataError
from .inputs.cohort import cohort_resected
from .labels import LEVELS, PATTERNS
from .mapping import merge
from .splits import SPLITS, assign_splits, study_split_seed

NORMALISATIONS: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "$defs/normalise")["enum"])


def dataset_spec(study, cfg: Mapping, name: str) -> dict[str, Any]:
    """Resolved settings of ``study``'s dataset ``name`` (``datasets.<study key>`` merged over the
    study's ``dataset_defaults``).  ``study`` is a :class:`spectsynth.studies.base.Study`: the data
    layer is handed its study, it never looks one up (:func:`spectsynth.studies.dataset_spec`
    finds the study of a dataset name)."""
    key = study.key
    spec = merge(study.dataset_defaults, (cfg.get("datasets") or {}).get(key))
    spec.update(name=name, key=key, study=study.name)
    study.resolve_dataset(spec, name)
    if spec["split"].get("seed") is None:
        spec["split"] = {**spec["split"], "seed": study_split_seed(key)}
    size = int(spec["size"])
    if size < 8 or size & (size - 1):
        raise ConfigError(f"dataset {name}: datasets.{key}.size = {size}; use a power of two (32, 64, 128, 256)")
    if spec["normalise"] not in NORMALISATIONS:
        raise ConfigError(f"dataset {name}: unknown normalise {spec['normalise']!r}; use one of "
                          f"{', '.join(NORMALISATIONS)}")
    return spec


def half_up(x: float) -> int:
    """Round half up (0.5 -> 1, 1.5 -> 2), unlike Python's round-half-even."""
    return int(math.floor(x + 0.5 + 1e-9))


@dataclass
class DatasetDesign:
    """One dataset's design: subjects per split, which records go where, images per condition."""

    name: str
    study: str
    spec: dict[str, Any]
    splits: dict[str, str]                                  # subject -> split of its participant
    subjects: dict[str, list[str]]                          # split -> subjects whose images it holds
    expected: pd.DataFrame                                  # split, condition columns, images
    per_set: dict[str, int] = field(default_factory=dict)   # S0: degradations per design set
    cell_targets: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)   # S1
    notes: list[str] = field(default_factory=list)
    owner: Any = None        # the Study whose design this is (spectsynth.studies.base.Study)

    def record_split(self, rec: Mapping) -> str | None:
        """The split a record's images go to, or None when the design leaves the record out."""
        subject = str(rec.get("subject", ""))
        split = self.splits.get(subject)
        if split is None:
            return None
        return self.owner.record_split(self, rec, split)


def first_source(rec: Mapping) -> str:
    src = rec.get("source")
    if isinstance(src, Mapping):
        return str(next(iter(src.values()), ""))
    return str(src or "")


def dataset_design(study, cfg: Mapping, name: str, subjects: Sequence[str]) -> DatasetDesign:
    """The design of ``study``'s dataset ``name`` for these subjects (``cfg``: the workflow
    config; ``datasets:`` and, for S0, ``simulate:`` are read)."""
    spec = dataset_spec(study, cfg, name)
    split_cfg = spec["split"]
    within = bool(split_cfg.get("val_within_train"))
    st = study
    if within and not st.val_within_train:
        raise ConfigError(f"dataset {name}: split.val_within_train is for studies whose validation images are "
                          "other images of the training subjects; set it to false for this dataset")
    # Post-surgical subjects: only a study that takes them (S2, its unseen set) sees them.
    resected = cohort_resected(cfg, subjects)
    if st.resected_split is None:
        kept = [s for s in subjects if str(s) not in resected]
        forced = None
    else:
        kept = list(subjects)
        forced = dict.fromkeys(resected, st.resected_split)
    try:
        splits = assign_splits(kept, split_cfg, dataset=name, forced=forced)
    except ConfigError as exc:
        if len(kept) == len(subjects):
            raise
        raise ConfigError(f"{exc}. The cohort's {len(subjects) - len(kept)} post-surgical subject(s) are left out "
                          "of this study (only a study whose resected_split takes them sees them): lower inputs.demo.n_resected (demo) or "
                          "add subjects") from None
    by_split = {k: sorted(s for s, v in splits.items() if v == k) for k in SPLITS}
    if within:
        by_split["val"] = list(by_split["train"])
    n = {k: len(v) for k, v in by_split.items()}
    rows: list[dict] = []
    design = DatasetDesign(name, st.name, spec, dict(splits), by_split, pd.DataFrame(), owner=st)
    rows = st.design(design, spec, n, cfg)
    cols = ["split", *st.condition_columns, "images"]
    design.expected = pd.DataFrame(rows, columns=cols)
    for split in ("train", "val"):
        if not design.expected.loc[design.expected["split"] == split, "images"].sum():
            raise ConfigError(
                f"dataset {name}: the {split} split would be empty ({n[split]} of {len(design.splits)} subjects"
                + (", and the cell counts round to 0 there" if design.cell_targets and n[split] else "")
                + f"); add subjects or change datasets.{spec['key']}.split"
                + (f" or datasets.{spec['key']}.counts / counts_scale" if design.cell_targets else ""))
    return design


def count_table(index: pd.DataFrame, condition_columns: Sequence[str],
                keys: pd.DataFrame | None = None) -> pd.DataFrame:
    """Images per split and condition (the study's ``condition_columns``) of a built index, in the
    layout of :attr:`DatasetDesign.expected` (rows of ``keys`` that the index lacks count 0)."""
    by = ["split", *condition_columns]
    got = index.groupby(by).size().rename("images").reset_index() if len(index) else \
        pd.DataFrame(columns=[*by, "images"])
    if keys is None:
        return got
    merged = keys[by].merge(got, on=by, how="left").fillna({"images": 0})
    extra = got.merge(keys[by], on=by, how="left", indicator=True)
    merged = pd.concat([merged, extra[extra["_merge"] == "left_only"][[*by, "images"]]], ignore_index=True)
    merged["images"] = merged["images"].astype(int)
    return merged


def check_built(design: DatasetDesign, index: pd.DataFrame) -> None:
    """Stop when a built index differs from its design (images per split and condition, subjects)."""
    got = count_table(index, design.owner.condition_columns, design.expected)
    want = design.expected.merge(got, on=[c for c in design.expected.columns if c != "images"],
                                 how="outer", suffixes=("_design", "_built")).fillna(0)
    bad = want[want["images_design"] != want["images_built"]]
    problems = [", ".join(f"{c} {r[c]}" for c in want.columns if c not in ("images_design", "images_built"))
                + f": {int(r['images_built'])} images, the design says {int(r['images_design'])}"
                for _, r in bad.iterrows()]
    for split in SPLITS:
        have = set(index.loc[index["split"] == split, "subject"].astype(str))
        need = set(design.subjects[split]) if design.expected.loc[
            design.expected["split"] == split, "images"].sum() else set()
        if not design.cell_targets and have != need:
            problems.append(f"split {split}: subjects {sorted(have ^ need)[:5]} differ from the design")
    if problems:
        hint = ("Rerun the simulation of these subjects (their truth tables do not match simulate.dat)"
                if design.per_set else "Check the subject list and the simulated files")
        raise InputDataError(f"dataset {design.name}: the built dataset differs from its design: "
                             + "; ".join(problems[:6]), hint=hint)


def sample_cells(rows: Sequence[Mapping], design: DatasetDesign, seed: int) -> list[int]:
    """S1: indices of the slices kept, ``design.cell_targets[split][(level, pattern)]`` per cell.

    Per split and cell, the candidates (slices of that split's subjects whose pattern at that
    level matches) are grouped by subject; with ``numpy.random.default_rng([seed, split,
    level, pattern])`` (indices in SPLITS, LEVELS, PATTERNS) the subjects and each subject's
    candidates are put in random order and taken round-robin (one per subject in turn), so a
    cell is spread over as many subjects as it can be.  Too few candidates stop the run with
    the number of subjects the cell needs.
    """
    keep: list[int] = []
    n_total = len(design.splits)
    for si, split in enumerate(SPLITS):
        n_subj = len(design.subjects[split])
        for (lv, p), n in design.cell_targets[split].items():
            if n <= 0:
                continue
            cand = sorted((i for i, r in enumerate(rows)
                           if r["split"] == split and r["level"] == lv and r["pattern"] == p),
                          key=lambda i: (str(rows[i]["subject"]), str(rows[i].get("source", "")),
                                         int(rows[i]["slice_index"])))
            if len(cand) < n:
                raise _shortfall(design, split, lv, p, n, len(cand), n_subj, n_total)
            rng = np.random.default_rng([int(seed), si, LEVELS.index(lv), PATTERNS.index(p)])
            groups: dict[str, list[int]] = {}
            for i in cand:
                groups.setdefault(str(rows[i]["subject"]), []).append(i)
            names = sorted(groups)
            queues = [[groups[s][k] for k in rng.permutation(len(groups[s]))]
                      for s in (names[k] for k in rng.permutation(len(names)))]
            picked: list[int] = []
            depth = 0
            while len(picked) < n:
                for q in queues:
                    if depth < len(q):
                        picked.append(q[depth])
                        if len(picked) == n:
                            break
                depth += 1
            keep += picked
    return sorted(keep)


def _shortfall(design: DatasetDesign, split: str, level: str, pattern: str, need: int, have: int,
               n_subj: int, n_total: int) -> ConfigError:
    what = (f"dataset {design.name}: the {split} split ({n_subj} subjects) holds {have} slices of "
            f"{pattern} at {level}, but the design asks for {need} (datasets.{design.spec['key']}.counts x counts_scale "
            f"{float(design.spec['counts_scale']):g})")
    if have == 0 or n_subj == 0:
        return ConfigError(f"{what}; none of its subjects' simulated scans shows that pattern at that level. "
                           f"Simulate more such scans per MRI (simulate.perfusion.n_{pattern}), "
                           f"add subjects, or set datasets.{design.spec['key']}.counts.{level}.{pattern} to 0")
    rate = have / n_subj
    split_need = math.ceil(need / rate)
    cohort_need = math.ceil(split_need * n_total / n_subj)
    return ConfigError(
        f"{what}; at {rate:.2f} such slices per subject the {split} split needs about {split_need} subjects, "
        f"a cohort of about {cohort_need} with this split. Raise inputs.demo.n_subjects (or use a larger BIDS "
        f"cohort) and datasets.{design.spec['key']}.split, simulate more scans per MRI (simulate.perfusion."
        f"n_normal / n_unilateral / n_bilateral), or lower datasets.{design.spec['key']}.counts_scale")


def experiment_counts(design: DatasetDesign, levels: Sequence[str] = ()) -> pd.DataFrame:
    """Images per split of one experiment (S1: only the rows at ``levels``)."""
    exp = design.expected
    if design.cell_targets and levels:
        exp = exp[exp["level"].isin(levels)]
    return exp.groupby("split", sort=False)["images"].sum().reindex(list(SPLITS)).fillna(0).astype(int)
