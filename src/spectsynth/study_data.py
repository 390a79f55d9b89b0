"""Glue between the simulator's outputs and the slice datasets of the four studies.

At planning time the workflow only knows each subject's files; the parameters of every
simulated volume (PBR/CBR/SLR, pattern per level, ...) are in the simulator's truth tables,
which exist only after simulation.  :func:`dataset_entries` reads them and returns the
entries :func:`spectsynth.datasets.records_from_files` takes: one per image (pair), with
4-D stacks addressed as ``{"path": ..., "volume": k}``.

Files each study needs per subject (keys of ``subject_files[subject]``):

* ``s0``: ``dat`` (the 4-D DaT stack, volume 0 = undegraded original), ``dat_truth`` (whose
  ``design_set`` column, main or validation, becomes each entry's ``params["design_set"]``: the
  split of S0's design, :mod:`spectsynth.design`).
* ``s1``: ``perfusion`` (4-D perfusion stack), ``perfusion_json`` (camera-grid level slice
  ranges), ``perfusion_truth`` (pattern of each volume at each level).
* ``s2_native`` / ``s2_template``: ``mri`` (the brain-extracted T1w, as S2 ran BET on its MRIs),
  ``pet``, ``spect`` on one grid.
* ``s3``: ``spect_cbf``, ``pet_cbf`` on one grid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .errors import InputDataError
from .labels import LEVELS

DAT_PARAMS = ("pbr", "cbr", "slr", "affected_side", "design_set", "desc")
# Regions whose binding ratio S0's regression CNN reads from a slice (caudate/putamen, L/R).
SBR_REGIONS = ("caudate_L", "caudate_R", "putamen_L", "putamen_R")
SBR_PREFIX = "sbr_"            # index column of the damaged (input) volume's SBR: sbr_<region>
ORIG_SBR_PREFIX = "orig_sbr_"  # ... of the undegraded original it is paired with: orig_sbr_<region>


def _truth(path: str | Path, subject: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise InputDataError("simulation truth table is missing", subject=subject, path=p,
                             hint="Rerun the simulation of this subject")
    return pd.read_csv(p, sep="\t", keep_default_na=False)


def _s0(subject: str, files: Mapping[str, str]) -> list[dict]:
    """S0 entries: one per degraded volume (damaged = that volume, original = its ``pair_index``).

    ``params`` (which become columns of the dataset index) hold the degradation parameters and
    the known regional binding ratios of both volumes: ``sbr_<region>`` of the damaged volume
    and ``orig_sbr_<region>`` of the original, for the :data:`SBR_REGIONS`.  They are the
    truth table's ``meas_sbr_*`` (the volumetric SBR measured on the simulated image with the
    subject's anatomical labels, occipital reference), not the phantom's ``true_sbr_*``: a
    reader, or a regression CNN trained to be one, can only recover what the image shows,
    after the camera's blur, partial-volume loss and noise, and the simulator calibrates the
    phantom so that these measured values sit at clinical levels.  A truth table without
    ``meas_sbr_*`` columns (an older simulator's) gives entries without them; the regression
    CNN and its evaluation then stop with a message naming the missing index columns.
    """
    df = _truth(files["dat_truth"], subject)
    by_index = {int(r["index"]): r for _, r in df.iterrows()}
    out = []
    for _, row in df.iterrows():
        if row["pattern"] == "normal":
            continue                      # the undegraded original itself
        params = {k: row[k] for k in DAT_PARAMS if k in row}
        original = by_index.get(int(row["pair_index"]))
        if original is None:
            raise InputDataError(f"volume {int(row['index'])} is paired with volume {int(row['pair_index'])}, "
                                 "which the truth table does not list", subject=subject,
                                 path=files["dat_truth"], hint="Rerun the simulation of this subject")
        for prefix, source in ((SBR_PREFIX, row), (ORIG_SBR_PREFIX, original)):
            for region in SBR_REGIONS:
                col = f"meas_sbr_{region}"
                if col in row and col in original:
                    params[f"{prefix}{region}"] = float(source[col])
        out.append({
            "subject": subject,
            "files": {"damaged": {"path": files["dat"], "volume": int(row["index"])},
                      "original": {"path": files["dat"], "volume": int(row["pair_index"])}},
            "levels": None, "pattern": "degraded", "space": "camera",
            "params": params,
        })
    return out


def _s1(subject: str, files: Mapping[str, str]) -> list[dict]:
    df = _truth(files["perfusion_truth"], subject)
    meta = json.loads(Path(files["perfusion_json"]).read_text())
    slices = meta.get("level_slices") or {}
    out = []
    for _, row in df.iterrows():
        for level in LEVELS:
            if level not in slices:
                continue
            # One entry per level: S1 labels a slice by the pattern seen at its level
            # (a unilateral MCA defect may leave the cerebellum normal).
            levels = {lv: (tuple(slices[lv]) if lv == level else None) for lv in LEVELS}
            out.append({
                "subject": subject,
                "files": {"spect": {"path": files["perfusion"], "volume": int(row["index"])}},
                "levels": levels, "pattern": row.get(f"pattern_{level}", row["pattern"]),
                "space": "camera",
                "params": {"volume": int(row["index"]), "pattern_volume": row["pattern"]},
            })
    return out


def _paired(subject: str, files: Mapping[str, str], roles: tuple[str, ...], space: str) -> list[dict]:
    return [{"subject": subject, "files": {r: files[r] for r in roles}, "levels": None,
             "pattern": "normal", "space": space, "params": {}}]


def dataset_entries(dataset: str, subject_files: Mapping[str, Mapping[str, str]]) -> list[dict]:
    """Entries of ``dataset`` (s0, s1, s2_native, s2_template, s3) for every subject."""
    out: list[dict] = []
    for subject, files in subject_files.items():
        if dataset == "s0":
            out += _s0(subject, files)
        elif dataset == "s1":
            out += _s1(subject, files)
        elif dataset in ("s2_native", "s2_template"):
            out += _paired(subject, files, ("mri", "pet", "spect"), dataset.split("_", 1)[1])
        elif dataset == "s3":
            out += _paired(subject, files, ("spect_cbf", "pet_cbf"), "native")
        else:
            raise InputDataError(f"unknown dataset {dataset!r}",
                                 hint="Use one of s0, s1, s2_native, s2_template, s3")
    return out

