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


@pytest.mark.parametrize("stack", [["s0"], ["s1"], ["s2"], ["s3"], ["reference"], ["reference", "reference-s2"]])
def test_paper_and_reference_configs_keep_the_fine_grids(stack):
    """The demo's 2 mm T1ws and grids (config/config.yaml) do not reach a paper-scale or reference
    run: merged over it, every study file gives the scanner-like T1w and S2's 1 mm grids (the
    schema's defaults)."""
    from spectsynth.config import fragment_defaults

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert cfg["inputs"]["demo"]["voxel_mm"] == [2.0, 2.0, 2.0]
    assert cfg["preprocess"]["native"]["spacing_mm"] == 2.0 and cfg["preprocess"]["template"]["resolution_mm"] == 2
    for name in stack:
        update_config(cfg, yaml.safe_load((REPO / f"config/studies/{name}.yaml").read_text()))
    src = REPO / "src" / "spectsynth"
    demo = fragment_defaults(src / "inputs" / "options.yaml", "inputs")["demo"]
    pp = fragment_defaults(src / "preprocess" / "options.yaml", "preprocess")
    assert cfg["inputs"]["demo"]["voxel_mm"] == demo["voxel_mm"] == [1.0, 1.0, 1.2]
    assert cfg["preprocess"]["native"] == pp["native"] == {"shape": [256, 256, 192], "spacing_mm": 1.0}
    assert cfg["preprocess"]["template"] == pp["template"] == {"resolution_mm": 1}
