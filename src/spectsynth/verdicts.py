"""Verdicts on published findings, computed by one rule (never typed by hand).

Each study's evaluation ends in one row per published finding (``verdicts.tsv``): our value, the
baseline it must beat, the published value, what ``n`` counts, and a verdict from
:data:`VERDICTS`:

* ``reproduced``: the finding shows in our data as the paper states it;
* ``not reproduced``: the test could show it but does not;
* ``reversed``: a significant effect in the opposite direction to the published one;
* ``not testable``: the data at hand cannot decide -- too little power for the published effect,
  a real-vs-real reference that is itself "different", a baseline that already reaches the
  published level (the criterion cannot discriminate), or a statistic that was not computed.

Two kinds of finding, two rules:

:func:`comparison_verdict` -- a published comparison ("A differs from B", "A does not differ from B"):

* claim ``greater``/``less`` (A above/below B): p < alpha in the claimed direction ->
  reproduced; p < alpha in the other direction -> reversed; otherwise not reproduced, unless the
  power for the published effect is below ``min_power`` (not testable);
* claim ``equal`` (no difference): p < alpha -> not reproduced; otherwise reproduced, unless the
  power to detect the published (or reference) effect is below ``min_power`` (not testable: a
  null without power says nothing) or the real-vs-real reference itself differs.

:func:`level_verdict` -- a published level ("Dice 78 %", "ASP < 3 px", "52 % of SBR errors under
0.75"): ours reaches the published level (within ``tolerance``) and is better than its baseline
-> reproduced; ours reaches it but so does the baseline -> not testable (the criterion does not
separate a model from a trivial predictor on these data); ours misses it -> not reproduced.

:func:`interval_verdict` -- published estimates ("y = 0.13 + 0.63x, r = 0.77"): every published
value lies inside our confidence interval of the same quantity -> reproduced, unless the
baseline's intervals contain every published value too (not testable: a trivial predictor agrees
with the paper as well); any published value outside our interval -> not reproduced (the reason
says whether our interval lies above or below it); an interval that could not be computed -> not
testable.

:data:`RULE_TEXT` is the same rule in words, for the report's methods page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

VERDICTS = ("reproduced", "not reproduced", "reversed", "not testable")
COLUMNS = ["study", "finding", "measure", "unit", "ours", "baseline", "baseline_name", "published",
           "n", "n_counts", "statistic", "p", "power", "verdict", "reason"]
MIN_POWER = 0.8

RULE_TEXT = (
    "Every published finding gets one verdict, computed in code (spectsynth.verdicts). "
    "A published comparison is reproduced when our test (on the stated unit, alpha as configured) "
    "is significant in the published direction, reversed when it is significant in the other "
    "direction, and not reproduced otherwise; a published null (no difference) is reproduced when "
    "our test is not significant and not reproduced when it is. Either is not testable when the "
    f"power for the published effect is below {MIN_POWER:.0%}, when the real-vs-real reference is "
    "itself different, or when the statistic could not be computed. A published level (Dice, "
    "ASP, a fraction of errors under a threshold) is reproduced when ours reaches it and beats its "
    "baseline, not testable when the baseline reaches it too (the criterion cannot separate a "
    "model from a trivial predictor), and not reproduced when ours misses it. A published estimate "
    "(a regression slope, a correlation) is reproduced when it lies inside our confidence interval "
    "of the same quantity, not reproduced when our interval lies entirely above or below it, and "
    "not testable when the baseline's interval contains it too or the interval could not be computed.")


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def comparison_verdict(*, claim: str, estimate: float | None, p: float | None, alpha: float,
                 power: float | None = None, min_power: float = MIN_POWER,
                 reference_differs: bool = False, not_computed: str | None = None) -> tuple[str, str]:
    """Verdict and reason for a published comparison.

    ``claim``: ``greater`` (A > B published), ``less`` (A < B) or ``equal`` (no difference).
    ``estimate`` is A - B (any statistic whose sign gives the direction; ignored for ``equal``),
    ``p`` the test's p-value, ``power`` the power for the published effect (None: not known).
    """
    if claim not in ("greater", "less", "equal"):
        raise ValueError(f"claim {claim!r}: use greater, less or equal")
    if not_computed:
        return "not testable", f"not computed: {not_computed}"
    if not _finite(p):
        return "not testable", "no p-value (the test could not be computed on these data)"
    p = float(p)
    low_power = _finite(power) and float(power) < min_power
    if claim == "equal":
        if reference_differs:
            return "not testable", ("the real-vs-real reference is itself different, so a difference "
                                    "cannot be told from sampling")
        if p < alpha:
            return "not reproduced", f"different (p = {p:.3g} < {alpha:g}) where the paper found no difference"
        if low_power:
            return "not testable", (f"not different (p = {p:.3g}) but the power for the published effect is "
                                    f"{float(power):.2f} < {min_power:g}: a null without power says nothing")
        return "reproduced", f"not different (p = {p:.3g} >= {alpha:g})" + (
            f", power {float(power):.2f}" if _finite(power) else "")
    if not _finite(estimate):
        return "not testable", "no estimate of the effect's direction"
    sign = 1.0 if claim == "greater" else -1.0
    if p < alpha:
        if float(estimate) * sign > 0:
            return "reproduced", f"significant in the published direction (p = {p:.3g})"
        return "reversed", f"significant in the opposite direction (p = {p:.3g})"
    if low_power:
        return "not testable", (f"not significant (p = {p:.3g}); power for the published effect "
                                f"{float(power):.2f} < {min_power:g}")
    return "not reproduced", f"not significant (p = {p:.3g} >= {alpha:g})"


def level_verdict(*, ours: float | None, published: float, baseline: float | None,
                  higher_is_better: bool = True, tolerance: float = 0.0,
                  baseline_name: str = "baseline", not_computed: str | None = None) -> tuple[str, str]:
    """Verdict and reason for a published level (``ours`` against ``published`` and ``baseline``)."""
    if not_computed:
        return "not testable", f"not computed: {not_computed}"
    if not _finite(ours):
        return "not testable", "our value could not be computed"
    sign = 1.0 if higher_is_better else -1.0

    def reaches(x: float) -> bool:
        return sign * (float(x) - published) >= -abs(tolerance)

    if not reaches(ours):
        worse = "below" if higher_is_better else "above"
        return "not reproduced", f"ours {float(ours):.3g} is {worse} the published {published:g}"
    if _finite(baseline) and reaches(baseline):
        if sign * (float(ours) - float(baseline)) > 0:
            why = "beats it"
        else:
            why = "does not beat it"
        return "not testable", (f"the {baseline_name} ({float(baseline):.3g}) reaches the published "
                                f"{published:g} too and ours {why}: the criterion does not separate a "
                                "model from a trivial predictor on these data")
    return "reproduced", f"ours {float(ours):.3g} reaches the published {published:g}" + (
        f" and beats the {baseline_name} ({float(baseline):.3g})" if _finite(baseline) else "")


def interval_verdict(*, published: Mapping[str, float], intervals: Mapping[str, Any],
                     baseline_intervals: Mapping[str, Any] | None = None, baseline_name: str = "baseline",
                     not_computed: str | None = None) -> tuple[str, str]:
    """Verdict and reason for published estimates against our confidence intervals.

    ``published``: quantity -> published value (e.g. ``{"r": 0.77, "slope": 0.63}``);
    ``intervals``: quantity -> our ``(low, high)`` interval of it; ``baseline_intervals`` the
    baseline's intervals of the same quantities (None: no baseline).  Every quantity must be
    inside our interval for ``reproduced``.
    """
    if not_computed:
        return "not testable", f"not computed: {not_computed}"
    if not published:
        raise ValueError("interval_verdict needs at least one published quantity")

    def bounds(table: Mapping[str, Any] | None, key: str) -> tuple[float, float] | None:
        iv = (table or {}).get(key)
        if iv is None or len(iv) != 2 or not (_finite(iv[0]) and _finite(iv[1])):
            return None
        lo, hi = float(iv[0]), float(iv[1])
        return (lo, hi) if lo <= hi else (hi, lo)

    missing = [k for k in published if bounds(intervals, k) is None]
    if missing:
        return "not testable", f"no confidence interval of {', '.join(missing)} (could not be computed on these data)"
    outside = []
    for key, value in published.items():
        lo, hi = bounds(intervals, key)
        if not lo <= float(value) <= hi:
            side = "above" if lo > float(value) else "below"
            outside.append(f"our {key} interval [{lo:.3g}, {hi:.3g}] lies {side} the published {float(value):g}")
    if outside:
        return "not reproduced", "; ".join(outside)
    inside = ", ".join(f"{k} {float(v):g} in [{bounds(intervals, k)[0]:.3g}, {bounds(intervals, k)[1]:.3g}]"
                       for k, v in published.items())
    if baseline_intervals is not None:
        base = {k: bounds(baseline_intervals, k) for k in published}
        if all(b is not None and b[0] <= float(published[k]) <= b[1] for k, b in base.items()):
            return "not testable", (f"published values inside our intervals ({inside}), but the {baseline_name}'s "
                                    "intervals contain them too: the criterion does not separate a model from "
                                    "a trivial predictor on these data")
    return "reproduced", f"published values inside our intervals ({inside})"


def row(*, study: str, finding: str, measure: str, unit: str, ours: Any, published: Any,
        n: int, n_counts: str, verdict: tuple[str, str], baseline: Any = None,
        baseline_name: str = "", statistic: str = "", p: float | None = None,
        power: float | None = None) -> dict[str, Any]:
    """One verdict row (:data:`COLUMNS`); ``verdict`` is what a rule above returned."""
    v, reason = verdict
    if v not in VERDICTS:
        raise ValueError(f"verdict {v!r} is not one of {VERDICTS}")
    return {"study": study, "finding": finding, "measure": measure, "unit": unit,
            "ours": ours, "baseline": baseline if baseline is not None else "",
            "baseline_name": baseline_name, "published": published, "n": int(n), "n_counts": n_counts,
            "statistic": statistic, "p": p if _finite(p) else "", "power": power if _finite(power) else "",
            "verdict": v, "reason": reason}


def frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """The verdict table, columns in :data:`COLUMNS` order (empty cells as empty strings)."""
    table = pd.DataFrame(list(rows), columns=COLUMNS)
    return table.astype(object).where(table.notna(), "")
