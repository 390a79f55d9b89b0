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

S0 and S1 (entries ``S0``, ``S1``) hold their values under ``values``, one record per quantity:
``quantity`` (what is measured), ``published`` (as printed), ``value`` (number or None),
``relation`` (``=``, ``<``, ``>``; a paper that gives only a bound, "< 3 px", "P > 0.08", keeps the
bound as text and, where it can be compared, as a number), ``unit`` and ``source``.
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


# S0 (Dudasova & Trnka, slides): Dice table of the segmented basal ganglia, ASP and the binding
# ratio read by the regression CNN (discussion slide "Performance evaluation").
S0 = {
    "source": "Dudasova & Trnka, pseudo-normal SPECT with a VAE (slides, seeds/000_*)",
    "values": {
        "dice_L": {"quantity": "Dice of the segmented BG, left (mean ± sd, min-max)",
                   "published": "78 ± 8 % (62-90 %)", "value": 0.78, "sd": 0.08, "relation": "=",
                   "unit": "fraction", "source": "Dice table"},
        "dice_R": {"quantity": "Dice of the segmented BG, right (mean ± sd, min-max)",
                   "published": "82 ± 5 % (69-93 %)", "value": 0.82, "sd": 0.05, "relation": "=",
                   "unit": "fraction", "source": "Dice table"},
        "asp": {"quantity": "Anatomy Shape Precision, |prediction - original| of every measure",
                "published": "< 3 px", "value": 3.0, "relation": "<", "unit": "px",
                "source": "discussion, performance evaluation"},
        "sbr_fraction_075": {"quantity": "fraction of cases with binding-ratio error < 0.75 "
                                         "(regression CNN)",
                             "published": "52 %", "value": 0.52, "relation": "=", "unit": "fraction",
                             "source": "discussion, performance evaluation"},
    },
}

# S1 (Werner et al., Sci Rep 2022, results section and abstract): generated vs real images per
# pattern (the paper pools the three levels), one-way ANOVA in GraphPad Prism, P < 0.05.
_S1_P = {
    # (value, variant, pattern): (printed, number, relation)
    ("mean_counts", "A", "normal"): ("P = 0.8", 0.8, "="),
    ("mean_counts", "A", "unilateral"): ("P = 0.99", 0.99, "="),
    ("mean_counts", "A", "bilateral"): ("P = 0.68", 0.68, "="),
    ("mean_counts", "B", "normal"): ("P < 0.0001", 0.0001, "<"),
    ("mean_counts", "B", "unilateral"): ("P = 0.77", 0.77, "="),
    ("mean_counts", "B", "bilateral"): ("P < 0.0001", 0.0001, "<"),
    ("lr_ratio", "A", "normal"): ("P ≥ 0.08", 0.08, ">"),
    ("lr_ratio", "A", "unilateral"): ("P = 0.03", 0.03, "="),
    ("lr_ratio", "A", "bilateral"): ("P ≥ 0.08", 0.08, ">"),
    ("lr_ratio", "B", "normal"): ("P < 0.0001", 0.0001, "<"),
    ("lr_ratio", "B", "unilateral"): ("P < 0.0001", 0.0001, "<"),
    ("lr_ratio", "B", "bilateral"): ("P = 0.01", 0.01, "="),
}
S1 = {
    "source": "Werner et al., Sci Rep 2022 (seeds/001_*, abstract seeds/003_*)",
    "alpha": 0.05,
    "finding": "A is not different from real images (except unilateral L/R ratio); B is different for "
               "virtually all parameters",
    "values": {
        f"{value}/{variant}/{pattern}": {
            "quantity": f"{'mean counts' if value == 'mean_counts' else 'L/R ratio'}, {variant} vs real, "
                        f"{pattern}",
            "published": printed, "value": number, "relation": rel, "unit": "p",
            "significant": (number < 0.05) if rel != ">" else False,
            "source": "results, one-way ANOVA vs real images (levels pooled)",
        }
        for (value, variant, pattern), (printed, number, rel) in _S1_P.items()
    },
}

PUBLISHED: dict[str, dict[str, Any]] = {
    "S0": S0,
    "S1": S1,
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
        # mean 5-point visual similarity to the PET of the pix2pix images, open and blind reading
        "reading": {"open": 4.2, "blind": 3.5},
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


def s1_published_p(value: str, variant: str, pattern: str) -> Mapping | None:
    """S1's published p-value of ``variant`` vs real for one quantity and pattern (None if the
    paper gives none, e.g. for a variant it did not train)."""
    return PUBLISHED["S1"]["values"].get(f"{value}/{variant}/{pattern}")
