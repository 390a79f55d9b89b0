"""Static checks that CI enforces: ruff on the Python code, snakefmt and snakemake --lint on
the workflow."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    res = _run(sys.executable, "-m", "ruff", "check", "src", "tests", "workflow/scripts", "benchmarks")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_snakefmt_is_clean():
    rules = sorted(str(p) for p in (REPO / "workflow" / "rules").glob("*.smk"))
    res = _run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", *rules)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_snakemake_lint_is_clean(tmp_path):
    res = _run(sys.executable, "-m", "snakemake", "--lint", "--config", f"output_dir={tmp_path}")
    out = res.stdout + res.stderr
    assert "Congratulations, your workflow is in a good condition!" in out, out[-4000:]
