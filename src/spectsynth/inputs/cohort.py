"""Who is in the demo cohort, without building it: subject labels and the post-surgical subjects.

Kept free of the image libraries the demo builder needs (SimpleITK, nibabel), so that planning,
the dataset designs and every rule environment can ask which subjects had a resection.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..config import fragment_defaults

# The demo cohort's size and seed as declared (inputs.demo in options.yaml beside this module).
_DEMO = fragment_defaults(Path(__file__).with_name("options.yaml"), "inputs")["demo"]
DEFAULT_N_SUBJECTS: int = _DEMO["n_subjects"]
DEFAULT_SEED: int = _DEMO["seed"]


def participant(unit: str) -> str:
    """The participant of a processing unit (``01_ses-02`` -> ``01``; ``01`` -> ``01``)."""
    return str(unit).split("_ses-")[0]


def subject_labels(n: int) -> list[str]:
    """Labels ``01``, ``02``, ... (zero-padded to at least two digits)."""
    width = max(2, len(str(n)))
    return [f"{i + 1:0{width}d}" for i in range(n)]


def resected_labels(n_subjects: int, seed: int, n_resected: int) -> set[str]:
    """The ``n_resected`` post-surgical subjects of a demo cohort, drawn from the demo's seed."""
    labels = subject_labels(int(n_subjects))
    n = int(n_resected)
    if n <= 0:
        return set()
    if n > len(labels):
        raise ValueError(f"inputs.demo.n_resected = {n} but the cohort has {len(labels)} subjects")
    rng = np.random.default_rng([int(seed), 1_000_003])
    return {str(s) for s in rng.choice(labels, size=n, replace=False)}


def cohort_resected(config: Mapping | None, subjects=None) -> set[str]:
    """Participants of the cohort with a surgical resection (post-surgical brains).

    The demo cohort resects ``inputs.demo.n_resected`` subjects, drawn from the demo's own seed
    (:func:`spectsynth.inputs.demo.resected_subjects`); a BIDS cohort marks them in
    ``participants.tsv`` (column ``resection``: yes/true/1).  A study's ``resected_split`` says
    where they go: S2 puts them in its unseen test set, every other study leaves them out.
    """
    config = dict(config or {})
    inputs = dict(config.get("inputs") or {})
    source = inputs.get("source", "demo")
    if source == "demo":
        demo = dict(inputs.get("demo") or {})
        chosen = resected_labels(demo.get("n_subjects", DEFAULT_N_SUBJECTS), demo.get("seed", DEFAULT_SEED),
                                 demo.get("n_resected", 0))
    elif source == "bids":
        from pathlib import Path

        from .participants import subjects_flagged

        root = (inputs.get("bids") or {}).get("root")
        chosen = subjects_flagged(str(Path(root) / "participants.tsv") if root else None, "resection")
    else:
        chosen = set()
    if subjects is None:
        return chosen
    return {str(s) for s in subjects if participant(str(s)) in chosen}
