"""Shared fixtures: paths of the repository and of the real IXI sample MRIs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IXI = REPO.parent / "shared" / "data" / "ixi-sample"
IXI_IDS = ["IXI012-HH-1211", "IXI013-HH-1212", "IXI014-HH-1236"]

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
