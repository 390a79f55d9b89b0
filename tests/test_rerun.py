"""Rerunning one stage: what Snakemake schedules on a finished run (dry runs only).

The finished run is the session's shared tiny run (conftest.py ``tiny_run``: the whole tiny
workflow); the plans ask for what S0 needs of it (test_reproducibility.Run.targets: demo
subjects, preprocessing, DaT simulation, the S0 dataset, both S0 experiments, their predictions,
stacked volumes and evaluation, and the provenance files). Each test checks one claim of the
README's "Rerunning one stage" section.
"""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO
from test_reproducibility import KILLED, S0_EXPERIMENTS, Run, finished_run, scheduled_jobs

TINY = REPO / "tests" / "configs" / "tiny.yaml"

# Rules upstream of training: none of them may rerun when only a training setting changes.
UPSTREAM = {"make_demo_dataset", "make_demo_subject", "validate_image", "extract_brain", "register_native",
            "register_template", "propagate_labels", "simulate_dat", "simulate_perfusion", "simulate_pet",
            "register_modality", "extract_scan_brain", "build_dataset", "summarize_inputs", "plot_input_qc"}
CHANGED = "s0_clinical"           # the experiment whose training parameter the tests change


def job_names(output: str) -> set[str]:
    """``rule`` or ``rule[key=value,...]`` of every scheduled job."""
    names = set()
    for rule, wildcards, _ in scheduled_jobs(output):
        wc = ",".join(f"{k}={v}" for k, v in sorted(wildcards.items()))
        names.add(f"{rule}[{wc}]" if wc else rule)
    return names


def plan(run: Run, *args: str, targets: list[str] | None = None, **kw) -> set[str]:
    """Jobs a dry run schedules. Options that take several values must be given as
    ``--until=rule``: in ``--until rule target`` argparse reads the target as a second rule."""
    res = run.smk("-n", *args, *(run.targets() if targets is None else targets), **kw)
    return job_names(res.stdout + res.stderr)


def downstream_of_training(experiment: str) -> set[str]:
    return {f"train_model[experiment={experiment}]", f"predict_experiment[experiment={experiment}]",
            f"stack_predictions[experiment={experiment}]", f"evaluate_s0[experiment={experiment}]"}


@pytest.fixture(scope="module")
def clean(tiny_run) -> Run:
    return finished_run(tiny_run)


@pytest.fixture(scope="module")
def baseline(clean) -> set[str]:
    """What a dry run schedules with nothing changed (nothing, unless the code changed)."""
    return plan(clean)


@pytest.mark.slow
def test_finished_run_is_a_no_op(clean, baseline):
    res = clean.smk("-n", *clean.targets())
    assert "Nothing to be done" in res.stdout + res.stderr, baseline


@pytest.mark.slow
@pytest.mark.parametrize("triggers", [(), ("--rerun-triggers=params",)], ids=["default", "params"])
def test_changed_training_parameter_reruns_that_experiment_and_downstream_only(clean, baseline, triggers,
                                                                               tmp_path):
    """README: changing an experiment's epochs reruns its training and what depends on it
    (prediction, stacking, evaluation, the provenance record), nothing upstream and no other
    experiment."""
    extra = tmp_path / "epochs.yaml"
    extra.write_text(yaml.safe_dump({"experiments": {CHANGED: {"epochs": 3}}}))
    jobs = plan(clean, *triggers, configfiles=(extra,)) - baseline
    assert jobs == downstream_of_training(CHANGED) | {"write_provenance"}, jobs
    assert not {j.split("[")[0] for j in jobs} & UPSTREAM


@pytest.mark.slow
def test_forcerun_reruns_the_rule_and_its_dependants(clean, baseline):
    """README: ``--forcerun <rule>`` redoes that rule and everything that depends on it."""
    jobs = plan(clean, "--forcerun=build_dataset") - baseline
    expected = {"build_dataset[dataset=s0]", "train_sbr_regressor"}
    for e in S0_EXPERIMENTS:
        expected |= downstream_of_training(e)
    assert jobs == expected, jobs
    jobs = plan(clean, "--forcerun=train_model") - baseline
    assert jobs == downstream_of_training(KILLED) | downstream_of_training(CHANGED), jobs


@pytest.mark.slow
@pytest.mark.parametrize("forced, until, expected", [
    ("make_demo_subject", "validate_image", {"make_demo_subject", "validate_image"}),
    ("simulate_dat", "build_dataset", {"simulate_dat", "build_dataset"}),
])
def test_until_stops_after_the_rule(clean, baseline, forced, until, expected):
    """README: ``--until <rule>`` runs what leads to that rule and stops there."""
    jobs = plan(clean, f"--forcerun={forced}", f"--until={until}") - baseline
    assert {j.split("[")[0] for j in jobs} == expected, jobs
    # every tiny subject is remade; the S0 dataset simulates only the 4 it uses (not the post-surgical one)
    assert sum(j.startswith(f"{forced}[") for j in jobs) == (4 if forced == "simulate_dat" else 5), jobs


@pytest.mark.slow
def test_one_file_as_target_makes_only_that_file(clean):
    """README: a file as target makes that file (and what it needs that is missing). The shared
    run made the figure: it is moved aside for the dry run and put back."""
    figure = clean.out / "sub-03/figures/sub-03_desc-inputqc_T1w.png"
    aside = figure.with_name(f".aside-{figure.name}")
    figure.rename(aside)
    try:
        assert plan(clean, targets=[str(figure)]) == {"plot_input_qc[subject=03]"}
    finally:
        aside.rename(figure)


@pytest.mark.slow
def test_more_subjects_from_a_configfile(clean, baseline, tmp_path):
    """README: more demo subjects come from a small configfile (``--config`` reads nested
    values as strings, which the schema refuses). A new subject is made and goes through every
    stage; the datasets, the training and all that follows are redone. Two subjects are added:
    the post-surgical one (drawn from the demo's seed) is not simulated for S0, which leaves it out."""
    from spectsynth.studies import cohort_resected

    more = tmp_path / "more.yaml"
    more.write_text(yaml.safe_dump({"inputs": {"demo": {"n_subjects": 7}}}))
    tiny = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    tiny["inputs"]["demo"]["n_subjects"] = 7
    resected = cohort_resected(tiny)
    new = [s for s in ("06", "07") if s not in resected]
    assert len(new) == 1 and len(resected & {"06", "07"}) == 1
    jobs = plan(clean, configfiles=(more,)) - baseline
    for rule in ("make_demo_subject", "validate_image", "extract_brain", "register_template", "propagate_labels",
                 "simulate_dat"):
        assert any(j.startswith(f"{rule}[") and f"subject={new[0]}" in j for j in jobs), (rule, jobs)
    assert not [j for j in jobs if j.startswith("simulate_dat[") and f"subject={(resected & {'06', '07'}).pop()}" in j]
    assert {"build_dataset[dataset=s0]", "train_sbr_regressor"} | downstream_of_training(KILLED) <= jobs
    bad = clean.smk("-n", config=("inputs={demo: {n_subjects: 7}}",), check=False)
    assert bad.returncode != 0 and "n_subjects" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_more_subjects_leave_the_existing_subjects_alone(clean, baseline, tmp_path):
    """make_demo_subject's params are what the subject's images depend on (inputs.demo without the
    cohort's size, its label and whether it is resected): a larger cohort makes the new subject
    and leaves the existing ones' per-subject jobs alone."""
    more = tmp_path / "more.yaml"
    more.write_text(yaml.safe_dump({"inputs": {"demo": {"n_subjects": 6}}}))
    jobs = plan(clean, configfiles=(more,)) - baseline
    assert "make_demo_subject[subject=06]" in jobs, jobs
    assert not [j for j in jobs if "subject=01" in j], jobs


@pytest.mark.slow
def test_a_subject_that_becomes_post_surgical_is_made_again(clean, baseline, tmp_path):
    """Whether a subject is resected is one of its params: changing inputs.demo.n_resected remakes
    exactly the subjects whose status changes."""
    from spectsynth.studies import cohort_resected

    cfg = yaml.safe_load(TINY.read_text())
    before = cohort_resected(cfg)
    changed = yaml.safe_load(TINY.read_text())
    changed["inputs"]["demo"]["n_resected"] = 2
    after = cohort_resected(changed)
    flipped = before ^ after
    assert flipped
    more = tmp_path / "resected.yaml"
    more.write_text(yaml.safe_dump({"inputs": {"demo": {"n_resected": 2}}}))
    jobs = plan(clean, configfiles=(more,)) - baseline
    made = {j for j in jobs if j.startswith("make_demo_subject[")}
    assert made == {f"make_demo_subject[subject={s}]" for s in flipped}, (made, flipped)


def test_profiles_redo_jobs_that_were_cut_off():
    """README: ``rerun-incomplete`` is on in both profiles (test_reproducibility.py shows what
    it is for: a run killed with SIGKILL)."""
    for profile in ("local", "slurm"):
        cfg = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
        assert cfg.get("rerun-incomplete") is True, profile
