"""Shared fixtures: paths of the repository and of the real IXI sample MRIs, the `smk` helper
and the tiny end-to-end run that every test reading a finished run shares."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
IXI = REPO.parent / "shared" / "data" / "ixi-sample"
IXI_IDS = ["IXI012-HH-1211", "IXI013-HH-1212", "IXI014-HH-1236"]
TINY = "tests/configs/tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(REPO)]

# Tests must never reach the network or a GPU by accident.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ixi_dir() -> Path:
    if not (IXI / "nifti").is_dir():
        pytest.skip(f"real IXI sample not found at {IXI} (it sits in ../shared beside the repo)")
    return IXI


def ixi_t1(ixi_dir: Path, idx: int = 0) -> Path:
    return ixi_dir / "nifti" / f"{IXI_IDS[idx]}-T1_ds.nii.gz"


def ixi_labels(ixi_dir: Path, idx: int = 0) -> Path:
    return ixi_dir / "dlmuse" / f"{IXI_IDS[idx]}-T1_ds_DLMUSE.nii.gz"


def smk(*args: str, timeout: int = 1500, check: bool = True) -> subprocess.CompletedProcess:
    """Snakemake on the repository's workflow (working folder: the repository), on the CPU."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    res = subprocess.run([*SNAKEMAKE, *args], capture_output=True, text=True, cwd=REPO,
                         timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{res.stdout[-6000:]}\n"
                             f"{res.stderr[-6000:]}")
    return res


@pytest.fixture(name="smk", scope="session")
def smk_fixture():
    return smk


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The results folder of a finished tiny run (tests/configs/tiny.yaml, 2 cores) with its
    report.html, made once per test session: test_workflow.py reads it, test_reproducibility.py
    compares a second run from scratch with it, test_rerun.py plans reruns on it."""
    out = tmp_path_factory.mktemp("tiny") / "results"
    smk("--cores", "2", "--configfile", TINY, "--config", f"output_dir={out}")
    smk("--configfile", TINY, "--config", f"output_dir={out}", "--report", str(out / "report.html"))
    return out


def copy_of_run(results: Path, dest: Path) -> Path:
    """A copy of a finished run's results folder, modification times kept, so that Snakemake
    finds it up to date (its metadata records are the original's, so none are found for the
    copy, which triggers nothing). Tests that rerun a part of the tiny run work on such a copy,
    instead of remaking the rest from scratch or touching the shared run."""
    import shutil

    shutil.copytree(results, dest, symlinks=True)
    return dest


@pytest.fixture()
def one_torch_thread():
    """Torch on one thread for the test (training on a busy 2-core machine), restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


PHANTOM_SHAPE = (40, 48, 36)


def phantom(seed: int = 0, pattern: str = "normal", striatum: float = 1.0, shape=PHANTOM_SHAPE) -> np.ndarray:
    """A tiny DaT-like volume for the dataset, training and inference tests: an ellipsoid 'brain'
    with two striatal blobs; ``unilateral`` halves the left side, ``bilateral`` the anterior and
    posterior thirds."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = ((x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2) < 1
    v = brain * (1.0 + 0.1 * rng.standard_normal(shape))
    if pattern == "unilateral":
        v[(x < 0) & brain] *= 0.5
    elif pattern == "bilateral":
        v[(np.abs(y) > 0.3) & brain] *= 0.5
    v[((np.abs(x) - 0.3) ** 2 / 0.02 + y ** 2 / 0.05 + z ** 2 / 0.03) < 1] += 3.0 * striatum
    return np.clip(v, 0, None).astype(np.float32)


# --------------------------------------------------------------------------- parallel runs

TINY_GROUP = "tiny_run"


@functools.cache
def _reads_tiny_run(path: str) -> bool:
    """A test file that uses the shared tiny run names its fixture (read once per file)."""
    try:
        return TINY_GROUP in (REPO / path).read_text()
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """The tests of the shared tiny run first: they are the longest chain of the suite."""
    items.sort(key=lambda it: TINY_GROUP not in getattr(it, "fixturenames", ()))   # stable


def pytest_xdist_make_scheduler(config, log):
    """``./run.sh test`` runs two pytest-xdist workers with ``--dist loadfile``: every test file
    goes whole to one worker (its module fixtures are built once), and every file that reads the
    shared tiny run goes to the same worker, so that run is made once; the other worker takes the
    rest meanwhile. (xdist's ``loadgroup`` cannot do this under pytest 9: it marks groups in an
    attribute of the test item that pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class TinyRunTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return TINY_GROUP if _reads_tiny_run(path) else path

    return TinyRunTogether(config, log)
