"""Do the simulated scans behave like patients' scans? The realism table of a run, with its bands.

Prints ``qc/realism.tsv`` (rule ``realism``, :mod:`spectsynth.realism`): every measured
property of the simulated data (resolution, noise, grey/white ratio, extracerebral signal,
registration error per scan kind; the paired studies' input-vs-target SSIM and S3's ROI line on
the built datasets; the DaT normal SBR spread) beside its target band and source, with the
``within_band`` the rule computed and a count of rows inside, outside and without band.

Usage::

    python benchmarks/bench_realism.py results                   # a finished run's results folder
    python benchmarks/bench_realism.py --run --outdir /tmp/demo  # the demo's simulation, datasets and
                                                                 # the table only (no training), then print
    python benchmarks/bench_realism.py results --sources         # also the bands' full citations

With ``--run`` Snakemake builds only ``qc/realism.tsv`` of the demo configuration (and what it
needs: inputs, preprocessing, anatomy, simulation, registration QC, the paired datasets), so the
table does not wait for any training.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_demo_table(outdir: Path, cores: int, extra: list[str]) -> float:
    target = outdir / "qc" / "realism.tsv"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO),
           "--cores", str(cores), "--config", f"output_dir={outdir}", *extra, "--", str(target)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"snakemake failed (exit {res.returncode})")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="?", type=Path, help="a results folder with qc/realism.tsv")
    p.add_argument("--run", action="store_true", help="build the demo's realism table first (into --outdir)")
    p.add_argument("--outdir", type=Path, help="results folder of --run (default: a new temporary folder)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--sources", action="store_true", help="print the full citations of the bands")
    p.add_argument("extra", nargs="*", help="after --: more Snakemake arguments for --run")
    args = p.parse_args(argv)

    from spectsynth.realism import SOURCES, read, render

    results = args.results
    if args.run:
        results = args.outdir or Path(tempfile.mkdtemp(prefix="realism-")) / "results"
        wall = run_demo_table(results, args.cores, args.extra)
        print(f"demo simulation + realism table: {wall / 60:.1f} min on {args.cores} cores ({results})\n")
    if results is None:
        p.error("give a results folder or --run")
    path = results / "qc" / "realism.tsv"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run the workflow (rule realism) first, or use --run")
    table = read(path)
    print(render(table, title=f"Realism of {results}"), end="")
    if args.sources:
        print("\nSources:")
        for key, text in SOURCES.items():
            print(f"- {key}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
