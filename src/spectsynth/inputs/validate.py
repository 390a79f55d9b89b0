"""The per-subject input check that runs before any heavy work.

:func:`validate_image` reads one input image through :func:`spectsynth.io.load_image`
(readable, 3-D, finite, not empty, voxel sizes 0.2-10 mm, a finite full-rank affine,
consistent qform/sform), checks that a T1w looks like one (:func:`check_t1w_plausible`),
writes the RAS+ canonical copy the later stages read, and a small JSON record of what was
found.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import InputDataError
from ..io import load_image, save_image, write_json, write_table

log = logging.getLogger(__name__)

# Plausibility of a T1-weighted MR image, measured on the head (voxels above 10 % of the
# 99th percentile). Real T1w images -- the IXI scans (uint8 with a scale slope), the demo
# cohort -- have hundreds of grey levels, 0.5-5 % of neighbouring head voxels with exactly
# the same value (noise) and no negative values; a label map given as T1w has 81 % equal
# neighbours, a mask or tissue segmentation a handful of values, a CT or difference map
# many negative values.
T1W_MIN_LEVELS = 16
T1W_MAX_EQUAL_NEIGHBOURS = 0.5
T1W_MAX_NEGATIVE_FRACTION = 0.05
OVERRIDE_HINT = ("Check that this file is the T1-weighted scan (not a mask, label map, "
                 "segmentation or derived map); if it is, set inputs.plausibility_check: false "
                 "to accept it")


def check_required(subject: str, missing: list[str], expected: dict[str, str] | None = None) -> None:
    """Raise if a modality the chosen experiments need is missing for ``subject``."""
    if missing:
        where = "; ".join(f"{m}: expected {expected[m]}" for m in missing if m in (expected or {}))
        raise InputDataError(
            f"missing modality {', '.join(missing)}" + (f" ({where})" if where else ""),
            subject=subject,
            hint="Add the image, drop the subject (inputs.bids.exclude, or list it as skipped "
                 "with inputs.bids.if_unusable: skip) or remove the modality from "
                 "inputs.required_modalities",
        )


def validate_input(src: str | Path | None, dest: str | Path, record: str | Path, *, subject: str,
                   modality: str, missing: list[str] | None = None,
                   allow_4d: bool = False, plausibility_check: bool = True,
                   expected: dict[str, str] | None = None) -> dict:
    """The workflow's per-image check: required modalities first, then the image itself.

    ``expected`` maps a missing modality to where it was looked for (and what was found
    there instead), for the message.
    """
    check_required(subject, list(missing or []), expected)
    if src is None:
        check_required(subject, [modality], expected)
    return validate_image(src, dest, record, subject=subject, modality=modality,
                          allow_4d=allow_4d, plausibility_check=plausibility_check)


def _equal_neighbour_fraction(data: np.ndarray, head: np.ndarray) -> float:
    """Fraction of pairs of face-adjacent head voxels holding exactly the same value."""
    same = total = 0
    for ax in range(3):
        a = np.moveaxis(data, ax, 0)
        m = np.moveaxis(head, ax, 0)
        both = m[1:] & m[:-1]
        same += int(np.count_nonzero(a[1:][both] == a[:-1][both]))
        total += int(np.count_nonzero(both))
    return same / total if total else 1.0


def check_t1w_plausible(img: nib.Nifti1Image, *, subject: str, path: str | Path) -> dict:
    """Refuse an image that does not look like a T1-weighted MR scan; return the measures.

    Three measures on the head (:data:`T1W_MIN_LEVELS`, :data:`T1W_MAX_EQUAL_NEIGHBOURS`,
    :data:`T1W_MAX_NEGATIVE_FRACTION`): the number of distinct intensities, the fraction
    of neighbouring voxels with identical values (piecewise-constant images: label maps,
    masks, segmentations) and the fraction of negative values (CT, difference maps).
    """
    data = np.asanyarray(img.dataobj)
    data = np.where(np.isfinite(data), data, 0) if data.dtype.kind == "f" else data
    pos = data[data > 0]
    thr = 0.1 * float(np.percentile(pos, 99)) if pos.size else 0.0
    head = data > thr
    levels = int(np.unique(data[head]).size)
    equal = _equal_neighbour_fraction(data, head)
    negative = float(np.count_nonzero(data < 0)) / data.size
    measures = {"head_levels": levels, "head_equal_neighbours": round(equal, 4),
                "negative_fraction": round(negative, 4)}
    problems = []
    if levels < T1W_MIN_LEVELS:
        problems.append(f"only {levels} distinct intensities in the head (a T1w has hundreds; "
                        f"at least {T1W_MIN_LEVELS} expected), as in a mask or segmentation")
    elif equal > T1W_MAX_EQUAL_NEIGHBOURS:
        problems.append(f"{equal:.0%} of neighbouring head voxels have identical values (a T1w "
                        f"has a few percent; at most {T1W_MAX_EQUAL_NEIGHBOURS:.0%} accepted), "
                        "as in a label map")
    if negative > T1W_MAX_NEGATIVE_FRACTION:
        problems.append(f"{negative:.0%} of the voxels are negative (an MR magnitude image has "
                        f"none; at most {T1W_MAX_NEGATIVE_FRACTION:.0%} accepted), as in a CT or "
                        "a difference map")
    if problems:
        raise InputDataError("does not look like a T1-weighted MR image: " + "; ".join(problems),
                             subject=subject, path=path, hint=OVERRIDE_HINT)
    return measures


def validate_image(src: str | Path, dest: str | Path, record: str | Path, *, subject: str,
                   modality: str, allow_4d: bool = False,
                   plausibility_check: bool = True) -> dict:
    """Validate ``src``, write its RAS+ copy to ``dest`` and a JSON record; return the record."""
    src = Path(src)
    raw = load_image(src, subject=subject, allow_4d=allow_4d, reorient=False)
    measures = (check_t1w_plausible(raw, subject=subject, path=src)
                if modality == "T1w" and plausibility_check else {})
    img = nib.as_closest_canonical(raw)
    data = np.asanyarray(img.dataobj)
    # Keep integer types with their scaling; store floats as float32.
    if data.dtype.kind == "f" and data.dtype != np.float32:
        img = nib.Nifti1Image(data.astype(np.float32), img.affine, img.header)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    save_image(img, dest, subject=subject)
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    rec = {
        "subject": subject,
        "modality": modality,
        "source": str(src),
        "source_orientation": "".join(nib.aff2axcodes(raw.affine)),
        "source_shape": list(raw.shape),
        "orientation": "".join(nib.aff2axcodes(img.affine)),
        "shape": list(img.shape),
        "voxel_mm": [round(float(z), 4) for z in img.header.get_zooms()[:3]],
        "dtype": str(data.dtype),
        "min": float(np.min(finite)),
        "max": float(np.max(finite)),
        "nonzero_fraction": round(float(np.count_nonzero(data)) / data.size, 4),
        **measures,
    }
    write_json(rec, record)
    log.info("subject %s: %s OK (%s -> RAS, shape %s, voxel %s mm)", subject, modality,
             rec["source_orientation"], rec["shape"], rec["voxel_mm"])
    return rec


def summarize(records: list[str | Path], out_tsv: str | Path,
              skipped: list[dict] | None = None) -> Path:
    """One table row per validated image (orientation before/after, shape, voxel size).

    ``skipped`` adds one row per image or subject the run left out
    (``inputs.bids.if_unusable: skip``), with ``status`` ``skipped`` and the reason.
    """
    import json

    import pandas as pd

    rows = [{"status": "ok", **json.loads(Path(r).read_text())} for r in records]
    rows += [{"status": "skipped", **row} for row in skipped or []]
    df = pd.DataFrame(rows)
    for col in ("source_shape", "shape", "voxel_mm"):
        if col in df:
            df[col] = df[col].map(lambda v: "x".join(str(x) for x in v) if isinstance(v, list) else v)
    df = df.sort_values(["subject", "modality"]).reset_index(drop=True)
    return write_table(df, out_tsv, what="input validation summary", allow_missing=True)
