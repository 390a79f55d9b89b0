"""Where the demo's wall time goes: job time against the machine's cores.

Reads a finished run (its Snakemake log and its ``results/benchmarks/`` folder), or runs the demo
first, and prints

* the wall time of the run (``--wall`` when the run was timed elsewhere, e.g. ``./run.sh demo``
  under ``time``; otherwise from the first to the last time stamp of the Snakemake log),
* the number of jobs (Snakemake's ``N of N steps``, ``all`` included, as Snakemake counts them),
* the sum of the jobs' own times: from the log (start to ``Finished`` of every job, 1 s
  resolution, every job) and from the benchmark files (wall ``s`` and ``cpu_time`` of the rules
  that write one),
* the overhead: ``wall - job time / cores``, the wall time in which the cores did not run
  jobs (Snakemake's own work, the cores waiting for jobs that wait on each other), and its share
  of the wall time,
* the job time per rule, largest first,

next to the numbers of the demo measured before the registrations took the moving image's gradient
at their samples only (:data:`PREVIOUS`, same machine, idle: 10:51 wall for 293 jobs, 20.4 job-minutes;
before the 2 mm grids, 2026-12-07: 23:37 and 44.3 job-minutes; 2026-11-30, before the start-up and
scheduling changes: 18:55 wall, about 25 job-minutes, 239 jobs).  ``--record DIR`` writes the
headline numbers to ``DIR/demo.tsv`` (``docs/benchmarks/``, from which the README's benchmark table
is generated).

Usage::

    python benchmarks/bench_demo.py --run                       # run the demo (profiles/local), then report
    python benchmarks/bench_demo.py --run --cores 2 --outdir /tmp/demo
    python benchmarks/bench_demo.py --results results --log .snakemake/log/<run>.snakemake.log --wall 11:40

Run it on an otherwise idle machine: other work on the same cores lengthens every job and the wall
time alike, so compare the overhead share and the job time of a rule, not a lone wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from spectsynth import benchrecords

REPO = Path(__file__).resolve().parents[1]

# The same demo (12 subjects, every default experiment, 293 jobs), 2 cores, idle machine, on its 2 mm
# grids, before the registrations took the moving image's gradient at their samples only.  Before
# that: 23:37 and 44.3 job-minutes on 1 mm grids (2026-12-07).
PREVIOUS = {"date": "2026-12-08", "what": "before the sampled-gradient registration", "wall_s": 10 * 60 + 51,
            "job_s": 20.4 * 60, "jobs": 293, "cores": 2}
TARGET_WALL_S = 12 * 60          # the demo on 2 cores, set-up excluded

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")
_STEPS = re.compile(r"^(\d+) of (\d+) steps")


@dataclass
class Run:
    """What one Snakemake run's log and benchmark files say."""

    wall_s: float
    jobs: int
    job_s: dict[str, float] = field(default_factory=dict)              # per rule, from the log
    jobs_per_rule: dict[str, int] = field(default_factory=dict)
    bench_s: dict[str, float] = field(default_factory=dict)            # per rule, benchmark files
    bench_cpu_s: dict[str, float] = field(default_factory=dict)
    bench_files: int = 0
    running_s: dict[int, float] = field(default_factory=dict)          # wall s with N jobs running
    alone_s: dict[str, float] = field(default_factory=dict)            # per rule, wall s as the only job


def _time(stamp: str) -> float:
    return datetime.strptime(" ".join(stamp.split()), "%a %b %d %H:%M:%S %Y").timestamp()


def parse_log(text: str) -> tuple[float, int, dict[str, float], dict[str, int], list[tuple[str, float, float]]]:
    """(wall seconds between the first and last time stamp, jobs, job seconds per rule,
    jobs per rule, (rule, start, end) of every job) of a Snakemake log
    (``.snakemake/log/*.snakemake.log`` or its console output)."""
    stamps: list[float] = []
    spans: list[tuple[str, float, float]] = []
    started: dict[str, tuple[str, float]] = {}
    job_s: dict[str, float] = defaultdict(float)
    per_rule: dict[str, int] = defaultdict(int)
    total_steps = 0
    now = None
    pending_rule = None
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m:
            now = _time(m.group(1))
            stamps.append(now)
            continue
        m = _START.match(line)
        if m and now is not None:
            pending_rule = m.group(1)
            continue
        m = _JOBID.match(line)
        if m and pending_rule is not None:
            started[m.group(1)] = (pending_rule, now)
            pending_rule = None
            continue
        m = _FINISHED.match(line)
        if m and now is not None and m.group(1) in started:
            rule, t0 = started.pop(m.group(1))
            spans.append((rule, t0, now))
            job_s[rule] += now - t0
            per_rule[rule] += 1
            continue
        m = _STEPS.match(line)
        if m:
            total_steps = int(m.group(2))
    if not stamps:
        raise SystemExit("no Snakemake time stamps in the log: is it a Snakemake log of a real (not -n) run?")
    return stamps[-1] - stamps[0], total_steps, dict(job_s), dict(per_rule), spans


def concurrency(spans: list[tuple[str, float, float]]) -> tuple[dict[int, float], dict[str, float]]:
    """Wall seconds with 0, 1, 2, ... jobs running, and per rule the seconds it ran alone."""
    edges = sorted({t for _, a, b in spans for t in (a, b)})
    running: dict[int, float] = defaultdict(float)
    alone: dict[str, float] = defaultdict(float)
    for t0, t1 in zip(edges, edges[1:]):
        now = [r for r, a, b in spans if a <= t0 and b >= t1 and b > a]
        running[len(now)] += t1 - t0
        if len(now) == 1:
            alone[now[0]] += t1 - t0
    return dict(running), dict(alone)


def read_benchmarks(results: Path) -> tuple[dict[str, float], dict[str, float], int]:
    """Wall and CPU seconds per rule from ``<results>/benchmarks/<rule>/*.tsv`` (Snakemake's
    ``benchmark:`` files)."""
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    n = 0
    for tsv in sorted((results / "benchmarks").glob("*/*.tsv")):
        lines = tsv.read_text().splitlines()
        if len(lines) < 2:
            continue
        head = lines[0].split("\t")
        row = dict(zip(head, lines[1].split("\t")))
        rule = tsv.parent.name
        wall[rule] += float(row["s"])
        try:
            cpu[rule] += float(row.get("cpu_time", "nan"))
        except ValueError:
            pass
        n += 1
    return dict(wall), dict(cpu), n


def newest_log(workdir: Path, results: Path) -> Path:
    """The newest Snakemake log of ``workdir`` that names ``results``."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True)
    for log in logs:
        if str(results.resolve()) in log.read_text(errors="replace") or str(results) in log.read_text(errors="replace"):
            return log
    raise SystemExit(f"no Snakemake log in {workdir}/.snakemake/log names {results}; give --log")


def analyse(results: Path, log: Path, wall_s: float | None) -> Run:
    log_wall, jobs, job_s, per_rule, spans = parse_log(log.read_text(errors="replace"))
    bench_s, bench_cpu, n = read_benchmarks(results)
    running, alone = concurrency(spans)
    return Run(wall_s=wall_s if wall_s is not None else log_wall, jobs=jobs, job_s=job_s,
               jobs_per_rule=per_rule, bench_s=bench_s, bench_cpu_s=bench_cpu, bench_files=n,
               running_s=running, alone_s=alone)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(round(seconds % 60)):02d}"


def parse_wall(text: str) -> float:
    """Seconds from ``SS``, ``M:SS`` or ``H:MM:SS``."""
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def report(run: Run, cores: int) -> str:
    job_total = sum(run.job_s.values())
    over = run.wall_s - job_total / cores
    prev_over = PREVIOUS["wall_s"] - PREVIOUS["job_s"] / PREVIOUS["cores"]
    rows = [
        ("wall time", _clock(run.wall_s), _clock(PREVIOUS["wall_s"])),
        ("jobs", str(run.jobs), str(PREVIOUS["jobs"])),
        ("sum of job times (min)", f"{job_total / 60:.1f}", f"~{PREVIOUS['job_s'] / 60:.0f}"),
        (f"job time / cores ({cores})", _clock(job_total / cores), _clock(PREVIOUS["job_s"] / PREVIOUS["cores"])),
        ("overhead: wall - job time / cores", _clock(over), _clock(prev_over)),
        ("overhead share of the wall time", f"{over / run.wall_s:.0%}", f"{prev_over / PREVIOUS['wall_s']:.0%}"),
        ("mean job time (s)", f"{job_total / max(1, sum(run.jobs_per_rule.values())):.1f}",
         f"{PREVIOUS['job_s'] / PREVIOUS['jobs']:.1f}"),
    ]
    if run.jobs == PREVIOUS["jobs"]:
        rows.append(("wall time / before", f"{run.wall_s / PREVIOUS['wall_s']:.2f}", "1.00"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  {'this run':>10}  {'before (' + PREVIOUS['date'] + ')':>20}"]
    lines += [f"{a:{width}}  {b:>10}  {c:>20}" for a, b, c in rows]
    verdict = "met" if run.wall_s <= TARGET_WALL_S else f"not met by {_clock(run.wall_s - TARGET_WALL_S)}"
    lines.append(f"target: the demo in {_clock(TARGET_WALL_S)} on 2 cores: {verdict}"
                 + ("" if run.jobs == PREVIOUS["jobs"] else f" (but this run has {run.jobs} jobs, not the demo's "
                                                            f"{PREVIOUS['jobs']})"))
    span = sum(run.running_s.values()) or 1.0
    lines += ["", "wall time with N jobs running: " + ", ".join(
        f"{k}: {_clock(v)} ({v / span:.0%})" for k, v in sorted(run.running_s.items()))]
    if run.alone_s:
        top = sorted(run.alone_s.items(), key=lambda kv: -kv[1])[:6]
        lines.append("running alone (a core idle): " + ", ".join(f"{r} {_clock(v)}" for r, v in top))
    lines += ["", f"job time per rule (log; benchmark files: wall s / CPU s, {run.bench_files} files)",
              f"{'rule':32} {'jobs':>5} {'min':>6} {'bench s':>8} {'cpu s':>8}"]
    for rule, s in sorted(run.job_s.items(), key=lambda kv: -kv[1]):
        b = run.bench_s.get(rule)
        c = run.bench_cpu_s.get(rule)
        lines.append(f"{rule:32} {run.jobs_per_rule.get(rule, 0):5d} {s / 60:6.2f} "
                     f"{'' if b is None else f'{b:8.0f}':>8} {'' if c is None else f'{c:8.0f}':>8}")
    return "\n".join(lines)


def record(run: Run, cores: int) -> list[benchrecords.Measure]:
    """The headline numbers of a run for ``--record``; the previous figure is the peer where the run
    has the same jobs."""
    same = run.jobs == PREVIOUS["jobs"] and cores == PREVIOUS["cores"]
    before = f"{PREVIOUS['date']}, {PREVIOUS['what']}"
    job_total = sum(run.job_s.values())
    over = run.wall_s - job_total / cores
    prev_over = PREVIOUS["wall_s"] - PREVIOUS["job_s"] / PREVIOUS["cores"]

    def peer(value: float) -> dict:
        return {"peer": value, "peer_name": before} if same else {}

    return [
        benchrecords.Measure(f"the demo workflow (without the HTML report), wall time on {cores} cores", run.wall_s, "s",
                             target=f"<= {TARGET_WALL_S}", note=f"{run.jobs} jobs", **peer(PREVIOUS["wall_s"])),
        benchrecords.Measure("sum of the job times", job_total / 60, "min", **peer(PREVIOUS["job_s"] / 60)),
        benchrecords.Measure("overhead (wall - job time / cores), share of the wall time", 100 * over / run.wall_s,
                             "%", **peer(100 * prev_over / PREVIOUS["wall_s"])),
    ]


def run_demo(outdir: Path, cores: int, extra: list[str]) -> tuple[Path, float]:
    """Run the demo as ``./run.sh demo`` does (profiles/local) into ``outdir``; its log, wall s."""
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / "local"),
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO), "--cores", str(cores),
           "--config", f"output_dir={outdir}", *extra]
    console = outdir.parent / "snakemake-console.log"
    outdir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(console, "w") as fh:
        res = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                             env=dict(os.environ, CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", "")))
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"the demo failed (exit {res.returncode}); see {console}")
    return console, wall


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="store_true", help="run the demo first (into --outdir)")
    p.add_argument("--outdir", type=Path, help="results folder of --run (default: a new temporary folder)")
    p.add_argument("--results", type=Path, default=REPO / "results", help="results folder of a finished run")
    p.add_argument("--log", type=Path, help="its Snakemake log (default: the newest in .snakemake/log naming it)")
    p.add_argument("--wall", type=parse_wall, help="its wall time, SS, M:SS or H:MM:SS (default: from the log)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores the run had")
    benchrecords.add_option(p, "demo")
    p.add_argument("extra", nargs="*", help="after --: more Snakemake arguments for --run")
    a = p.parse_args(argv)
    if a.run:
        outdir = a.outdir or Path(tempfile.mkdtemp(prefix="bench-demo-")) / "results"
        _, wall = run_demo(outdir, a.cores, a.extra)
        # Snakemake's own log of the run: its console output interleaves the jobs' output, which
        # shifts job ends
        run = analyse(outdir, newest_log(REPO, outdir), wall)
    else:
        log = a.log or newest_log(REPO, a.results)
        run = analyse(a.results, log, a.wall)
    print(report(run, a.cores))
    if a.record:
        path = benchrecords.save(a.record, "demo", record(run, a.cores), __file__, argv)
        print(f"recorded {path}")


if __name__ == "__main__":
    main()
