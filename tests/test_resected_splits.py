"""Post-surgical brains reach S2's unseen test set only, and every study draws its own split.

Planned for the demo, the tiny test run and every paper configuration (no image is read): per
dataset and split, the fraction of subjects with a resection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spectsynth.config import merge, validate_config
from spectsynth.errors import ConfigError
from spectsynth.planner import plan
from spectsynth.splits import assign_splits, study_split_seed
from spectsynth.studies import REGISTRY, cohort_resected, for_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "demo": ["config/config.yaml"],
    "tiny": ["config/config.yaml", "tests/configs/tiny.yaml"],
    **{f"paper {k}": ["config/config.yaml", f"config/studies/{k}.yaml"] for k in ("s0", "s1", "s2", "s3")},
}


def _config(files):
    cfg: dict = {}
    for f in files:
        cfg = merge(cfg, yaml.safe_load((REPO / f).read_text()) or {})
    validate_config(cfg)
    return cfg


def resected_fractions(cfg) -> dict[tuple[str, str], tuple[int, int]]:
    """(dataset, split) -> (resected subjects, subjects) of the planned design."""
    p = plan(cfg)
    resected = cohort_resected(cfg, p["subjects"])
    out = {}
    for name, d in p["designs"].items():
        for split, subjects in d.subjects.items():
            out[(name, split)] = (len(set(subjects) & resected), len(subjects))
        # a resected subject the study leaves out has no split at all
        if for_dataset(name).resected_split is None:
            assert not set(d.splits) & resected, name
    return out


@pytest.mark.parametrize("which", list(CONFIGS))
def test_only_s2s_unseen_set_holds_resected_brains(which):
    cfg = _config(CONFIGS[which])
    n_resected = int(cfg["inputs"]["demo"].get("n_resected", 0))
    fr = resected_fractions(cfg)
    for (name, split), (k, n) in fr.items():
        takes = for_dataset(name).resected_split
        if takes == split:
            assert k == n_resected, (which, name, split, k, n)
        else:
            assert k == 0, f"{which}: {k} of {n} subjects of {name}/{split} are post-surgical"
    if which in ("demo", "tiny", "paper s2"):
        assert n_resected > 0   # the configurations that run S2 do give it post-surgical patients


def test_study_splits_do_not_follow_each_other():
    cfg = _config(CONFIGS["demo"])
    p = plan(cfg)
    tests = {d.study: tuple(d.subjects["test"]) for d in p["designs"].values()}
    # each study shuffles with its own seed: the test sets are not one and the same list
    assert len(set(tests.values())) > 1
    seeds = {study_split_seed(s.key) for s in REGISTRY.values()}
    assert len(seeds) == len(REGISTRY)
    # S3's split does not move when S2's split settings change
    other = merge(cfg, {"datasets": {"s2": {"split": {"seed": 99}}}})
    s3 = next(n for n in p["designs"] if for_dataset(n).key == "s3")
    assert plan(other)["designs"][s3].splits == p["designs"][s3].splits


def test_forced_subjects_fill_their_split_first():
    subjects = [f"{i:02d}" for i in range(1, 11)]
    cfg = {"method": "counts", "counts": {"train": 6, "val": 2, "test": 2}, "seed": 1}
    got = assign_splits(subjects, cfg, forced={"03": "test", "07": "test"})
    assert {s for s, k in got.items() if k == "test"} == {"03", "07"}
    assert sum(k == "train" for k in got.values()) == 6
    with pytest.raises(ConfigError, match="holds only 2"):
        assign_splits(subjects, cfg, forced={s: "test" for s in subjects[:3]})


def test_too_few_subjects_left_after_the_resected_says_so():
    cfg = _config(CONFIGS["paper s3"])
    cfg = merge(cfg, {"inputs": {"demo": {"n_resected": 2}}})
    with pytest.raises(ConfigError, match="post-surgical"):
        plan(cfg)


def test_a_study_that_leaves_them_out_reads_nothing_of_theirs():
    """The datasets' rule inputs: nothing is simulated or read for a post-surgical subject that
    the study leaves out (S0, S1, S3); S2 reads every subject."""
    from spectsynth.studies import dataset_subject_files

    cfg = _config(CONFIGS["tiny"])
    subjects = [f"{i:02d}" for i in range(1, 6)]
    resected = cohort_resected(cfg, subjects)
    assert len(resected) == 1
    for dataset in ("s0", "s1", "s3", "s2_native"):
        files = dataset_subject_files(dataset, "/out", subjects, {}, cfg)
        expected = set(subjects) if for_dataset(dataset).resected_split else set(subjects) - resected
        assert set(files) == expected, dataset
