"""DICOM input: per-subject folders of DICOM series, converted with dcm2niix.

Layout: ``<root>/<subject>/...`` holds every DICOM file of that subject (any depth, any
number of series).  The whole folder is converted with dcm2niix (the binary shipped by
the PyPI package ``dcm2niix``) into a scratch folder; for each modality the series whose
``SeriesDescription`` matches the configured regular expression (case-insensitive) is
kept and written into a BIDS layout (``sub-<label>/anat/sub-<label>_T1w.nii.gz`` and the
dcm2niix JSON sidecar, likewise ``pet/`` and ``spect/``), from where the pipeline goes on
exactly as for BIDS input.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import InputDataError
from ..io import write_json, write_text
from ..paths import bids
from .bids import MODALITIES

log = logging.getLogger(__name__)


def subject_label(folder_name: str) -> str:
    """A BIDS-valid label (letters and digits only) from a folder name."""
    label = re.sub(r"[^A-Za-z0-9]", "", folder_name)
    if not label:
        raise InputDataError("folder name gives an empty BIDS label", path=folder_name,
                             hint="Rename the folder to letters and digits")
    return label


def discover(root: str | Path, participant_label: list[str] | None = None) -> dict[str, Path]:
    """Map subject labels to their DICOM folders (one folder per subject under ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise InputDataError("DICOM folder does not exist", path=root,
                             hint="Set inputs.dicom.root to a folder with one sub-folder per subject")
    out: dict[str, Path] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = subject_label(d.name)
        if label in out:
            raise InputDataError(f"folders {out[label].name!r} and {d.name!r} give the same label "
                                 f"{label!r}", path=root, hint="Rename one of them")
        out[label] = d
    wanted = [p.removeprefix("sub-") for p in participant_label or []]
    if wanted:
        missing = sorted(set(wanted) - set(out))
        if missing:
            raise InputDataError(f"participant_label lists subjects with no folder: {missing}",
                                 path=root, hint=f"Folders found: {sorted(out)[:20]}")
        out = {k: v for k, v in out.items() if k in wanted}
    if not out:
        raise InputDataError("no subject folders found", path=root,
                             hint="Put each subject's DICOM files in its own sub-folder")
    return out


def dcm2niix_binary() -> str:
    try:
        import dcm2niix  # the PyPI package ships the binary
        return dcm2niix.bin
    except ImportError:
        exe = shutil.which("dcm2niix")
        if exe is None:
            raise InputDataError("dcm2niix is not installed",
                                 hint="pip install dcm2niix (it ships the binary)") from None
        return exe


def convert_subject(dicom_dir: str | Path, subject: str, bids_root: str | Path,
                    series: dict[str, str | None], required: list[str]) -> dict[str, Path]:
    """Convert one subject's DICOM folder and write the chosen series as BIDS files.

    Parameters
    ----------
    series:
        Modality (``T1w``, ``pet``, ``spect``) -> regular expression matched against the
        series description; ``None`` skips the modality.
    required:
        Modalities that must be found; a missing one raises :class:`InputDataError`
        listing the series descriptions that were present.
    """
    dicom_dir = Path(dicom_dir)
    bids_root = Path(bids_root)
    with tempfile.TemporaryDirectory(prefix="dcm2niix-") as tmp:
        cmd = [dcm2niix_binary(), "-b", "y", "-z", "y", "-ba", "y", "-f", "%s_%d",
               "-o", tmp, str(dicom_dir)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        log.info("dcm2niix for subject %s:\n%s", subject, res.stdout[-4000:])
        if res.returncode not in (0,):
            raise InputDataError(f"dcm2niix failed with exit code {res.returncode}: "
                                 f"{(res.stderr or res.stdout).strip()[-500:]}",
                                 subject=subject, path=dicom_dir,
                                 hint="Check that the folder holds readable DICOM files")
        converted = []
        for js in sorted(Path(tmp).glob("*.json")):
            nii = js.with_suffix(".nii.gz")
            if not nii.exists():
                continue
            meta = json.loads(js.read_text())
            converted.append((meta.get("SeriesDescription", ""), int(meta.get("SeriesNumber", 0)),
                              nii, js, meta))
        descriptions = sorted({c[0] for c in converted})
        written: dict[str, Path] = {}
        for mod, pattern in series.items():
            if not pattern:
                continue
            rx = re.compile(pattern, re.IGNORECASE)
            matches = sorted((c for c in converted if rx.search(c[0])), key=lambda c: c[1])
            if not matches:
                if mod in required:
                    raise InputDataError(
                        f"no DICOM series matches the {mod} pattern {pattern!r}; series found: "
                        f"{descriptions or 'none'}", subject=subject, path=dicom_dir,
                        hint=f"Adjust inputs.dicom.series.{mod} in the config")
                log.info("subject %s: no %s series (pattern %r)", subject, mod, pattern)
                continue
            if len(matches) > 1:
                log.warning("subject %s: %d series match the %s pattern, using series %d %r",
                            subject, len(matches), mod, matches[0][1], matches[0][0])
            desc, num, nii, js, meta = matches[0]
            datatype, suffix = MODALITIES[mod]
            dest = Path(bids(bids_root, subject=subject, datatype=datatype, suffix=suffix))
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(nii, dest)
            meta = dict(meta, SourceSeriesNumber=num)
            write_json(meta, bids(bids_root, subject=subject, datatype=datatype, suffix=suffix, extension=".json"))
            written[mod] = dest
    return written


def write_dataset_description(bids_root: str | Path) -> Path:
    root = Path(bids_root)
    root.mkdir(parents=True, exist_ok=True)
    p = root / "dataset_description.json"
    # the keys in this order, not sorted as write_json would
    return write_text(json.dumps({"Name": "converted from DICOM by spectsynth (dcm2niix)",
                                  "BIDSVersion": "1.9.0", "DatasetType": "raw"}, indent=2) + "\n", p)
