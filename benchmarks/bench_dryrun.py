"""Scale of the workflow: time of `snakemake -n` and SLURM jobs per subject.

For a demo cohort of 10, 100 and 1000 subjects with every default experiment of
config/config.yaml, this times

* `snakemake -n` as a user types it (no profile), and
* `snakemake --profile profiles/slurm -n`, whose printed plan shows the group jobs that
  `group-components` makes,

and counts the SLURM jobs that plan submits: one per group job plus one per ungrouped job that is
not a local rule. The target is a dry run of 1000 subjects in under 30 s on the 2-core reference
machine. Run from anywhere:

    .venv/bin/python benchmarks/bench_dryrun.py                 # 10, 100, 1000 subjects
    .venv/bin/python benchmarks/bench_dryrun.py --subjects 10 50 --repeat 3 --csv out.csv
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from spectsynth import benchrecords

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm"
TARGET_SECONDS_1000 = 30.0
# 1000 subjects (18077 jobs) on the same machine before the workflow made each dataset's file
# list once, bids() checked its labels without a loop and a rule's script was checked once.
PREVIOUS = {"date": "2026-12-08", "what": "before the per-job savings", "seconds_1000": 37.4, "jobs_1000": 18077}
ACTIONS = {"script", "shell", "run", "wrapper", "notebook", "cwl", "template_engine"}


@dataclass
class Row:
    """One cohort size: timings (median of the repeats) and job counts."""

    subjects: int
    jobs: int
    dryrun_s: float
    dryrun_profile_s: float
    slurm_jobs: int
    group_jobs: int
    slurm_jobs_per_subject: float
    ungrouped_jobs_per_subject: float


def local_rules(repo: Path = REPO) -> set[str]:
    """Rules Snakemake runs on the submitting machine: those named by `localrules:` or
    `localrule: True`, and those without an action (e.g. `rule all`)."""
    files = [repo / "Snakefile", *sorted((repo / "workflow" / "rules").glob("*.smk"))]
    local: set[str] = set()
    for smk in files:
        if not smk.is_file():
            continue
        text = smk.read_text()
        for m in re.finditer(r"^localrules:\s*([^\n]+)", text, re.M):
            local.update(n.strip() for n in m.group(1).split(",") if n.strip())
        blocks = re.split(r"^(?=(?:rule|checkpoint)\s+\w+\s*:)", text, flags=re.M)
        for block in blocks:
            head = re.match(r"(?:rule|checkpoint)\s+(\w+)\s*:", block)
            if not head:
                continue
            # The rule's body ends at the first unindented line after its header.
            body = re.split(r"^(?=\S)", block.split("\n", 1)[1] if "\n" in block else "", flags=re.M)[0]
            directives = set(re.findall(r"^\s+(\w+):", body, re.M))
            if not directives & ACTIONS or re.search(r"^\s+localrule:\s*True", body, re.M):
                local.add(head.group(1))
    return local


def job_stats(output: str) -> dict[str, int]:
    """The first 'Job stats' table of a dry run: jobs per rule, and 'total'."""
    m = re.search(r"^Job stats:\n.*?\n-+\s+-+\n(.*?^total\s+\d+)", output, re.M | re.S)
    if not m:
        raise RuntimeError("the dry run printed no job stats:\n" + output[-3000:])
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", m.group(1), re.M)}


def slurm_jobs(output: str, local: set[str]) -> tuple[int, int]:
    """(SLURM jobs, of which group jobs) in a dry run's plan: group jobs count once, ungrouped
    jobs (rule blocks at column 0) once each unless their rule runs locally."""
    groups = len(re.findall(r"^\[[^\]]+\] Group job \S+", output, re.M))
    ungrouped = [r for r in re.findall(r"^(?:local)?rule (\w+):", output, re.M) if r not in local]
    return groups + len(ungrouped), groups


def dry_run(args: list[str]) -> tuple[float, str]:
    """Seconds and printed output of one dry run in the repository root."""
    cmd = [sys.executable, "-m", "snakemake", "-n", *args]
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = res.stdout + res.stderr
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-4000:]}")
    return seconds, output


def measure(n_subjects: int, repeat: int, workdir: Path) -> Row:
    """Time the dry runs of an n-subject demo cohort and count the jobs they plan."""
    config = workdir / f"demo-{n_subjects}.yaml"
    config.write_text(yaml.safe_dump({"inputs": {"source": "demo", "demo": {"n_subjects": n_subjects}}}))
    common = ["--configfile", str(config), "--config", f"output_dir={workdir / f'results-{n_subjects}'}"]
    plain, grouped = [], []
    out_plain = out_grouped = ""
    for _ in range(repeat):
        seconds, out_plain = dry_run(common)
        plain.append(seconds)
        seconds, out_grouped = dry_run(["--profile", str(SLURM_PROFILE), *common])
        grouped.append(seconds)
    stats = job_stats(out_plain)
    local = local_rules()
    n_slurm, n_groups = slurm_jobs(out_grouped, local)
    # Without grouping every job of a non-local rule would be its own SLURM job.
    ungrouped_total = sum(count for rule, count in stats.items() if rule != "total" and rule not in local)
    return Row(
        subjects=n_subjects,
        jobs=stats["total"],
        dryrun_s=statistics.median(plain),
        dryrun_profile_s=statistics.median(grouped),
        slurm_jobs=n_slurm,
        group_jobs=n_groups,
        slurm_jobs_per_subject=n_slurm / n_subjects,
        ungrouped_jobs_per_subject=ungrouped_total / n_subjects,
    )


def group_components() -> str:
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    return ", ".join(profile.get("group-components", [])) or "none"


def print_table(rows: list[Row]) -> None:
    header = (f"{'subjects':>8} {'jobs':>7} {'dry-run s':>10} {'w/ profile s':>13} {'SLURM jobs':>11} "
              f"{'of them groups':>15} {'SLURM jobs/subject':>19} {'ungrouped/subject':>18}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.subjects:>8} {r.jobs:>7} {r.dryrun_s:>10.2f} {r.dryrun_profile_s:>13.2f} {r.slurm_jobs:>11} "
              f"{r.group_jobs:>15} {r.slurm_jobs_per_subject:>19.3f} {r.ungrouped_jobs_per_subject:>18.2f}")
    big = [r for r in rows if r.subjects == 1000]
    if big:
        ratio = big[0].dryrun_s / TARGET_SECONDS_1000
        verdict = "meets" if ratio <= 1 else "MISSES"
        print(f"\n1000 subjects: {big[0].dryrun_s:.2f} s = {ratio:.2f} x the {TARGET_SECONDS_1000:.0f} s target "
              f"({verdict} it)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[10, 100, 1000],
                        help="cohort sizes (default: 10 100 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="dry runs per size; the median is shown")
    parser.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    benchrecords.add_option(parser, "dryrun")
    args = parser.parse_args(argv)

    print(f"snakemake -n of the demo cohort, all default experiments; grouping: {group_components()}\n")
    with tempfile.TemporaryDirectory(prefix="spectsynth-bench-") as tmp:
        rows = [measure(n, args.repeat, Path(tmp)) for n in args.subjects]
    print_table(rows)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)
    if args.record:
        measures = []
        for r in rows:
            same = r.subjects == 1000 and r.jobs == PREVIOUS["jobs_1000"]
            measures.append(benchrecords.Measure(
                f"`snakemake -n`, {r.subjects} subjects ({r.jobs} jobs)", r.dryrun_s, "s",
                target=f"<= {TARGET_SECONDS_1000:g}" if r.subjects == 1000 else "",
                **({"peer": PREVIOUS["seconds_1000"], "peer_name": f"{PREVIOUS['date']}, {PREVIOUS['what']}"}
                   if same else {})))
        r = rows[-1]
        measures.append(benchrecords.Measure(
            f"SLURM jobs per subject ({r.subjects} subjects, profiles/slurm grouping)", r.slurm_jobs_per_subject,
            peer=r.ungrouped_jobs_per_subject, peer_name="without grouping"))
        path = benchrecords.save(args.record, "dryrun", measures, __file__, argv)
        print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
