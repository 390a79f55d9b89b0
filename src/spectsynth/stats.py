"""Statistical tests and summary tables of the four studies (scipy and statsmodels).

Every test returns a :class:`TestRecord`: the test's name, a label in plain
words, the sample size, the statistic, its degrees of freedom, the p-value, the threshold
and the multiple-comparison correction, plus a one-sentence ``summary`` a reader can paste
into a report.  :func:`records_frame` turns records into a tidy table.

* S1: :func:`one_way_anova` (+ :func:`anova_table`, statsmodels), post-hoc
  :func:`tukey_hsd` or :func:`pairwise_t` with Holm correction.
* S2: :func:`paired_t_test` (two-tailed, published threshold p < 0.01) and
  :func:`paired_t_tests` for a family of comparisons with Holm / Benjamini-Hochberg columns;
  :func:`summary_table` and :func:`table4` (mean and coefficient of variation).
* S3: :func:`linear_regression` (intercept, slope, confidence intervals, Pearson r) and
  :func:`pearson`.
* S0: :func:`bland_altman` (bias, limits of agreement) and :func:`summary_table`
  (mean ± sd, min, max).

Too few samples, empty groups, constant data or non-finite values raise
:class:`~spectsynth.errors.EvaluationError` with the problem and a hint; a NaN never reaches a
table.  Nothing here knows the pipeline: the caller names the experiment in errors
(:func:`spectsynth.errors.context`) and adds it as a column to the tables it writes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from .config import CORE_FRAGMENT, declared
from .errors import EvaluationError

CORRECTIONS: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "evaluate.corrections")["items"]["enum"])
_CORRECTION_NAMES = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg", "bonferroni": "Bonferroni",
                     "none": "none"}


@dataclass(frozen=True)
class TestRecord:
    """One statistical test, tidy: one record = one row of a results table."""

    __test__ = False  # not a pytest test class

    test: str
    label: str
    n: int
    statistic_name: str
    statistic: float
    df: str
    p: float
    alpha: float
    correction: str = "none"
    p_corrected: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def p_used(self) -> float:
        """The p-value the decision uses (corrected when a correction was applied)."""
        return self.p if self.p_corrected is None else self.p_corrected

    @property
    def significant(self) -> bool:
        return self.p_used < self.alpha

    @property
    def summary(self) -> str:
        """One plain-language sentence."""
        corr = "" if self.correction == "none" else f", {_CORRECTION_NAMES.get(self.correction, self.correction)}-corrected p={_fmt(self.p_corrected)}"
        verdict = "significant" if self.significant else "not significant"
        df = f"({self.df})" if self.df else ""
        return (f"{self.label}: {self.test}, {self.statistic_name}{df}={_fmt(self.statistic)}, "
                f"p={_fmt(self.p)}{corr}, n={self.n}; {verdict} at alpha={self.alpha:g}")

    def as_dict(self) -> dict:
        """Flat dict: the fields, ``details`` spread into columns, ``significant`` and ``summary``."""
        d = asdict(self)
        details = d.pop("details")
        d["p_corrected"] = self.p_used
        d["significant"] = self.significant
        d["summary"] = self.summary
        d.update(details)
        return d


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) < 1e-4:
        return f"{x:.2e}"
    return f"{x:.4g}"


def records_frame(records: Sequence[TestRecord]) -> pd.DataFrame:
    """A tidy table (one row per test) from test records."""
    return pd.DataFrame([r.as_dict() for r in records])


def significance_stars(p: float) -> str:
    """S1's marks: ``*`` p<0.05, ``**`` p<0.01, ``***`` p<0.001, ``****`` p<0.0001, else ``ns``."""
    for thr, mark in ((1e-4, "****"), (1e-3, "***"), (1e-2, "**"), (5e-2, "*")):
        if p < thr:
            return mark
    return "ns"


# ----------------------------------------------------------------------------- checks
def _sample(values, *, what: str, min_n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < min_n:
        raise EvaluationError(
            f"{what} has {arr.size} value{'s' if arr.size != 1 else ''}; this statistic needs "
            f"at least {min_n}",
            hint="Evaluate more subjects or slices, or leave this comparison out of the config")
    n_bad = int(np.count_nonzero(~np.isfinite(arr)))
    if n_bad:
        raise EvaluationError(f"{what} holds {n_bad} NaN or Inf values",
                              hint="Find the metric that produced them in the per-slice table")
    return arr


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise EvaluationError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)


def _groups(groups: Mapping[str, Sequence[float]], min_n: int = 1) -> dict[str, np.ndarray]:
    if len(groups) < 2:
        raise EvaluationError(f"{len(groups)} group given; a comparison needs at least 2")
    return {str(k): _sample(v, what=f"group {k!r}", min_n=min_n)
            for k, v in groups.items()}


# ------------------------------------------------------------------------- t-tests
def paired_t_test(a, b, *, label: str, alpha: float = 0.01,
                  names: tuple[str, str] = ("a", "b")) -> TestRecord:
    """Two-tailed paired t-test (:func:`scipy.stats.ttest_rel`), as S2 (threshold 0.01).

    ``a`` and ``b`` are the same units (e.g. slices) measured two ways.  Details hold the
    two means and the mean difference ``a - b``.
    """
    alpha = _check_alpha(alpha)
    x = _sample(a, what=f"{label}: {names[0]}", min_n=2)
    y = _sample(b, what=f"{label}: {names[1]}", min_n=2)
    if x.size != y.size:
        raise EvaluationError(f"{label}: paired samples differ in length ({x.size} vs {y.size})",
                              hint="Pair the same slices/subjects in both runs")
    d = x - y
    if np.ptp(d) == 0:
        raise EvaluationError(
            f"{label}: the paired differences are constant ({d[0]:.4g}); the t statistic is "
            "undefined",
            hint="The two runs give identical (or identically shifted) values; check that "
                 "they are not the same predictions")
    res = sps.ttest_rel(x, y, alternative="two-sided")
    return TestRecord(test="paired t-test (two-tailed)", label=label,
                      n=int(x.size), statistic_name="t", statistic=float(res.statistic),
                      df=str(x.size - 1), p=float(res.pvalue), alpha=alpha,
                      details={f"mean_{names[0]}": float(x.mean()), f"mean_{names[1]}": float(y.mean()),
                               "mean_difference": float(d.mean())})


def correct_pvalues(pvalues: Sequence[float], *, method: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Multiple-comparison correction (:func:`statsmodels.stats.multitest.multipletests`).

    Returns ``(reject, p_corrected)``.  ``method``: ``holm``, ``fdr_bh`` or ``bonferroni``.
    """
    if method not in CORRECTIONS:
        raise EvaluationError(f"unknown correction {method!r}; choose one of {CORRECTIONS}")
    p = _sample(pvalues, what="p-values", min_n=1)
    if np.any((p < 0) | (p > 1)):
        raise EvaluationError("p-values must lie in [0, 1]")
    reject, p_corr, _, _ = multipletests(p, alpha=alpha, method=method)
    return np.asarray(reject, dtype=bool), np.asarray(p_corr, dtype=float)


def paired_t_tests(comparisons: Sequence[Mapping], *, alpha: float = 0.01,
                   corrections: Sequence[str] = ("holm", "fdr_bh")) -> pd.DataFrame:
    """A family of paired t-tests with uncorrected and corrected decisions side by side.

    ``comparisons``: mappings with ``label``, ``a``, ``b`` (and optional ``names``).
    Returns one row per comparison: the record's columns (``p``, ``significant`` at the
    uncorrected threshold, as published) plus ``p_<method>`` and ``significant_<method>``
    for each correction over the family.
    """
    if not comparisons:
        raise EvaluationError("no comparisons given")
    recs = [paired_t_test(c["a"], c["b"], label=c["label"], alpha=alpha,
                          names=tuple(c.get("names", ("a", "b")))) for c in comparisons]
    table = records_frame(recs)
    for method in corrections:
        reject, p_corr = correct_pvalues(table["p"].to_numpy(), method=method, alpha=alpha)
        table[f"p_{method}"] = p_corr
        table[f"significant_{method}"] = reject
    return table


# ------------------------------------------------------------------- ANOVA, post-hoc
def one_way_anova(groups: Mapping[str, Sequence[float]], *, label: str,
                  alpha: float = 0.05) -> TestRecord:
    """One-way ANOVA (:func:`scipy.stats.f_oneway`) across named groups, as S1.

    Every group needs at least one value, the total must exceed the number of groups, and
    the data must vary within groups.
    """
    alpha = _check_alpha(alpha)
    g = _groups(groups)
    k = len(g)
    n = sum(v.size for v in g.values())
    if n <= k:
        raise EvaluationError(f"{label}: {n} values in {k} groups; ANOVA needs more values than groups")
    within = sum(float(((v - v.mean()) ** 2).sum()) for v in g.values())
    if within == 0:
        raise EvaluationError(
            f"{label}: every group is constant (no within-group variance); the F statistic "
            "is undefined",
            hint="Check that the measure was computed on the images and not a constant")
    res = sps.f_oneway(*g.values())
    return TestRecord(test="one-way ANOVA", label=label, n=n,
                      statistic_name="F", statistic=float(res.statistic), df=f"{k - 1}, {n - k}",
                      p=float(res.pvalue), alpha=alpha,
                      details={"groups": " | ".join(f"{name} (n={v.size})" for name, v in g.items()),
                               **{f"mean_{name}": float(v.mean()) for name, v in g.items()}})


def _long(g: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"value": np.concatenate(list(g.values())),
                         "group": np.repeat(list(g.keys()), [v.size for v in g.values()])})


def anova_table(groups: Mapping[str, Sequence[float]], *, label: str) -> pd.DataFrame:
    """The statsmodels ANOVA table (OLS ``value ~ C(group)``, type II) in one tidy row.

    Columns: ``label, effect, sum_sq, df, F, p, residual_sum_sq, residual_df``
    (the residual line is folded into the effect's row, so no cell is empty).
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    one_way_anova(groups, label=label)  # same input checks
    g = _groups(groups)
    fit = smf.ols("value ~ C(group)", data=_long(g)).fit()
    tab = anova_lm(fit, typ=2)
    eff, res = tab.loc["C(group)"], tab.loc["Residual"]
    return pd.DataFrame([{"label": label, "effect": "group",
                          "sum_sq": float(eff["sum_sq"]), "df": float(eff["df"]),
                          "F": float(eff["F"]), "p": float(eff["PR(>F)"]),
                          "residual_sum_sq": float(res["sum_sq"]), "residual_df": float(res["df"])}])


def tukey_hsd(groups: Mapping[str, Sequence[float]], *, label: str,
              alpha: float = 0.05) -> pd.DataFrame:
    """Tukey HSD post-hoc comparisons of every pair (statsmodels ``pairwise_tukeyhsd``).

    One row per pair: ``group1, group2, n1, n2, mean_difference`` (group2 - group1),
    ``p_corrected`` (family-wise adjusted), ``ci_low, ci_high, significant`` and
    ``correction = 'Tukey HSD'``.
    """
    from statsmodels.stats.multicomp import pairwise_tukeyhsd

    alpha = _check_alpha(alpha)
    one_way_anova(groups, label=label)  # same input checks
    g = _groups(groups, min_n=1)
    data = _long(g)
    res = pairwise_tukeyhsd(data["value"].to_numpy(), data["group"].to_numpy(), alpha=alpha)
    names = list(res.groupsunique)
    rows = []
    for i, (a, b) in enumerate(itertools.combinations(range(len(names)), 2)):
        ga, gb = str(names[a]), str(names[b])
        rows.append({"label": label, "test": "Tukey HSD",
                     "group1": ga, "group2": gb, "n1": int(g[ga].size), "n2": int(g[gb].size),
                     "mean_difference": float(res.meandiffs[i]),
                     "p_corrected": float(res.pvalues[i]),
                     "ci_low": float(res.confint[i][0]), "ci_high": float(res.confint[i][1]),
                     "alpha": alpha, "significant": bool(res.reject[i]),
                     "correction": "Tukey HSD"})
    return pd.DataFrame(rows)


def pairwise_t(groups: Mapping[str, Sequence[float]], *, label: str,
               alpha: float = 0.05, method: str = "holm", reference: str | None = None,
               equal_var: bool = False) -> pd.DataFrame:
    """Pairwise two-sample t-tests (Welch by default) with multiple-comparison correction.

    With ``reference`` (e.g. ``'real'``) only reference-vs-other pairs are tested, as S1
    compared each generated set with the real images.  One row per pair with ``t, p,
    p_corrected, significant, correction``.
    """
    alpha = _check_alpha(alpha)
    g = _groups(groups, min_n=2)
    if reference is not None and reference not in g:
        raise EvaluationError(f"reference group {reference!r} is not among {list(g)}")
    pairs = ([(reference, k) for k in g if k != reference] if reference is not None
             else list(itertools.combinations(g, 2)))
    rows = []
    for a, b in pairs:
        if np.ptp(g[a]) == 0 and np.ptp(g[b]) == 0:
            raise EvaluationError(f"{label}: groups {a!r} and {b!r} are both constant; the t "
                                  "statistic is undefined")
        res = sps.ttest_ind(g[a], g[b], equal_var=equal_var)
        rows.append({"label": label,
                     "test": "t-test (Welch)" if not equal_var else "t-test (pooled variance)",
                     "group1": a, "group2": b, "n1": int(g[a].size), "n2": int(g[b].size),
                     "mean_difference": float(g[b].mean() - g[a].mean()),
                     "t": float(res.statistic), "p": float(res.pvalue)})
    table = pd.DataFrame(rows)
    reject, p_corr = correct_pvalues(table["p"].to_numpy(), method=method, alpha=alpha)
    table["p_corrected"] = p_corr
    table["alpha"] = alpha
    table["significant"] = reject
    table["correction"] = method
    return table


def posthoc(groups: Mapping[str, Sequence[float]], *, label: str,
            method: str = "tukey", alpha: float = 0.05, reference: str | None = None) -> pd.DataFrame:
    """Post-hoc comparisons: ``tukey`` (all pairs) or ``pairwise_t_holm`` (Welch t, Holm)."""
    if method == "tukey":
        table = tukey_hsd(groups, label=label, alpha=alpha)
        if reference is not None:
            table = table[(table.group1 == reference) | (table.group2 == reference)].reset_index(drop=True)
        return table
    if method == "pairwise_t_holm":
        return pairwise_t(groups, label=label, alpha=alpha, method="holm",
                          reference=reference)
    raise EvaluationError(f"unknown post-hoc method {method!r}; choose 'tukey' or 'pairwise_t_holm'")


# ------------------------------------------------------------- regression, agreement
def _check_two(x, y, *, label: str, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    a = _sample(x, what=f"{label}: x", min_n=min_n)
    b = _sample(y, what=f"{label}: y", min_n=min_n)
    if a.size != b.size:
        raise EvaluationError(f"{label}: x has {a.size} values but y has {b.size}")
    for arr, name in ((a, "x"), (b, "y")):
        if np.ptp(arr) == 0:
            raise EvaluationError(f"{label}: {name} is constant ({arr[0]:.4g}); a correlation "
                                  "is undefined")
    return a, b


def pearson(x, y, *, label: str, alpha: float = 0.05,
            confidence: float = 0.95) -> TestRecord:
    """Pearson correlation (:func:`scipy.stats.pearsonr`) with its confidence interval."""
    alpha = _check_alpha(alpha)
    a, b = _check_two(x, y, label=label, min_n=3)
    res = sps.pearsonr(a, b)
    ci = res.confidence_interval(confidence_level=confidence)
    return TestRecord(test="Pearson correlation", label=label, n=int(a.size),
                      statistic_name="r", statistic=float(res.statistic), df=str(a.size - 2),
                      p=float(res.pvalue), alpha=alpha,
                      details={"r_ci_low": float(ci.low), "r_ci_high": float(ci.high),
                               "confidence": confidence})


def linear_regression(x, y, *, label: str, alpha: float = 0.05,
                      confidence: float = 0.95) -> TestRecord:
    """Least-squares line ``y = intercept + slope * x`` and Pearson r, as S3.

    Uses :func:`scipy.stats.linregress`; confidence intervals of slope and intercept from
    the t distribution with n - 2 degrees of freedom.  The record's statistic is r and its
    p the two-sided test of slope = 0 (identical to Pearson's test).
    """
    alpha = _check_alpha(alpha)
    a, b = _check_two(x, y, label=label, min_n=3)
    res = sps.linregress(a, b)
    n = a.size
    tcrit = float(sps.t.ppf(0.5 + confidence / 2, n - 2))
    r = pearson(a, b, label=label, alpha=alpha, confidence=confidence)
    details = {"intercept": float(res.intercept), "slope": float(res.slope),
               "intercept_ci_low": float(res.intercept - tcrit * res.intercept_stderr),
               "intercept_ci_high": float(res.intercept + tcrit * res.intercept_stderr),
               "slope_ci_low": float(res.slope - tcrit * res.stderr),
               "slope_ci_high": float(res.slope + tcrit * res.stderr),
               "r_ci_low": r.details["r_ci_low"], "r_ci_high": r.details["r_ci_high"],
               "confidence": confidence,
               "equation": f"y = {res.intercept:.2f} + {res.slope:.2f}x"}
    return TestRecord(test="linear regression (least squares)", label=label,
                      n=int(n), statistic_name="r", statistic=float(res.rvalue), df=str(n - 2),
                      p=float(res.pvalue), alpha=alpha, details=details)


def bland_altman(measured, reference, *, label: str, alpha: float = 0.05,
                 loa_z: float = 1.96) -> TestRecord:
    """Bland-Altman agreement of ``measured`` against ``reference`` (e.g. predicted vs true SBR).

    Details: ``bias`` (mean of measured - reference), ``sd_difference`` (ddof=1),
    ``loa_low``/``loa_high`` = bias ∓ ``loa_z`` x SD and the bias's confidence interval.
    The record's test is the one-sample t-test of the differences against 0 (is the bias
    real?).
    """
    alpha = _check_alpha(alpha)
    m = _sample(measured, what=f"{label}: measured", min_n=2)
    r = _sample(reference, what=f"{label}: reference", min_n=2)
    if m.size != r.size:
        raise EvaluationError(f"{label}: {m.size} measured values but {r.size} reference values")
    d = m - r
    if np.ptp(d) == 0:
        raise EvaluationError(f"{label}: all differences equal {d[0]:.4g}; limits of agreement "
                              "are undefined")
    n = d.size
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    res = sps.ttest_1samp(d, 0.0)
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return TestRecord(test="Bland-Altman (one-sample t-test of bias)",
                      label=label, n=int(n), statistic_name="t", statistic=float(res.statistic),
                      df=str(n - 1), p=float(res.pvalue), alpha=alpha,
                      details={"bias": bias, "sd_difference": sd, "loa_low": bias - loa_z * sd,
                               "loa_high": bias + loa_z * sd, "loa_z": loa_z,
                               "bias_ci_low": bias - half, "bias_ci_high": bias + half,
                               "mean_of_pairs_min": float(((m + r) / 2).min()),
                               "mean_of_pairs_max": float(((m + r) / 2).max())})


# -------------------------------------------------------------------------- tables
def summary_table(data: pd.DataFrame, values: Sequence[str], *, by: Sequence[str] = (),
                  cv: bool = False, decimals: int = 2) -> pd.DataFrame:
    """Mean ± sd, min, max (and coefficient of variation) per group and value column.

    One row per group (``by`` columns) and value: ``value, n, mean, sd, min, max, mean_sd`` (text
    ``"0.78 ± 0.08"``) and, when ``cv``, ``cv_percent = 100 * sd / |mean|``.  SD has ddof=1,
    so each group needs two values; a zero mean with ``cv`` is an error.
    """
    if data.empty:
        raise EvaluationError("the table to summarise is empty",
                              hint="The upstream metric step wrote no rows")
    missing = [c for c in [*values, *by] if c not in data.columns]
    if missing:
        raise EvaluationError(f"columns {missing} are missing (have {list(data.columns)})")
    groups = data.groupby(list(by), sort=False, dropna=False) if by else [((), data)]
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{k}={v}" for k, v in zip(by, key, strict=True)) or "all rows"
        for col in values:
            v = _sample(sub[col], what=f"{col} ({where})", min_n=2)
            row = dict(zip(by, key, strict=True))
            mean, sd = float(v.mean()), float(v.std(ddof=1))
            row.update({"value": col, "n": int(v.size), "mean": mean,
                        "sd": sd, "min": float(v.min()), "max": float(v.max()),
                        "mean_sd": f"{mean:.{decimals}f} ± {sd:.{decimals}f}"})
            if cv:
                if mean == 0:
                    raise EvaluationError(f"{col} ({where}) has mean 0; the coefficient of "
                                          "variation is undefined")
                row["cv_percent"] = 100.0 * sd / abs(mean)
            rows.append(row)
    return pd.DataFrame(rows)


def table4(data: pd.DataFrame, *, metrics: Sequence[str] = ("rmse", "ssim", "psnr"),
           rows: Sequence[str] = ("space", "loss"), column: str = "input",
           decimals: int = 2) -> pd.DataFrame:
    """A results table in the shape of S2's Table 4: mean and coefficient of variation.

    ``data`` is the per-slice metric table of all runs with the grid factors as columns.
    The result has one row per (``rows``..., metric) and one column per value of
    ``column``; each cell reads ``"0.13 (38.46%)"`` (mean, CV = sd/mean with ddof=1).
    """
    summ = summary_table(data, list(metrics), by=[*rows, column], cv=True,
                         decimals=decimals)
    summ["cell"] = [f"{m:.{decimals}f} ({c:.2f}%)" for m, c in zip(summ["mean"], summ["cv_percent"],
                                                                   strict=True)]
    summ = summ.rename(columns={"value": "metric"})
    wide = summ.pivot(index=[*rows, "metric"], columns=column, values="cell")
    order = {m: i for i, m in enumerate(metrics)}
    wide = wide.reset_index()
    wide["_o"] = wide["metric"].map(order)
    wide = wide.sort_values([*rows, "_o"]).drop(columns="_o").reset_index(drop=True)
    wide.columns.name = None
    if wide.isna().any().any():
        holes = wide.columns[wide.isna().any()].tolist()
        raise EvaluationError(f"the grid is incomplete: no slices for some cells of columns {holes}",
                              hint="Run every experiment of the grid before building the table")
    return wide


# ------------------------------------------------------------------ power of an ANOVA
def anova_sensitivity(groups: Mapping[str, Sequence[float]], *, label: str,
                      alpha: float = 0.05, power: float = 0.8, reference_f: float = 0.25) -> dict[str, float]:
    """How large an effect a one-way ANOVA of these groups could detect.

    ``effect_f``: the observed Cohen's f, sqrt(SS_between / SS_within); ``min_detectable_f``:
    the smallest Cohen's f the test finds with probability ``power`` at ``alpha``, given its
    total n and number of groups (:class:`statsmodels.stats.power.FTestAnovaPower`, which
    assumes equal group sizes: with unequal groups it is a best case); ``power_at_reference_f``:
    the power to detect ``reference_f`` (Cohen's "medium" effect 0.25 by default).  A
    non-significant ANOVA with a large ``min_detectable_f`` says "too few images to tell",
    not "no difference".
    """
    from statsmodels.stats.power import FTestAnovaPower

    alpha = _check_alpha(alpha)
    if not 0 < power < 1:
        raise EvaluationError(f"power must be in (0, 1), got {power}")
    g = _groups(groups)
    k = len(g)
    n = sum(v.size for v in g.values())
    if k < 2 or n <= k:
        raise EvaluationError(f"{label}: {n} values in {k} groups; the ANOVA's power needs two groups and more "
                              "values than groups")
    grand = np.concatenate(list(g.values())).mean()
    between = sum(v.size * (v.mean() - grand) ** 2 for v in g.values())
    within = sum(float(((v - v.mean()) ** 2).sum()) for v in g.values())
    if within == 0:
        raise EvaluationError(f"{label}: no within-group variance; Cohen's f is undefined")
    from scipy.optimize import brentq

    analysis = FTestAnovaPower()

    def short(f: float) -> float:
        return float(analysis.power(effect_size=f, nobs=n, alpha=alpha, k_groups=k)) - power

    # solved here rather than with solve_power, whose search stops at f = 1 (small n needs more);
    # the bracket grows by doubling (the noncentral F turns NaN far beyond the root)
    hi = next((f for f in 2.0 ** np.arange(-1, 7) if np.isfinite(short(f)) and short(f) > 0), None)
    if hi is None:
        raise EvaluationError(f"{label}: even Cohen's f = 64 is detected with power below {power:g} at n={n}, "
                              f"k={k}", hint="Too few images for this ANOVA to have power")
    f_min = float(brentq(short, 1e-6, hi, xtol=1e-7))
    p_ref = float(analysis.power(effect_size=reference_f, nobs=n, alpha=alpha, k_groups=k))
    return {"effect_f": float(np.sqrt(between / within)), "min_detectable_f": f_min, "power_target": float(power),
            "reference_f": float(reference_f), "power_at_reference_f": p_ref}


# ------------------------------------------------- repeated images of one unit (subject)
def mixed_model_contrasts(data: pd.DataFrame, *, value: str, group: str, unit: str, reference: str,
                          covariates: Sequence[str] = (), label: str, alpha: float = 0.05,
                          min_units: int = 2) -> pd.DataFrame:
    """Groups compared with ``reference`` when a unit (a subject) contributes several values.

    A linear mixed model (:class:`statsmodels.regression.mixed_linear_model.MixedLM`, REML)
    ``value ~ group + covariates`` with a random intercept per ``unit``: repeated, near-identical
    values of one unit count once for the group difference instead of once per value, as a
    per-value test would.  Categorical ``covariates`` (e.g. the anatomical level) enter as fixed
    effects; one with a single category is dropped.  When no unit holds two values the random
    intercept is not identified and the same model is fitted by OLS (``method`` says which).

    Every group needs ``min_units`` units.  One row per group other than ``reference``:
    ``group1`` (the reference), ``group2``, ``estimate`` (group2 - group1, adjusted for the
    covariates), ``se``, ``z``, ``p``, ``ci_low``, ``ci_high``, the images and units of both
    groups, the omnibus Wald test that every group equals the reference (``omnibus_chi2``,
    ``omnibus_df``, ``omnibus_p``), ``unit_variance``, ``residual_variance``, ``converged``
    and ``method``.
    """
    import warnings

    import statsmodels.formula.api as smf

    alpha = _check_alpha(alpha)
    need = [value, group, unit, *covariates]
    missing = [c for c in need if c not in data.columns]
    if missing:
        raise EvaluationError(f"{label}: columns {missing} are missing")
    d = data[need].copy()
    y = pd.to_numeric(d[value], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(y)):
        raise EvaluationError(f"{label}: non-finite values")
    names = [str(g) for g in dict.fromkeys(d[group].astype(str))]
    if reference not in names:
        raise EvaluationError(f"{label}: reference group {reference!r} is not among {names}")
    names = [reference] + [g for g in names if g != reference]
    if len(names) < 2:
        raise EvaluationError(f"{label}: one group only; a comparison needs two")
    units = {g: int(d.loc[d[group].astype(str) == g, unit].nunique()) for g in names}
    images = {g: int((d[group].astype(str) == g).sum()) for g in names}
    few = {g: k for g, k in units.items() if k < min_units}
    if few:
        raise EvaluationError(
            f"{label}: " + ", ".join(f"{g} has {k} unit(s)" for g, k in few.items())
            + f"; a comparison needs at least {min_units} independent units (subjects) per group",
            hint="Repeated images of one subject are not independent; add test subjects")
    code = {g: f"g{i}" for i, g in enumerate(names)}
    frame = pd.DataFrame({"y": y, "g": pd.Categorical([code[str(g)] for g in d[group]],
                                                      categories=list(code.values())),
                          "u": d[unit].astype(str).to_numpy()})
    terms = ["C(g)"]
    for i, cov in enumerate(covariates):
        if d[cov].nunique() > 1:
            frame[f"c{i}"] = d[cov].astype(str).to_numpy()
            terms.append(f"C(c{i})")
    formula = "y ~ " + " + ".join(terms)
    if float(np.var(y)) == 0:
        raise EvaluationError(f"{label}: every value is the same; no comparison is defined")
    repeated = bool(frame["u"].duplicated().any())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if repeated:
                fit = smf.mixedlm(formula, frame, groups=frame["u"]).fit(reml=True)
                fe, cov = fit.fe_params, fit.cov_params().loc[fit.fe_params.index, fit.fe_params.index]
                unit_var, resid_var = float(np.asarray(fit.cov_re)[0, 0]), float(fit.scale)
                converged = bool(fit.converged)
                method = "linear mixed model (REML), random intercept per unit"
            else:
                fit = smf.ols(formula, frame).fit()
                fe, cov = fit.params, fit.cov_params()
                unit_var, resid_var, converged = 0.0, float(fit.scale), True
                method = "OLS (no unit holds two values)"
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise EvaluationError(f"{label}: the model could not be fitted ({exc})") from exc
    if any("converge" in str(w.message).lower() for w in caught):
        converged = False
    coef = [f"C(g)[T.{code[g]}]" for g in names[1:]]
    b = fe.loc[coef].to_numpy(dtype=float)
    v = cov.loc[coef, coef].to_numpy(dtype=float)
    se = np.sqrt(np.diag(v))
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise EvaluationError(f"{label}: the model gives no finite standard error for the group effect",
                              hint="Too few units or no variation within groups")
    chi2 = float(b @ np.linalg.solve(v, b))
    z = b / se
    p = 2 * sps.norm.sf(np.abs(z))
    q = sps.norm.ppf(1 - alpha / 2)
    rows = []
    for i, g in enumerate(names[1:]):
        rows.append({"label": label, "test": method, "group1": reference, "group2": g,
                     "n1": images[reference], "n2": images[g], "units1": units[reference], "units2": units[g],
                     "estimate": float(b[i]), "se": float(se[i]), "z": float(z[i]), "p": float(p[i]),
                     "ci_low": float(b[i] - q * se[i]), "ci_high": float(b[i] + q * se[i]),
                     "alpha": alpha, "significant": bool(p[i] < alpha),
                     "omnibus_chi2": chi2, "omnibus_df": len(coef),
                     "omnibus_p": float(sps.chi2.sf(chi2, len(coef))),
                     "unit_variance": unit_var, "residual_variance": resid_var, "converged": converged,
                     "covariates": " ".join(c for c in covariates if d[c].nunique() > 1) or "none",
                     "method": method})
    return pd.DataFrame(rows)


def two_sample_power(n1: int, n2: int, *, effect_d: float, alpha: float = 0.05) -> float:
    """Power of a two-sided two-sample t-test with ``n1`` and ``n2`` independent units to detect a
    standardised difference ``effect_d`` (Cohen's d) at ``alpha``
    (:class:`statsmodels.stats.power.TTestIndPower`).  ``n`` counts independent units (subjects),
    not the images they contribute."""
    from statsmodels.stats.power import TTestIndPower

    alpha = _check_alpha(alpha)
    if int(n1) < 2 or int(n2) < 2:
        raise EvaluationError(f"power needs at least two independent units per group, got {n1} and {n2}")
    if not effect_d > 0:
        raise EvaluationError(f"effect size must be > 0, got {effect_d}")
    return float(TTestIndPower().power(effect_size=float(effect_d), nobs1=int(n1), alpha=alpha,
                                       ratio=int(n2) / int(n1), alternative="two-sided"))


# ------------------------------------------------------------------ the patient as the unit
SUBJECT_UNIT = "test subjects (each the mean of its slices)"


def subject_means(data: pd.DataFrame, values: Sequence[str], *, by: Sequence[str] = (),
                  subject: str = "subject") -> pd.DataFrame:
    """Mean of ``values`` per subject (and per ``by`` group): one row per subject, so a test on
    it counts patients, not slices.  Adds ``n_slices`` (slices averaged per row)."""
    missing = [c for c in [*values, *by, subject] if c not in data.columns]
    if missing:
        raise EvaluationError(f"columns {missing} are missing (have {list(data.columns)})")
    keys = [*by, subject]
    grouped = data.groupby(keys, sort=True)
    out = grouped[list(values)].mean().reset_index()
    out["n_slices"] = grouped.size().to_numpy()
    return out


def subject_pairs(a: pd.DataFrame, b: pd.DataFrame, value: str, *,
                  subject: str = "subject") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-subject means of ``value`` in ``a`` and in ``b``, paired by subject (subjects in both
    only): ``(a_means, b_means, subjects)``.  Slices of different grids (S2's native and
    template spaces) are compared this way, never slice by slice."""
    ma = a.groupby(subject, sort=True)[value].mean()
    mb = b.groupby(subject, sort=True)[value].mean()
    common = sorted(set(ma.index) & set(mb.index))
    return ma.loc[common].to_numpy(float), mb.loc[common].to_numpy(float), [str(s) for s in common]


def paired_power(a, b, effect: float, *, alpha: float) -> float | None:
    """Power of a two-tailed paired t-test on these pairs to detect a mean difference ``effect``
    (in the data's units, scaled by the pairs' SD of differences): the noncentral t with
    ``n - 1`` degrees of freedom and noncentrality ``effect / sd * sqrt(n)``.  None when it cannot
    be said (fewer than 2 pairs, no spread of the differences)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size < 2:
        return None
    sd = float(d.std(ddof=1))
    if not np.isfinite(sd) or sd == 0:
        return None
    df = d.size - 1
    nc = abs(float(effect)) / sd * math.sqrt(d.size)
    crit = float(sps.t.ppf(1 - float(alpha) / 2, df))
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
    if not math.isfinite(power):   # scipy's noncentral t fails far in the tail: the power is one there
        return 1.0 if nc > crit else None
    return min(max(power, 0.0), 1.0)
