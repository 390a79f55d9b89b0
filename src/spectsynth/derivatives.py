"""The results folder as a BIDS-derivatives dataset: its ``dataset_description.json`` and
``.bidsignore``.

The per-subject files (``sub-<label>/...``, named by :func:`spectsynth.paths.bids`) form the
derivatives dataset; everything else the workflow writes at the top of the results folder
(tables, models, predictions, logs, the demo's raw dataset, ...) is listed in ``.bidsignore``
so that BIDS tools skip it, as are the per-subject QC figures (``figures/`` is not a BIDS
datatype; fMRIPrep's derivatives ignore theirs the same way).  Neither file holds a time or a
machine's path (for a demo or DICOM input), so two runs of the same configuration write the
same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import __version__
from .io import write_json, write_text
from .paths import BIDS_VERSION

NAME = "spectsynth"
# The top-level folders of a results folder that are not part of the BIDS dataset.
NON_BIDS_FOLDERS = (
    "benchmarks", "datasets", "demo-bids", "dicom-bids", "evaluate", "experiments", "figures",
    "inputs", "logs", "predictions", "provenance", "qc", "reading", "simulation",
)
# Per-subject folders that are not BIDS datatypes and that BIDS tools should skip.
NON_BIDS_SUBJECT_FOLDERS = ("figures",)
# The raw dataset inside the results folder that a demo or DICOM input is converted into.
LOCAL_SOURCES = {"demo": "demo-bids", "dicom": "dicom-bids"}


def dataset_description(source: str, bids_root: str | Path | None = None) -> dict:
    """``dataset_description.json`` of a results folder made from input ``source``.

    ``source`` is ``inputs.source`` (demo, bids, dicom); for ``bids`` the input dataset's root
    ``bids_root`` is linked (as a ``file://`` URI), otherwise the raw dataset the workflow wrote
    beside the derivatives (a path relative to the results folder).
    """
    if source == "bids":
        if not bids_root:
            raise ValueError("dataset_description(): a BIDS input needs its root")
        link = Path(bids_root).resolve().as_uri()
    else:
        link = f"{LOCAL_SOURCES[source]}/"
    return {
        "Name": "spectsynth derivatives: synthetic SPECT/PET from MRI anatomy",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": NAME, "Version": __version__,
                         "Description": "synthetic SPECT/PET from MRI anatomy and the studies "
                                        "built on it (Snakemake workflow)"}],
        "DatasetLinks": {"raw": link},
        "SourceDatasets": [{"URL": "bids:raw:"}],
    }


def bidsignore(folders: Iterable[str] = NON_BIDS_FOLDERS,
               subject_folders: Iterable[str] = NON_BIDS_SUBJECT_FOLDERS) -> str:
    """``.bidsignore``: one pattern a line (gitignore syntax, as the BIDS validator reads it)."""
    lines = [f"/{f}/" for f in folders] + [f"sub-*/{f}/" for f in subject_folders]
    lines += ["report.html", "headline.tsv", "headline.md"]
    return "\n".join(lines) + "\n"


def write_dataset_files(description_out: str | Path, bidsignore_out: str | Path, *, source: str,
                        bids_root: str | Path | None = None) -> None:
    """Write the results folder's ``dataset_description.json`` and ``.bidsignore``."""
    write_json(dataset_description(source, bids_root), description_out)
    write_text(bidsignore(), bidsignore_out)
