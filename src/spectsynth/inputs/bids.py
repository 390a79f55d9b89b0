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

A file that is there but cannot be an image (a broken symbolic link, a folder, an empty or
unreadable file: :func:`spectsynth.io.file_problem`) is not handed to the workflow as an
input -- one such entry would stop Snakemake from planning any subject -- but recorded in
:attr:`BidsUnit.problems`, like a missing image: that unit's validation job then fails with
the reason (or, with ``inputs.bids.if_unusable: skip``, the unit is left out and listed in
``inputs/inputs.tsv``; :func:`split_unusable`), and every other unit runs.  A subject folder
without any usable image is kept as a unit the same way, never dropped silently.

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
from ..io import file_problem

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
    # modality -> (file, problem, what to do) for an image that is there but unusable
    problems: dict[str, tuple[Path, str, str]] = field(default_factory=dict)
    # what the unit's folder held instead, when it has no image of any modality
    found_instead: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.subject if self.session is None else f"{self.subject}_ses-{self.session}"

    def expected(self, modality: str, root: Path) -> str:
        """Where the image of ``modality`` was looked for, and what is there instead."""
        datatype, suffix = MODALITIES[modality]
        ses = f"ses-{self.session}/" if self.session else ""
        ses_ent = f"_ses-{self.session}" if self.session else ""
        where = f"{root}/sub-{self.subject}/{ses}{datatype}/sub-{self.subject}{ses_ent}_{suffix}.nii.gz"
        if self.found_instead:
            shown = ", ".join(self.found_instead[:5])
            more = f" and {len(self.found_instead) - 5} more" if len(self.found_instead) > 5 else ""
            where += f"; the folder holds only {shown}{more}"
        return where

    def why_unusable(self, required: list[str], root: Path) -> str | None:
        """Why this unit cannot run with these required modalities, or None if it can."""
        reasons = []
        for mod in required:
            if mod in self.problems:
                path, problem, _ = self.problems[mod]
                reasons.append(f"{mod} {path}: {problem}")
            elif mod not in self.files:
                reasons.append(f"no {mod} image (expected {self.expected(mod, root)})")
        return "; ".join(reasons) or None


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
                usable = [p for p in valid if file_problem(p) is None]
                for bad in (p for p in valid if p not in usable and usable):
                    log.warning("unit %s: ignoring %s: %s", unit.label, bad, file_problem(bad)[0])
                if usable:
                    unit.files[mod] = _choose(usable, mod, unit.label)
                    unit.others[mod] = [p for p in usable if p != unit.files[mod]]
                elif valid:
                    bad = valid[0]
                    unit.problems[mod] = (bad, *file_problem(bad))
                    log.warning("unit %s: %s %s is unusable: %s", unit.label, mod, bad,
                                unit.problems[mod][1])
            if not unit.files and not unit.problems:
                unit.found_instead = sorted(str(p.relative_to(cdir)) for p in cdir.rglob("*")
                                            if not p.is_dir())
                log.warning("unit %s: no T1w, PET or SPECT image found (folder holds: %s)",
                            unit.label, ", ".join(unit.found_instead[:5]) or "nothing")
            units[(sub, ses)] = unit
    for sub in sorted(wanted - {k[0] for k in units}):
        # a subject asked for by name that has nothing to run (e.g. not the chosen session)
        unit = BidsUnit(sub, session)
        unit.found_instead = sorted(str(p.relative_to(root / f"sub-{sub}"))
                                    for p in (root / f"sub-{sub}").rglob("*") if not p.is_dir())
        units[(sub, session)] = unit
    if not any(u.files or u.problems for u in units.values()):
        raise InputDataError("no subject with images found", path=root,
                             hint="Expected sub-*/[ses-*/]anat/*_T1w.nii.gz; check inputs.bids")
    return [units[k] for k in sorted(units, key=lambda k: (k[0], k[1] or ""))]


def split_unusable(units: list[BidsUnit], required: list[str], root: str | Path
                   ) -> tuple[list[BidsUnit], list[dict]]:
    """``(units that can run, one row per unit or image left out)`` for ``if_unusable: skip``.

    A unit is left out when a required modality is missing or unusable; an unusable optional
    image is dropped from its unit. Each row (subject, modality, source, problem) goes into
    the run's input table, so a skip is never silent.
    """
    root = Path(root)
    keep, rows = [], []
    for u in units:
        why = u.why_unusable(required, root)
        if why:
            rows.append({"subject": u.label, "modality": ",".join(required), "source": None,
                         "problem": why})
            continue
        for mod, (path, problem, _) in sorted(u.problems.items()):
            rows.append({"subject": u.label, "modality": mod, "source": str(path),
                         "problem": problem})
        keep.append(BidsUnit(u.subject, u.session, dict(u.files), dict(u.others)))
    return keep, rows
