"""A BIDS ``participants.tsv``: what the pipeline reads from it (the age of a subject, and which
subjects carry a flag such as a surgical resection)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ProcessingError


def subject_age(participants: str | None, subject: str) -> float | None:
    """Age of ``subject`` from a BIDS participants.tsv (None when the table or the value is missing)."""
    import pandas as pd

    if not participants or not Path(participants).exists():
        return None
    table = pd.read_csv(participants, sep="\t", dtype=str, na_values=["n/a", ""])
    if "participant_id" not in table.columns or "age" not in table.columns:
        return None
    ids = table["participant_id"].str.removeprefix("sub-")
    row = table[ids == subject.split("_ses-")[0]]
    if row.empty or row["age"].isna().all():
        return None
    try:
        return float(row["age"].iloc[0])
    except ValueError as exc:
        raise ProcessingError(f"age {row['age'].iloc[0]!r} in {participants} is not a number", subject=subject,
                              hint="Write ages in years (a number) or n/a") from exc


TRUE_FLAGS = ("1", "true", "yes", "y")


def subjects_flagged(participants: str | None, column: str) -> set[str]:
    """Participants (labels without ``sub-``) whose ``column`` in a BIDS participants.tsv is yes /
    true / 1 (case-insensitive); an empty set when the table or the column is missing."""
    import pandas as pd

    if not participants or not Path(participants).exists():
        return set()
    table = pd.read_csv(participants, sep="\t", dtype=str, na_values=["n/a", ""])
    if "participant_id" not in table.columns or column not in table.columns:
        return set()
    flagged = table[column].fillna("").str.strip().str.lower().isin(TRUE_FLAGS)
    return set(table.loc[flagged, "participant_id"].str.removeprefix("sub-"))
