"""Who is in the demo cohort, without building it: subject labels and the post-surgical subjects.

Kept free of the image libraries the demo builder needs (SimpleITK, nibabel), so that planning,
the dataset designs and every rule environment can ask which subjects had a resection.
"""

from __future__ import annotations

import numpy as np

# Defaults of inputs.demo (spectsynth.inputs.demo.DemoParams holds the same; tested).
DEFAULT_N_SUBJECTS = 12
DEFAULT_SEED = 42


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
