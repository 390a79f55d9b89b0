"""The workflow on a real SLURM cluster, and the profiles that get it there.

`test_tiny_workflow_through_slurm` runs a part of the tiny configuration through
`profiles/slurm` (snakemake-executor-plugin-slurm) when a cluster answers `sinfo`: on a copy of
the session's shared tiny run (conftest.py ``tiny_run``) without its `s0_clinical` experiment,
it remakes one S0 subject from scratch (the demo subject, its preprocessing and labels and its
DaT simulation, bundled into group jobs), the S0 dataset, the `s0_clinical` training, the inputs
table and the provenance files, and checks that SLURM ran them and that every file they wrote
equals the shared run's by content (spectsynth.checksums): the same results from another
executor. The whole tiny workflow is tested locally (test_workflow.py). CI starts a single-node
cluster on localhost with `.ci/slurm-up.sh` first. Without one it skips and says why (or fails,
when SPECTSYNTH_REQUIRE_SLURM=1, as in CI).
The other tests need no cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_of_run

from spectsynth.checksums import compare_digests, tree_digests

SLURM_PROFILE = REPO / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "profiles" / "local"
TINY = "tests/configs/tiny.yaml"
# The one training job of the SLURM run (2 epochs in tiny.yaml).
SLURM_EXPERIMENT = "s0_clinical"
# Wall-clock limit of the SLURM run; Snakemake is then stopped with ONE SIGINT (on SIGTERM it
# waits for its queued jobs forever).
RUN_TIMEOUT = int(os.environ.get("SPECTSYNTH_SLURM_TEST_TIMEOUT", "1500"))


def _env() -> dict[str, str]:
    """The environment for Snakemake and its SLURM jobs (sbatch --export=ALL passes PATH on)."""
    venv_bin = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                CUDA_VISIBLE_DEVICES="")


def cluster_state() -> tuple[int, int] | str:
    """(CPUs, memory MB) of the largest idle node of the default partition, or why none is usable."""
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on PATH; start a local cluster with `bash .ci/slurm-up.sh`"
    try:
        res = subprocess.run(["sinfo", "--noheader", "--format=%T|%c|%m|%P"], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (is slurmctld running?)"
    if res.returncode != 0:
        return f"sinfo failed ({res.stderr.strip() or res.returncode}); start a cluster with `bash .ci/slurm-up.sh`"
    nodes = []
    for line in res.stdout.splitlines():
        state, cpus, mem, partition = line.split("|")
        if partition.endswith("*") and state in {"idle", "mixed"}:
            nodes.append((int(cpus.rstrip("+")), int(mem.rstrip("+"))))
    if not nodes:
        return f"no idle node in the default partition:\n{res.stdout}"
    return max(nodes)


def jobcomp_states() -> dict[str, str]:
    """Final states from the cluster's job-completion log, when it keeps one as text
    (`JobCompType=jobcomp/filetxt`, as `.ci/slurm-up.sh` configures); empty otherwise."""
    res = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    conf = dict(re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", res.stdout, re.M))
    if conf.get("JobCompType") != "jobcomp/filetxt" or not Path(conf.get("JobCompLoc", "")).is_file():
        return {}
    text = Path(conf["JobCompLoc"]).read_text(errors="replace")
    return dict(re.findall(r"JobId=(\d+)\b.*?\bJobState=(\w+)", text))


def job_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM's own record of each job's state: squeue (finished jobs stay listed for MinJobAge),
    then the job-completion log for jobs squeue has already forgotten."""
    res = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}",
                          "--format=%i|%T"], capture_output=True, text=True, timeout=30)
    states = {}
    for line in res.stdout.splitlines():
        job, _, state = line.partition("|")
        states[job.strip()] = state.strip()
    missing = [j for j in job_ids if j not in states]
    if missing:
        completed = jobcomp_states()
        states.update({j: completed[j] for j in missing if j in completed})
    return states


def _diagnostics(logdir: Path, output: str) -> str:
    parts = [f"--- snakemake (last lines) ---\n{output[-8000:]}"]
    queue = subprocess.run(["squeue", "--states=all", "--format=%i %j %T %r %C %m %l"],
                           capture_output=True, text=True, timeout=30)
    parts.append(f"--- squeue ---\n{queue.stdout}{queue.stderr}")
    for log in sorted(logdir.rglob("*.log"))[-4:]:
        parts.append(f"--- {log} ---\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def _written_since(root: Path, t0: float) -> dict[str, str]:
    """Content digests of the files under ``root`` written after ``t0`` (the copy keeps the
    original times), less what records how a run went (spectsynth.checksums.DEFAULT_EXCLUDE)."""
    return tree_digests(root, files=[str(p.relative_to(root)) for p in root.rglob("*")
                                     if p.is_file() and p.stat().st_mtime > t0])


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_workflow_through_slurm(tmp_path: Path, tiny_run: Path):
    node = cluster_state()
    if isinstance(node, str):
        if os.environ.get("SPECTSYNTH_REQUIRE_SLURM") == "1":  # CI: a missing cluster is a failure
            pytest.fail(f"SPECTSYNTH_REQUIRE_SLURM=1 but {node}")
        pytest.skip(node)
    cpus, mem_mb = node
    out = copy_of_run(tiny_run, tmp_path / "results")
    shutil.rmtree(out / "experiments" / SLURM_EXPERIMENT)        # its training starts from nothing
    subject = str(pd.read_csv(out / "datasets" / "s0" / "index.tsv", sep="\t", dtype=str)["subject"].iloc[0])
    demo_t1 = out / "demo-bids" / f"sub-{subject}" / "anat" / f"sub-{subject}_T1w.nii.gz"
    logdir = tmp_path / "slurm_logs"
    cmd = [
        "timeout", "--foreground", "-s", "INT", str(RUN_TIMEOUT),
        sys.executable, "-m", "snakemake",
        "--profile", str(SLURM_PROFILE),
        "--configfile", TINY,
        "--config", f"output_dir={out}",
        "--slurm-logdir", str(logdir),
        # The biggest job this node can take: the profile's defaults are for real clusters.
        "--cores", str(cpus),
        "--resources", f"mem_mb={mem_mb}",
        # Poll sooner than the profile's 40 s (MinJobAge of the local cluster is 300 s).
        "--slurm-init-seconds-before-status-checks", "5",
        # Remake the targets: the subject's demo T1w (and so everything of that subject the
        # other targets need), the training's weights, the inputs table, the provenance files.
        "--force",
        str(demo_t1), f"{out}/experiments/{SLURM_EXPERIMENT}/best.pt", f"{out}/inputs/inputs.tsv",
        f"{out}/provenance/config.resolved.yaml",
    ]
    t0 = time.time()
    res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                         timeout=RUN_TIMEOUT + 120)
    output = res.stdout + res.stderr
    if res.returncode == 124:
        pytest.fail(f"the SLURM run did not finish within {RUN_TIMEOUT} s (stopped with SIGINT)\n"
                    + _diagnostics(logdir, output))
    assert res.returncode == 0, "the SLURM run failed\n" + _diagnostics(logdir, output)

    # The jobs ran through SLURM: the plugin reported sbatch job ids, their SLURM logs exist,
    # and SLURM records every one of them as COMPLETED.
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", output)
    assert submitted, "no job was submitted to SLURM\n" + output[-4000:]
    for job_id, log in submitted:
        assert Path(log).is_file(), f"SLURM log {log} of job {job_id} is missing"
        assert str(logdir) in log
    states = job_states([job for job, _ in submitted])
    not_done = {job: states.get(job, "not listed") for job, _ in submitted if states.get(job) != "COMPLETED"}
    assert not not_done, f"SLURM (squeue, job-completion log) does not show these jobs COMPLETED: {not_done}"
    # A subject's small jobs were bundled into group jobs, not submitted one by one; the
    # training job went to SLURM as a job of its own.
    # (logs lie in <logdir>/<group_name or rule_name>/<wildcards>/<jobid>.log)
    names = [Path(log).relative_to(logdir).parts[0] for _, log in submitted]
    assert any(n.startswith("group_subject") for n in names), f"no group job among {names}"
    assert "rule_train_model" in names, f"no train_model job among {names}"

    # What the SLURM jobs wrote is what the shared local run wrote: the subject from its demo
    # T1w to its DaT scan, the dataset, the trained weights, the tables.
    written = _written_since(out, t0)
    anat, spect = f"sub-{subject}/anat/sub-{subject}", f"sub-{subject}/spect/sub-{subject}"
    for rel in (f"demo-bids/sub-{subject}/anat/sub-{subject}_T1w.nii.gz", f"{anat}_desc-brain_mask.nii.gz",
                f"{anat}_desc-striatum_dseg.nii.gz", f"{spect}_trc-DaT_spect.nii.gz", "datasets/s0/train.h5",
                f"experiments/{SLURM_EXPERIMENT}/best.pt", "inputs/inputs.tsv"):
        assert rel in written, f"the SLURM run did not remake {rel}; it wrote {written}"
    # The inputs table gathers every subject's record; those of the subjects not remade are the
    # copy's, which name the shared run's folder: compared with that folder's name replaced.
    table = "inputs/inputs.tsv"
    written.pop(table)
    assert ((out / table).read_text().replace(str(tiny_run), str(out))
            == (tiny_run / table).read_text().replace(str(tiny_run), str(out))), "the inputs tables differ"
    diff = compare_digests(tree_digests(tiny_run, files=written), written)
    assert not diff["differ"] and not diff["only_a"] and not diff["only_b"], (
        f"the SLURM run's files differ from the local run's: {diff['differ']}; "
        f"only local: {diff['only_a']}; only SLURM: {diff['only_b']}")


# ----------------------------------------------------------------- no cluster needed
def _snakemake_profile_lookup(name: str, config_home: Path, cwd: Path) -> str:
    code = (f"from snakemake.cli import get_profile_dir; r = get_profile_dir({name!r}); "
            "print(r[1] if r else '')")
    res = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                         env=dict(_env(), XDG_CONFIG_HOME=str(config_home)), timeout=120, check=True)
    return res.stdout.strip()


def test_install_profiles_makes_bare_names_work(tmp_path: Path):
    """After .ci/install-profiles.sh, `--profile slurm` / `--profile local` find the repo's profiles."""
    home = tmp_path / "config"
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    assert _snakemake_profile_lookup("slurm", home, elsewhere) == ""  # not found before

    script = REPO / ".ci" / "install-profiles.sh"
    env = dict(_env(), XDG_CONFIG_HOME=str(home))
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, text=True)
    for name, profile in (("slurm", SLURM_PROFILE), ("local", LOCAL_PROFILE)):
        found = _snakemake_profile_lookup(name, home, elsewhere)
        assert Path(found).resolve() == (profile / "config.yaml").resolve()
    # Idempotent, and it never replaces a profile of the same name it did not make.
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
    subprocess.run(["bash", str(script), "--remove"], env=env, check=True, capture_output=True)
    assert not (home / "snakemake" / "slurm").exists()
    (home / "snakemake" / "slurm").mkdir()
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "leaving it alone" in res.stderr
    assert not (home / "snakemake" / "slurm").is_symlink()


def test_slurm_profile_settings():
    """The settings the local-cluster facts call for are in the profile."""
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # Without slurmdbd, sacct answers "accounting storage is disabled" and the plugin waits forever.
    assert profile["slurm-status-command"] == "squeue"
    assert profile["slurm-keep-successful-logs"] is True
    assert {"runtime", "mem_mb", "cpus_per_task"} <= set(profile["default-resources"])
    # A GPU request on a cluster without GPUs is refused by sbatch: never a default.
    assert "gpu" not in profile["default-resources"] and "gres" not in profile["default-resources"]
    assert any(g.startswith("subject=") for g in profile["group-components"])
    # MinJobAge of the local cluster covers 3x the plugin's first status-check delay.
    up = (REPO / ".ci" / "slurm-up.sh").read_text()
    delay = int(re.search(r"^PLUGIN_INITIAL_STATUS_DELAY=(\d+)", up, re.M).group(1))
    assert profile["slurm-init-seconds-before-status-checks"] == delay
    min_job_age = int(re.search(r"^MIN_JOB_AGE=(\d+)", up, re.M).group(1))
    assert min_job_age >= 3 * delay
    # ... and a whole tiny run (RUN_TIMEOUT at most), so the test still finds every job in squeue.
    assert min_job_age >= RUN_TIMEOUT


@pytest.mark.parametrize("profile", [SLURM_PROFILE, LOCAL_PROFILE], ids=lambda p: p.name)
def test_profile_is_accepted_by_snakemake(profile: Path, tmp_path: Path):
    """Snakemake parses every key of the profile (a dry run of the tiny config with it)."""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(profile), "-n", "--quiet", "rules",
         "--configfile", TINY, "--config", f"output_dir={tmp_path / 'results'}"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"Using profile {profile}" in res.stdout + res.stderr


def _workflow_text() -> str:
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    return "\n".join(f.read_text() for f in files if f.is_file())


def test_grouped_rules_match_the_profile():
    """Every group the profile bundles is a group some rule belongs to (else bundling does nothing)."""
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    groups_in_rules = set(re.findall(r"^\s+group:\s*\n?\s*[\"'](\w+)[\"']", _workflow_text(), re.M))
    for entry in profile["group-components"]:
        name = entry.split("=")[0]
        assert name in groups_in_rules, f"profile groups '{name}' but no rule has `group: \"{name}\"`"


def test_no_rule_asks_for_a_gpu_unconditionally():
    """GPU requests follow the config switch: a literal `gpu=1` would be refused on CPU clusters."""
    literal = re.findall(r"^\s+(?:gpu|gpus)\s*=\s*[1-9]\d*\s*,?\s*$", _workflow_text(), re.M)
    literal += re.findall(r"gres\s*=\s*[\"']gpu", _workflow_text())
    assert not literal, f"GPU resources must come from config (compute.gpus), found {literal}"
