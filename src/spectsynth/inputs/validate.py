"""The per-subject input check that runs before any heavy work.

:func:`validate_image` reads one input image through :func:`spectsynth.io.load_image`
(readable, 3-D, finite, not empty, voxel sizes 0.2-10 mm, consistent qform/sform), writes
the RAS+ canonical copy the later stages read, and a small JSON record of what was found.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import InputDataError
from ..io import load_image, save_image, write_json

log = logging.getLogger(__name__)


def check_required(subject: str, missing: list[str], expected: dict[str, str] | None = None) -> None:
    """Raise if a modality the chosen experiments need is missing for ``subject``."""
    if missing:
        where = "; ".join(f"{m}: expected {expected[m]}" for m in missing) if expected else ""
        raise InputDataError(
            f"missing modality {', '.join(missing)}" + (f" ({where})" if where else ""),
            subject=subject,
            hint="Add the image, drop the subject (inputs.bids.exclude) or remove the modality "
                 "from inputs.required_modalities",
        )


def validate_input(src: str | Path | None, dest: str | Path, record: str | Path, *, subject: str,
                   modality: str, missing: list[str] | None = None,
                   allow_4d: bool = False) -> dict:
    """The workflow's per-image check: required modalities first, then the image itself."""
    check_required(subject, list(missing or []))
    if src is None:
        check_required(subject, [modality])
    if not Path(src).exists():
        raise InputDataError(f"the {modality} image does not exist", subject=subject, path=src,
                             hint="Check the input folder; for DICOM input check "
                                  f"inputs.dicom.series.{modality}")
    return validate_image(src, dest, record, subject=subject, modality=modality,
                          allow_4d=allow_4d)


def validate_image(src: str | Path, dest: str | Path, record: str | Path, *, subject: str,
                   modality: str, allow_4d: bool = False) -> dict:
    """Validate ``src``, write its RAS+ copy to ``dest`` and a JSON record; return the record."""
    src = Path(src)
    raw = nib.load(str(src)) if src.exists() else None
    img = load_image(src, subject=subject, allow_4d=allow_4d)
    data = np.asanyarray(img.dataobj)
    # Keep integer types with their scaling; store floats as float32.
    if data.dtype.kind == "f" and data.dtype != np.float32:
        img = nib.Nifti1Image(data.astype(np.float32), img.affine, img.header)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    save_image(img, dest)
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    rec = {
        "subject": subject,
        "modality": modality,
        "source": str(src),
        "source_orientation": "".join(nib.aff2axcodes(raw.affine)) if raw is not None else None,
        "source_shape": list(raw.shape) if raw is not None else None,
        "orientation": "".join(nib.aff2axcodes(img.affine)),
        "shape": list(img.shape),
        "voxel_mm": [round(float(z), 4) for z in img.header.get_zooms()[:3]],
        "dtype": str(data.dtype),
        "min": float(np.min(finite)),
        "max": float(np.max(finite)),
        "nonzero_fraction": round(float(np.count_nonzero(data)) / data.size, 4),
    }
    write_json(rec, record)
    log.info("subject %s: %s OK (%s -> RAS, shape %s, voxel %s mm)", subject, modality,
             rec["source_orientation"], rec["shape"], rec["voxel_mm"])
    return rec


def summarize(records: list[str | Path], out_tsv: str | Path) -> Path:
    """One table row per validated image (orientation before/after, shape, voxel size)."""
    import json

    import pandas as pd

    rows = [json.loads(Path(r).read_text()) for r in records]
    df = pd.DataFrame(rows)
    for col in ("source_shape", "shape", "voxel_mm"):
        if col in df:
            df[col] = df[col].map(lambda v: "x".join(str(x) for x in v) if isinstance(v, list) else v)
    df = df.sort_values(["subject", "modality"]).reset_index(drop=True)
    out_tsv = Path(out_tsv)
    out_tsv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_tsv, sep="\t", index=False)
    return out_tsv
