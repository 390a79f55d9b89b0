"""Ground-truth records: one row per simulated volume, a JSON sidecar per stack.

Every volume the simulator writes has a record with the subject, tracer, pattern,
parameters, seed, true values (from the activity map before the physics) and measured
values (from the simulated image, with :mod:`spectsynth.quant` and the same region
weights), total counts and physics path.  A stack's records go to a TSV (one row per
volume, ``index`` = volume number in the 4-D NIfTI) and, with the stack's calibration
and settings, to a JSON sidecar.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_json, write_table

# Clinical reference ranges of 123I-ioflupane SPECT (occipital reference) that the DaT
# simulation is calibrated to reproduce; asymmetry in percent.
PUBLISHED_RANGES = {
    "normal": {"caudate": (3.0, 3.7), "putamen": (1.6, 2.0), "ai_putamen": (7.0, 9.0)},
    "PD": {"caudate": (1.9, 2.4), "putamen": (0.8, 1.1), "ai_putamen": (19.0, 23.0)},
}
# Published grey:white ratio of 99mTc-HMPAO perfusion SPECT (mean, SD).
PUBLISHED_GM_WM = (2.24, 0.54)


def clean(value):
    """JSON/TSV-friendly scalar: numpy types to Python, floats rounded to 6 significant digits."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def flatten(record: dict) -> dict:
    """One TSV row: nested dicts become ``outer_inner`` columns, lists ``;``-joined strings."""
    row = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for k, v in flatten(value).items():
                row[f"{key}_{k}"] = v
        elif isinstance(value, (list, tuple)):
            row[key] = ";".join(json.dumps(clean(v)) if isinstance(v, (dict, list)) else str(clean(v)) for v in value)
        else:
            row[key] = clean(value)
    return row


def records_table(records: Iterable[dict]) -> pd.DataFrame:
    return pd.DataFrame([flatten(r) for r in records])


def write_truth(records: list[dict], meta: dict, tsv_path: str | Path, json_path: str | Path) -> None:
    """Write the TSV (one row per volume) and the JSON sidecar (meta + all records)."""
    table = records_table(records)
    write_table(table, tsv_path, what="simulation truth table", na_rep="n/a")
    write_json(clean(meta | {"volumes": records}), json_path)


def read_truth(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate truth tables (e.g. of a whole cohort)."""
    frames = [pd.read_csv(p, sep="\t", na_values="n/a", dtype={"subject": str}) for p in paths]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def in_published_range(value: float, group: str, measure: str) -> bool:
    lo, hi = PUBLISHED_RANGES[group][measure]
    return lo <= value <= hi
