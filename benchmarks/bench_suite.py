"""The test suite's wall time, as a user meets it: ``./run.sh test`` (the README's test command).

Runs ``./run.sh test`` from the repository root (extra arguments after ``--`` go to pytest), keeps
its output in ``--log``, and prints the wall time, pytest's summary (passed, skipped, failed) and
the ratio against the previous figure (:data:`PREVIOUS`, same machine).  ``--record DIR`` writes
the headline numbers to ``DIR/suite.tsv`` (``docs/benchmarks/``, from which the README's benchmark
table is generated); a failing suite is reported and not recorded.

Usage::

    python benchmarks/bench_suite.py                             # the whole suite
    python benchmarks/bench_suite.py --record docs/benchmarks    # ... and keep its figures
    python benchmarks/bench_suite.py -- -k inputs                # a part (not comparable to PREVIOUS)

Run it on an otherwise idle machine; whether the SLURM test ran (a local cluster up, as in
``.ci/run``) or was skipped is in pytest's summary and in the record.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from spectsynth import benchrecords

REPO = Path(__file__).resolve().parents[1]
TARGET_WALL_S = 15 * 60
# ``./run.sh test`` on a clean tree, idle machine, 2 workers, no SLURM cluster up (its test
# skipped): 810 passed, 4 skipped.  On a fresh clone through .ci/run, with the cluster: 10:49.
PREVIOUS = {"date": "2026-12-08", "what": "the suite before", "wall_s": 8 * 60 + 13}
_SUMMARY = re.compile(r"=+ (.*\b(?:passed|failed|error|errors)\b.*) in ([\d.]+)s")


def parse_summary(text: str) -> dict[str, int]:
    """pytest's last summary line -> ``{"passed": N, "skipped": N, ...}`` (empty if there is none)."""
    found = _SUMMARY.findall(text)
    if not found:
        return {}
    counts = {}
    for part in found[-1][0].split(","):
        m = re.match(r"\s*(\d+) (\w+)", part)
        if m:
            counts[m.group(2)] = int(m.group(1))
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--log", type=Path, default=REPO / "benchmarks" / "out" / "suite.log",
                   help="where the suite's output goes")
    benchrecords.add_option(p, "suite")
    p.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    a = p.parse_args(argv)
    a.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(a.log, "w") as fh:
        res = subprocess.run(["./run.sh", "test", *a.pytest_args], cwd=REPO, stdout=fh,
                             stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    counts = parse_summary(a.log.read_text(errors="replace"))
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no pytest summary"
    print(f"./run.sh test {' '.join(a.pytest_args)}".rstrip() + f": exit {res.returncode}, {summary}")
    print(f"wall time {wall / 60:.2f} min against {PREVIOUS['wall_s'] / 60:.2f} min before "
          f"({PREVIOUS['date']}): ratio {wall / PREVIOUS['wall_s']:.2f}; target {TARGET_WALL_S / 60:.0f} min: "
          + ("met" if wall <= TARGET_WALL_S else "not met"))
    print(f"output: {a.log}")
    if res.returncode != 0:
        print("the suite failed: nothing recorded", file=sys.stderr)
        return res.returncode
    if a.record:
        whole = not a.pytest_args
        measures = [benchrecords.Measure(
            "the test suite (`./run.sh test`, 2 workers), wall time", wall, "s", target=f"<= {TARGET_WALL_S}",
            note=summary + ("" if whole else "; part of the suite"),
            **({"peer": PREVIOUS["wall_s"], "peer_name": f"{PREVIOUS['date']}, {PREVIOUS['what']}"} if whole else {}))]
        path = benchrecords.save(a.record, "suite", measures, __file__, argv)
        print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
