"""Label tables shared by the anatomy, simulation and evaluation stages.

Every label image the pipeline writes uses one of these tables, and the same table is
written next to it as a BIDS ``_dseg.tsv``.  Left/right are the subject's own sides
(RAS+ world coordinates: left = negative x).
"""

from __future__ import annotations

# Basal ganglia (desc-striatum_dseg).
STRIATUM = {
    1: "caudate_L",
    2: "caudate_R",
    3: "putamen_L",
    4: "putamen_R",
    5: "pallidum_L",
    6: "pallidum_R",
}

# Reference regions for binding ratios (desc-reference_dseg).
# "brain minus striatum" is not a label: it is the brain mask minus STRIATUM > 0.
REFERENCE = {
    1: "occipital",
    2: "cerebellum",
}

# Vascular territories (desc-territories_dseg).
TERRITORIES = {
    1: "ACA_L",
    2: "ACA_R",
    3: "MCA_L",
    4: "MCA_R",
    5: "PCA_L",
    6: "PCA_R",
}

# S1's anatomical slice levels (rows of the *_levels.tsv table).
LEVELS = ("CER", "BG", "COR")

# S1's perfusion patterns.
PATTERNS = ("normal", "unilateral", "bilateral")

TISSUES = ("GM", "WM", "CSF")


def lookup(table: dict[int, str], name: str) -> int:
    """Return the integer label of ``name`` in ``table`` (KeyError with the choices)."""
    for k, v in table.items():
        if v == name:
            return k
    raise KeyError(f"unknown label {name!r}; choose one of {sorted(table.values())}")


def dseg_tsv(table: dict[int, str]) -> str:
    """The BIDS ``_dseg.tsv`` text of a label table."""
    lines = ["index\tname"] + [f"{k}\t{v}" for k, v in sorted(table.items())]
    return "\n".join(lines) + "\n"
