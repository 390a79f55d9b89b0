"""The report's methods text takes the run's facts from its configuration, not by hand."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import jinja2
import pytest
import yaml
from conftest import REPO

from spectsynth.config import validate_config

REPORT = REPO / "workflow" / "report"


@pytest.fixture(scope="module")
def config():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["output_dir"] = "results"
    return validate_config(cfg, REPO / "config" / "schema.yaml")


def render(name: str, cfg: dict, **wildcards) -> str:
    text = (REPORT / name).read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(text).render(snakemake=SimpleNamespace(config=cfg, wildcards=wildcards))


def test_methods_state_this_runs_grid_slices_augmentation_and_threshold(config):
    text = " ".join(render("workflow.rst", config).split())
    assert "native grid of this run (128 x 128 x 96 at 2.0 mm" in text         # the demo's 2 mm grid
    assert "*FDG*: GM:WM:CSF 5:1:0." in text
    assert "*S2's interictal SPECT*: ECD with a measured grey:white ratio of 1.8." in text
    assert "that day's whole-brain flow (SD 0.09," in text
    assert f"S2: {config['datasets']['s2']['n_slices']} axial slices per patient in this run" in text
    assert "shifts of up to 2 pixels, left-right flips of normal and bilateral slices" in text
    assert "paired t-tests at p < 0.01 " in text


def test_changing_the_config_changes_the_methods(config):
    cfg = copy.deepcopy(config)
    cfg["preprocess"]["native"]["shape"] = [200, 220, 180]
    cfg["simulate"]["fdg"]["ratios"]["gm"] = 4.5
    cfg["datasets"]["s1"]["augment"]["shift_px"] = 3
    cfg["evaluate"]["alpha"] = 0.05
    text = " ".join(render("workflow.rst", cfg).split())
    assert "native grid of this run (200 x 220 x 180 at 2.0 mm" in text and "128 x 128" not in text
    assert "GM:WM:CSF 4.5:1:0." in text and "shifts of up to 3 pixels" in text
    assert "p < 0.05 " in text
    labels = " ".join(render("preprocess_labels.rst", cfg, subject="01").split())
    assert "native grid (200 x 220 x 180, 2.0 mm)" in labels


def test_dat_figure_text_gives_the_normal_spread_and_age_decline(config):
    text = " ".join(render("simulate_sbr.rst", config).split())
    assert "mean at age 60.0" in text and "less 0.055 of it per decade" in text
    assert "SD of 0.45 (caudate) and 0.25 (putamen)" in text
    assert "normal_age_term" in render("simulate_truth.rst", config)
