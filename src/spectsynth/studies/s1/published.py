"""S1's published values.

Every number is copied from the paper named in ``source`` (see :mod:`spectsynth.studies.published`)."""

from __future__ import annotations

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
PUBLISHED = {
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



def published_p(value: str, variant: str, pattern: str) -> dict | None:
    """S1's published p-value of ``variant`` vs real for one quantity and pattern (None if the
    paper gives none, e.g. for a variant it did not train)."""
    return PUBLISHED["values"].get(f"{value}/{variant}/{pattern}")
