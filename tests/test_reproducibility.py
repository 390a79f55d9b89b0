"""Two tiny runs on the CPU give identical results, and the second, killed with SIGKILL in the
middle of training, resumes and still gives them.

The first run is the shared tiny run of the session (conftest.py ``tiny_run``: the whole tiny
workflow from scratch). The second starts from a copy of its results folder without the two S0
experiments (weights, checkpoints, histories) and remakes, with ``--forcerun=simulate_dat``,
everything S0 makes from the DaT scans on: every subject's DaT simulation, the S0 dataset, both
S0 experiments (s0_restoration trains for the epochs tests/configs/tiny.yaml gives it, enough
that there is time to kill it), their predictions, stacked volumes and evaluation. The demo
subjects and their preprocessing are remade from scratch on another executor, one subject at a
time, by the SLURM test (test_slurm.py), which compares them with the shared run the same way.
The second run is killed like a crashed machine: Snakemake is frozen, the training job of
s0_restoration gets SIGKILL once its first checkpoint exists and its log is past epoch 1, then
Snakemake and every other job get SIGKILL too. The rerun needs ``--unlock`` (the dead Snakemake
left its lock) and ``--rerun-incomplete`` (its jobs left incomplete markers); training resumes
from ``checkpoints/last.pt``. The content digest (spectsynth.checksums) of every file the
remade jobs declare, and of everything the experiments' folders hold, must equal the first
run's: synthetic DaT images, dataset shards and index tables, checkpoints and best weights,
predictions, metric tables and figures. Nothing is excluded beyond the checksum tool's defaults
(logs, benchmarks, provenance, TensorBoard event files, timing columns). That the first run also
made everything else of the workflow, with two jobs side by side in another order, must not
change a byte of what S0 makes.

The second run uses a private Snakemake working folder (``config`` linked to the repository's)
so that the crash's stale lock and ``--unlock`` concern no other Snakemake run of the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import REPO, TINY, copy_of_run

from spectsynth.checksums import compare_digests, tree_digests

pytestmark = pytest.mark.slow

S0_EXPERIMENTS = ("s0_restoration", "s0_clinical")
KILLED = "s0_restoration"
# tiny.yaml gives KILLED enough epochs of ~0.3 s that a poll every 50 ms sees the job mid-training
KILL_EPOCHS = int(yaml.safe_load((REPO / TINY).read_text())["experiments"][KILLED]["epochs"])
RUN_TIMEOUT = 1800        # the remade part takes about a minute on 2 idle cores, longer on a busy machine
# The second run remakes S0 from this rule on (and everything downstream of it that S0 needs).
REMADE_FROM = "simulate_dat"


@dataclass
class Run:
    """A tiny run: its Snakemake working folder and results folder."""

    workdir: Path
    out: Path
    seconds: float = 0.0
    digests: dict[str, str] = field(default_factory=dict)

    def targets(self) -> list[str]:
        return ([f"{self.out}/evaluate/s0/{e}/dice_summary.tsv" for e in S0_EXPERIMENTS]
                + [f"{self.out}/predictions/{e}/volumes" for e in S0_EXPERIMENTS]
                + [f"{self.out}/provenance/run.json"])

    def command(self, *args: str, configfiles: tuple[Path, ...] = (), config: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                "--directory", str(self.workdir), "--configfile", str(REPO / TINY), *map(str, configfiles),
                "--config", f"output_dir={self.out}", *config, *args]

    def smk(self, *args: str, configfiles: tuple[Path, ...] = (), config: tuple[str, ...] = (),
            check: bool = True, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        res = subprocess.run(self.command(*args, configfiles=configfiles, config=config), capture_output=True,
                             text=True, cwd=REPO, timeout=timeout, env=_env())
        if check and res.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args[:6])} ... failed:\n{res.stdout[-5000:]}\n"
                                 f"{res.stderr[-5000:]}")
        return res


def _env() -> dict[str, str]:
    return dict(os.environ, CUDA_VISIBLE_DEVICES="")


def new_run(base: Path) -> Run:
    """A fresh working folder (``config`` linked to the repository's) and results folder."""
    workdir = base / "workdir"
    workdir.mkdir(parents=True)
    (workdir / "config").symlink_to(REPO / "config", target_is_directory=True)
    return Run(workdir=workdir, out=base / "results")


def finished_run(tiny_run: Path) -> Run:
    """The session's shared tiny run (conftest.py), as a Run (working folder: the repository);
    also used by test_rerun.py."""
    return Run(workdir=REPO, out=tiny_run)


def scheduled_jobs(dry_run_output: str) -> list[tuple[str, dict[str, str], list[str]]]:
    """(rule, wildcards, outputs) of every job a ``snakemake -n`` output lists (not ``all``)."""
    jobs: list[tuple[str, dict[str, str], list[str]]] = []
    for line in dry_run_output.splitlines():
        m = re.match(r"\s*(?:local)?rule (\w+):\s*$", line)
        if m:
            jobs.append((m.group(1), {}, []))
            continue
        line = line.strip()
        if not jobs or line.startswith("Job stats"):
            continue
        if line.startswith("wildcards:"):
            jobs[-1][1].update(kv.split("=", 1) for kv in line[len("wildcards:"):].strip().split(", "))
        elif line.startswith("output:"):
            jobs[-1][2].extend(p.strip() for p in line[len("output:"):].split(", "))
    return [j for j in jobs if j[0] != "all"]


@pytest.fixture(scope="module")
def clean(tiny_run):
    return finished_run(tiny_run)


def made_files(roots: list[Path], declared: list[str]) -> list[str]:
    """What the second run's jobs may write: every declared output (a file whether or not it
    exists; a folder as the files it holds in any of ``roots``) and the experiments' folders
    (their checkpoints are no declared output)."""
    rels: set[str] = set()
    for rel in [*declared, *(f"experiments/{e}" for e in S0_EXPERIMENTS)]:
        folders = [(root, root / rel) for root in roots if (root / rel).is_dir()]
        if not folders:
            rels.add(rel)
        for root, folder in folders:
            rels.update(str(f.relative_to(root)) for f in folder.rglob("*") if f.is_file())
    return sorted(rels)


def _wait_until_training_is_past_epoch_1(proc: subprocess.Popen, run: Run, timeout: float) -> None:
    last = run.out / f"experiments/{KILLED}/checkpoints/last.pt"
    log = run.out / f"logs/train_model/{KILLED}.log"
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (exit {proc.returncode}) before {KILLED} could be killed "
                                 "mid-training; raise KILL_EPOCHS")
        if last.exists() and log.exists() and f"experiment {KILLED}: epoch 1/{KILL_EPOCHS}" in log.read_text():
            if f"experiment {KILLED}: epoch {KILL_EPOCHS}/{KILL_EPOCHS}" in log.read_text():
                raise AssertionError(f"{KILLED} finished training before it could be killed; raise KILL_EPOCHS")
            return
        time.sleep(0.05)
    raise AssertionError(f"{KILLED} did not reach epoch 1 within {timeout} s")


def _training_process(snakemake: psutil.Process, log: Path) -> psutil.Process:
    """The job process whose open files include the experiment's training log."""
    log = log.resolve()
    for child in snakemake.children(recursive=True):
        try:
            if any(Path(f.path).resolve() == log for f in child.open_files()):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    raise AssertionError(f"no child process of snakemake ({snakemake.pid}) has {log} open")


def _crash(proc: subprocess.Popen, run: Run) -> None:
    """SIGKILL the training job of KILLED, then Snakemake and all its other jobs."""
    smk = psutil.Process(proc.pid)
    smk.suspend()                      # Snakemake must not see the job die and clean up after it
    job = _training_process(smk, run.out / f"logs/train_model/{KILLED}.log")
    others = [p for p in smk.children(recursive=True) if p.pid != job.pid]
    job.kill()
    smk.kill()
    for p in others:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs([job, smk, *others], timeout=60)
    proc.wait(timeout=60)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and its jobs if it still runs (never a reaped, possibly reused pid)."""
    if proc.poll() is not None:
        return
    try:
        smk = psutil.Process(proc.pid)
        procs = [*smk.children(recursive=True), smk]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=60)
    if proc.poll() is None:
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def killed(tmp_path_factory, clean):
    """The second run: the shared run's copy without S0's experiments, S0 remade from the DaT
    simulation on, killed mid-training, unlocked, rerun to the end."""
    assert KILL_EPOCHS >= 8, f"{TINY}: {KILLED} needs >= 8 epochs so that it can be killed mid-training"
    run = new_run(tmp_path_factory.mktemp("tiny-s0-killed"))
    copy_of_run(clean.out, run.out)
    for experiment in S0_EXPERIMENTS:
        shutil.rmtree(run.out / "experiments" / experiment)
    remake = f"--forcerun={REMADE_FROM}"
    # what the remade part makes, as the plan of the prepared folder declares it
    plan = scheduled_jobs(_output(run.smk("-n", remake, *run.targets())))
    declared = [os.path.relpath(p, run.out) for _, _, outputs in plan for p in outputs]
    t0 = time.perf_counter()
    with open(run.workdir.parent / "first-attempt.log", "w") as fh:
        proc = subprocess.Popen(run.command("--cores", "2", remake, *run.targets()), stdout=fh,
                                stderr=subprocess.STDOUT, cwd=REPO, env=_env())
        try:
            _wait_until_training_is_past_epoch_1(proc, run, RUN_TIMEOUT)
            _crash(proc, run)
        finally:
            _kill_tree(proc)          # only when the test failed before the crash was complete
    state = {"at_kill": tree_digests(run.out, files=made_files([run.out], declared)),
             "log_at_kill": (run.out / f"logs/train_model/{KILLED}.log").read_text()}
    # A plain rerun is refused: jobs whose outputs all exist may have been cut off (when any
    # such job was running), and the dead Snakemake's lock is still there.
    state["plain"] = run.smk("--cores", "2", *run.targets(), check=False)
    state["locked"] = run.smk("--cores", "2", "--rerun-incomplete", *run.targets(), check=False)
    run.smk("--unlock", *run.targets())
    state["plan"] = run.smk("-n", "--rerun-incomplete", *run.targets())
    state["rerun"] = run.smk("--cores", "2", "--rerun-incomplete", *run.targets())
    run.seconds = time.perf_counter() - t0
    files = made_files([run.out, clean.out], declared)
    run.digests = tree_digests(run.out, files=files)
    state["run"] = run
    state["declared"] = declared
    state["remade_rules"] = {rule for rule, _, _ in plan}
    state["clean_digests"] = tree_digests(clean.out, files=files)
    return state


def _output(res: subprocess.CompletedProcess) -> str:
    return res.stdout + res.stderr


def test_killed_training_job_resumes_from_its_checkpoint(killed):
    log_at_kill = killed["log_at_kill"]
    epochs_done = [int(e) for e in re.findall(rf"experiment {KILLED}: epoch (\d+)/{KILL_EPOCHS}", log_at_kill)]
    assert epochs_done and max(epochs_done) < KILL_EPOCHS, "the job was not killed mid-training"
    plain = killed["plain"].stdout + killed["plain"].stderr
    assert killed["plain"].returncode != 0
    assert "--rerun-incomplete" in plain or "--unlock" in plain, plain[-3000:]
    locked = killed["locked"].stdout + killed["locked"].stderr
    assert killed["locked"].returncode != 0 and "--unlock" in locked, locked[-3000:]
    log = (killed["run"].out / f"logs/train_model/{KILLED}.log").read_text()
    m = re.search(rf"experiment {KILLED}: resuming from (\S+) \(epoch (\d+), step (\d+) of the epoch\)", log)
    assert m, f"the rerun's log does not say it resumed:\n{log[-3000:]}"
    assert Path(m.group(1)).name == "last.pt"
    assert 1 <= int(m.group(2)) <= max(epochs_done)
    # the rerun trains only the epochs left, and ends with the full run's epoch count
    assert f"experiment {KILLED}: epoch 1/{KILL_EPOCHS}" not in log
    assert f"experiment {KILLED}: epoch {KILL_EPOCHS}/{KILL_EPOCHS}" in log


def test_interrupted_run_leaves_nothing_half_written_that_a_rerun_trusts(killed, clean):
    """Every result file the crash left is either rescheduled by the rerun or already equal
    to the clean run's; the killed training job is always rescheduled."""
    jobs = scheduled_jobs(killed["plan"].stdout + killed["plan"].stderr)
    assert (("train_model", {"experiment": KILLED}) in [(r, w) for r, w, _ in jobs]), jobs
    out = str(killed["run"].out)
    redone = {os.path.relpath(p, out) for _, _, outputs in jobs for p in outputs if p.startswith(out)}
    trusted = {p: d for p, d in killed["at_kill"].items()
               # checkpoints/ is no declared output: train_model itself verifies (SHA-256) and resumes it
               if p not in redone and not any(p.startswith(r.rstrip("/") + "/") for r in redone)
               and "/checkpoints/" not in p}
    assert trusted, "the crash came before any job finished"
    uninterrupted = tree_digests(clean.out, files=trusted)
    wrong = sorted(p for p, d in trusted.items() if uninterrupted.get(p) != d)
    assert not wrong, f"files a rerun would trust differ from the uninterrupted run: {wrong}"


def test_the_remade_part_gives_identical_content(killed):
    assert {REMADE_FROM, "build_dataset", "train_model", "predict_experiment", "stack_predictions",
            "evaluate_s0"} <= killed["remade_rules"], killed["remade_rules"]
    a, b = killed["clean_digests"], killed["run"].digests
    diff = compare_digests(a, b)
    print(f"\nkilled run + rerun {killed['run'].seconds:.0f} s; {len(diff['same'])} files compared")
    for prefix in ("sub-01/spect/sub-01_trc-DaT_spect.nii.gz", "datasets/s0/train.h5", "datasets/s0/index.tsv",
                   f"experiments/{KILLED}/best.pt", f"experiments/{KILLED}/checkpoints/last.pt",
                   f"experiments/{KILLED}/history.csv", f"predictions/{KILLED}/predictions.h5",
                   f"evaluate/s0/{KILLED}/dice_summary.tsv"):
        assert prefix in diff["same"], f"{prefix} missing from the comparison or different"
    assert not diff["only_a"] and not diff["only_b"], diff
    assert not diff["differ"], f"not reproduced: {diff['differ']}"
