"""The paper-scale study configs train as published: merged over config/config.yaml the way
Snakemake merges ``--configfile``s, no demo-scale epoch or width survives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from spectsynth.experiments import expand_experiments
from spectsynth.models import FAMILY_DEFAULTS
from spectsynth.studies import REGISTRY

REPO = Path(__file__).resolve().parents[1]
DEMO_KEYS = ("epochs", "base_channels", "ngf", "ndf", "gan_eval_samples")


@pytest.mark.parametrize("study", ["s0", "s1", "s2", "s3"])
def test_paper_config_trains_with_the_studys_epochs_and_widths(study):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    paper = yaml.safe_load((REPO / f"config/studies/{study}.yaml").read_text())
    update_config(cfg, paper)
    runs = expand_experiments(cfg)
    assert runs
    for name, spec in runs.items():
        st = REGISTRY[spec["study"]]
        entry = paper["experiments"][spec["entry"]]
        assert spec["epochs"] == st.training_defaults["epochs"], name
        for key in DEMO_KEYS[1:]:
            if key in FAMILY_DEFAULTS[spec["model"]] and entry.get(key) is None:
                assert spec[key] == FAMILY_DEFAULTS[spec["model"]][key], (name, key)


@pytest.mark.parametrize("study", ["s0", "s1", "s2", "s3"])
def test_a_training_job_asks_cpus_for_torch_and_its_loader_workers(study):
    """The rule's threads (SLURM cpus-per-task) hold torch's threads and every DataLoader worker."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    paper = yaml.safe_load((REPO / f"config/studies/{study}.yaml").read_text())
    update_config(cfg, paper)
    training = cfg["training"]
    for name, spec in expand_experiments(cfg).items():
        res = spec["resources"]
        assert res["torch_threads"] == training["threads"], name
        assert res["threads"] == training["threads"] + training["num_workers"] > res["torch_threads"], name
