"""Published reference values of the reproduced studies, keyed by study (``S0`` .. ``S3``).

One entry per study in :data:`PUBLISHED`: a mapping with

* ``source`` -- where the numbers are printed (paper, table or figure);
* ``scale`` -- the data they were measured on (patients, test slices), printed beside them
  so a reader sees at once how far a run is from the paper's scale;
* named groups of values (e.g. ``table4`` for S2, ``ssim`` and ``regressions`` for S3), each
  a tuple of plain records (dicts) or a dict of numbers.

The evaluation reads the values through :func:`published` / :func:`published_records` and
writes them next to the run's own numbers (``published.tsv`` of each study).  Add a study by
adding its key; add a quantity by adding a named group under the study's key.  Nothing in
this module is computed: every number is copied from the paper named in ``source``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import EvaluationError


def _t4(space: str, loss: str, values: Mapping[str, tuple[tuple[float, float], ...]]) -> list[dict]:
    """S2 Table 4 rows: ``values[input] = ((rmse, cv), (ssim, cv), (psnr, cv))``."""
    out = []
    for inp, cells in values.items():
        for metric, (mean, cv) in zip(("rmse", "ssim", "psnr"), cells, strict=True):
            out.append({"space": space, "loss": loss, "input": inp, "metric": metric, "mean": mean,
                        "cv_percent": cv})
    return out


PUBLISHED: dict[str, dict[str, Any]] = {
    "S2": {
        "source": "Shokraei Fard et al., Front Neurol 2024, Table 4 (mean and coefficient of variation)",
        "scale": "S2 paper scale: 48 patients, 1,100 test slices",
        # loss tokens as in the experiment specs: l1 = 1-norm + cross-entropy, l1+ssim = + SSIM
        "table4": tuple(
            _t4("template", "l1", {"mri": ((0.13, 38.46), (0.82, 6.10), (24.53, 11.01)),
                                   "pet": ((0.12, 33.33), (0.83, 6.02), (25.12, 9.87)),
                                   "mri+pet": ((0.13, 30.77), (0.83, 6.02), (24.39, 8.69))})
            + _t4("template", "l1+ssim", {"mri": ((0.14, 35.71), (0.83, 6.02), (23.72, 9.65)),
                                          "pet": ((0.12, 33.33), (0.82, 6.10), (24.76, 9.13)),
                                          "mri+pet": ((0.13, 30.77), (0.83, 6.02), (24.27, 8.49))})
            + _t4("native", "l1", {"mri": ((0.10, 30.00), (0.87, 5.75), (26.28, 9.74)),
                                   "pet": ((0.10, 20.00), (0.88, 3.41), (25.92, 5.40)),
                                   "mri+pet": ((0.12, 16.67), (0.86, 4.65), (24.77, 5.85))})
            + _t4("native", "l1+ssim", {"mri": ((0.11, 27.27), (0.86, 5.81), (25.89, 9.15)),
                                        "pet": ((0.09, 22.22), (0.88, 3.41), (26.99, 7.08)),
                                        "mri+pet": ((0.09, 22.22), (0.88, 3.41), (27.15, 6.85))})),
        # Figure 5: native better than template (p < 0.01) in 14 of 18 comparisons
        "native_vs_template": {"significant": 14, "comparisons": 18},
    },
    "S3": {
        "source": "S3 (Ann Nucl Med 2025): SSIM against PET and the ROI regressions",
        "scale": "S3 paper scale: 73 patients (43 train, 15 test)",
        # SSIM against the PET: the SPECT itself (the input baseline) and the pix2pix prediction
        "ssim": {"input_vs_target": 0.79, "prediction_vs_target": 0.86},
        # least-squares lines y = intercept + slope x and Pearson r on the ROI values
        "regressions": (
            {"label": "input vs target", "intercept": 0.13, "slope": 0.63, "r": 0.77},
            {"label": "prediction vs target", "intercept": 0.10, "slope": 0.65, "r": 0.78},
            {"label": "prediction vs input", "intercept": 0.01, "slope": 0.89, "r": 0.86},
        ),
    },
}


def published(study: str) -> dict[str, Any]:
    """The published entry of ``study``; an :class:`EvaluationError` names the known studies."""
    if study not in PUBLISHED:
        raise EvaluationError(f"no published values for study {study!r} (known: {', '.join(sorted(PUBLISHED))})",
                              hint="Add them to spectsynth.published.PUBLISHED")
    return PUBLISHED[study]


def published_records(study: str, group: str) -> list[dict]:
    """One named group of a study's published values as a list of records (dicts)."""
    entry = published(study)
    if group not in entry:
        known = [k for k in entry if k not in ("source", "scale")]
        raise EvaluationError(f"study {study} has no published group {group!r} (known: {', '.join(known)})",
                              hint="Add it to spectsynth.published.PUBLISHED")
    value = entry[group]
    if isinstance(value, Mapping):
        return [{"name": k, "value": v} for k, v in value.items()]
    return [dict(r) for r in value]
