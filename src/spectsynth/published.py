"""The published reference values of the four studies, keyed by study.

Each study's evaluation writes these next to its own numbers (a ``published`` column or
table, with the run's scale label), so a reader sees at once how far a run is from the
paper.  Values are copied from the seed texts (``STUDIES.md`` names them); where a paper
gives only a bound ("< 3 px", "P > 0.08") the bound is kept as text in ``published`` and, where
it can be compared, as a number in ``value`` with ``relation`` saying which side counts.

Entries: ``quantity`` (what is measured), ``published`` (as printed), ``value`` (number or
None), ``relation`` (``=``, ``<``, ``>``), ``unit`` and ``source`` (where in the paper).
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import EvaluationError

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

PUBLISHED: dict[str, Mapping] = {"S0": S0, "S1": S1}


def published(study: str) -> Mapping:
    """The published reference values of one study (``S0`` .. ``S3``)."""
    if study not in PUBLISHED:
        raise EvaluationError(f"no published reference values for study {study!r} (have {sorted(PUBLISHED)})",
                              hint="Add them to spectsynth.published")
    return PUBLISHED[study]


def s1_published_p(value: str, variant: str, pattern: str) -> Mapping | None:
    """S1's published p-value of ``variant`` vs real for one quantity and pattern (None if the
    paper gives none, e.g. for a variant it did not train)."""
    return PUBLISHED["S1"]["values"].get(f"{value}/{variant}/{pattern}")
