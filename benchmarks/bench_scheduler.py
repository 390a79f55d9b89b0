"""CPU time of Snakemake's own process scheduling many short jobs, with and without
spectsynth.scheduler.single_reevaluation (one wake-up timer pending instead of one more per
finished job). Prints both and their ratio, measured in this run.

    python benchmarks/bench_scheduler.py [--jobs 300] [--cores 2] [--sleep 0.3]

Each run is a throw-away workflow of N shell jobs that sleep a while (--sleep); the figures are
the CPU time of the Snakemake process and its children (the jobs cost the same in both) and the
number of threads the process holds at the end. The overhead grows with the jobs done times the
time they took, so a short benchmark understates what a long run loses.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spectsynth import benchrecords

SNAKEFILE = """
import threading
{patch}
N = {n}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule one:
    output: "out/{{i}}.txt"
    shell: "sleep {sleep}; touch {{output}}"
onsuccess:
    # in the main process: the threads it holds at the end
    with open("threads.txt", "w") as fh:
        fh.write(str(threading.active_count()))
"""


def run(n: int, cores: int, patched: bool, sleep: float) -> tuple[float, float, int]:
    patch = "from spectsynth.scheduler import single_reevaluation\nsingle_reevaluation()" if patched else ""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "Snakefile").write_text(SNAKEFILE.format(patch=patch, n=n, sleep=sleep))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "all"],
                       cwd=tmp, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        threads = int(Path(tmp, "threads.txt").read_text())
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), wall, threads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--sleep", type=float, default=0.3, help="seconds each job takes")
    benchrecords.add_option(ap, "scheduler")
    args = ap.parse_args(argv)
    base = run(args.jobs, args.cores, patched=False, sleep=args.sleep)
    new = run(args.jobs, args.cores, patched=True, sleep=args.sleep)
    print(f"{args.jobs} jobs of {args.sleep} s on {args.cores} cores")
    print(f"  Snakemake as shipped:  CPU {base[0]:6.1f} s, wall {base[1]:6.1f} s, threads at the end {base[2]}")
    print(f"  single_reevaluation:   CPU {new[0]:6.1f} s, wall {new[1]:6.1f} s, threads at the end {new[2]}")
    print(f"  CPU ratio (patched / as shipped): {new[0] / base[0]:.2f}; wall ratio {new[1] / base[1]:.2f}")
    if args.record:
        peer = "Snakemake as shipped, same run"
        setting = f"{args.jobs} jobs of {args.sleep} s on {args.cores} cores"
        measures = [benchrecords.Measure("CPU of the Snakemake process with spectsynth.scheduler", new[0], "s",
                                         peer=base[0], peer_name=peer, note=setting),
                    benchrecords.Measure("wall time of those jobs", new[1], "s", peer=base[1], peer_name=peer),
                    benchrecords.Measure("threads the process holds at the end", new[2], peer=base[2], peer_name=peer)]
        path = benchrecords.save(args.record, "scheduler", measures, __file__, argv)
        print(f"recorded {path}")


if __name__ == "__main__":
    main()
