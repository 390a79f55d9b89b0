"""Discovery of the images of a BIDS dataset.

Accepted layout (``[...]`` optional, ``<mod>`` = T1w, pet or spect)::

    sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>][_acq-..][_run-..]_T1w.nii[.gz]
    sub-<label>/[ses-<label>/]pet/sub-<label>[_ses-<label>][_trc-..][_rec-..][_run-..]_pet.nii[.gz]
    sub-<label>/[ses-<label>/]spect/sub-<label>[_ses-<label>][_trc-..][_rec-..][_run-..]_spect.nii[.gz]

BIDS has no SPECT datatype yet, so SPECT follows the BIDS-PET naming in a ``spect/`` folder
with the ``_spect`` suffix.  File names are parsed with pybids'
:func:`bids.layout.parse_file_entities` (the BIDS entity grammar), while discovery is a
plain directory walk: building a full ``BIDSLayout`` index costs seconds to minutes for
hundreds of subjects and is repeated every time Snakemake builds its DAG, and it would
reject the not-yet-standard ``spect`` datatype.  The walk only visits ``sub-*`` folders.

Each processing unit is one subject, or one subject-session when sessions exist; the
unit's label is ``<subject>`` or ``<subject>_ses-<session>`` and is used as the
``subject`` wildcard of the workflow.  Splits into train/test always group units by
participant (:func:`participant_of`), so two sessions of one person never end up in
different splits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bids.layout import parse_file_entities

from ..errors import InputDataError

log = logging.getLogger(__name__)

MODALITIES = {"T1w": ("anat", "T1w"), "pet": ("pet", "pet"), "spect": ("spect", "spect")}
EXTENSIONS = (".nii.gz", ".nii")


@dataclass
class BidsUnit:
    """One processing unit: a subject, or a subject-session."""

    subject: str
    session: str | None
    files: dict[str, Path] = field(default_factory=dict)
    others: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.subject if self.session is None else f"{self.subject}_ses-{self.session}"


def participant_of(unit_label: str) -> str:
    """The participant label of a unit label (``01_ses-02`` -> ``01``)."""
    return unit_label.split("_ses-")[0]


def _choose(paths: list[Path], mod: str, unit: str) -> Path:
    """Pick one file when several match (prefer no run entity, then the lowest run)."""
    def key(p: Path):
        ents = parse_file_entities(str(p))
        return (ents.get("run") is not None, int(ents.get("run") or 0), str(p))
    chosen = sorted(paths, key=key)[0]
    if len(paths) > 1:
        log.warning("unit %s: %d %s images found, using %s (others: %s)", unit, len(paths), mod,
                    chosen.name, ", ".join(p.name for p in paths if p != chosen))
    return chosen


def discover(root: str | Path, participant_label: list[str] | None = None,
             session: str | None = None, exclude: list[str] | None = None) -> list[BidsUnit]:
    """Find every unit of a BIDS dataset with its T1w (and optional PET/SPECT) image.

    Parameters
    ----------
    participant_label:
        Keep only these subjects (labels with or without ``sub-``); an unknown label is an
        error so that a typo does not silently drop a subject.
    session:
        Keep only this session label; ``None`` keeps every session as its own unit.
    exclude:
        Subject labels to skip.
    """
    root = Path(root)
    if not (root / "dataset_description.json").exists():
        if not root.is_dir():
            raise InputDataError("BIDS folder does not exist", path=root,
                                 hint="Set inputs.bids.root to your dataset's folder")
        log.warning("%s has no dataset_description.json; reading it as BIDS anyway", root)
    wanted = {p.removeprefix("sub-") for p in participant_label or []}
    skip = {p.removeprefix("sub-") for p in exclude or []}
    units: dict[tuple[str, str | None], BidsUnit] = {}
    sub_dirs = sorted(d for d in root.glob("sub-*") if d.is_dir())
    found = {d.name.removeprefix("sub-") for d in sub_dirs}
    missing = wanted - found
    if missing:
        raise InputDataError(
            f"participant_label lists subjects that are not in the dataset: {sorted(missing)}",
            path=root, hint=f"Subjects present: {sorted(found)[:20]}")
    for sdir in sub_dirs:
        sub = sdir.name.removeprefix("sub-")
        if (wanted and sub not in wanted) or sub in skip:
            continue
        ses_dirs = sorted(d for d in sdir.glob("ses-*") if d.is_dir())
        containers = [(d.name.removeprefix("ses-"), d) for d in ses_dirs] or [(None, sdir)]
        for ses, cdir in containers:
            if session is not None and ses != session:
                continue
            unit = BidsUnit(sub, ses)
            for mod, (datatype, suffix) in MODALITIES.items():
                paths = []
                for ext in EXTENSIONS:
                    paths += sorted((cdir / datatype).glob(f"sub-{sub}*_{suffix}{ext}"))
                valid = []
                for pth in paths:
                    ents = parse_file_entities(str(pth))
                    if ents.get("subject") != sub or ents.get("session") != ses:
                        log.warning("unit %s: skipping %s: its name does not match its folder",
                                    unit.label, pth)
                        continue
                    valid.append(pth)
                if valid:
                    unit.files[mod] = _choose(valid, mod, unit.label)
                    unit.others[mod] = [p for p in valid if p != unit.files[mod]]
            if unit.files:
                units[(sub, ses)] = unit
            else:
                log.warning("subject %s%s: no T1w, PET or SPECT image found; skipped", sub,
                            f" session {ses}" if ses else "")
    if not units:
        raise InputDataError("no subject with images found", path=root,
                             hint="Expected sub-*/[ses-*/]anat/*_T1w.nii.gz; check inputs.bids")
    return [units[k] for k in sorted(units, key=lambda k: (k[0], k[1] or ""))]
