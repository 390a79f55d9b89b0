"""The reference results page's study-specific parts (:mod:`spectsynth.results_page` holds the rest):
each study's supporting tables below its verdicts (:data:`SUPPORT`, keyed by the study's key) and
the power of each study's subject-level tests on the reference design (:func:`power_lines`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[3]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _num(x: Any) -> float:
    from ..headline import _num as num

    return num(x)


def _cell(x: Any) -> str:
    return str(_num(x)).replace("|", "/").replace("\n", " ")


def md_table(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> list[str]:
    """``frame`` as a Markdown table of the (column, header) pairs it has."""
    cols = [(c, h) for c, h in columns if c in frame.columns]
    if not cols or frame.empty:
        return ["(no rows)"]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r[c]) for c, _ in cols) + " |" for _, r in frame.iterrows()]
    return lines


def _truthy(x: Any) -> bool:
    return str(x).strip().lower() in ("true", "1", "yes")


def _s0_support(folder: Path) -> list[str]:
    lines = []
    for f in sorted(folder.glob("*/summary.tsv")):
        t = _read(f)
        t = t[t["n_counts"] == "subjects"] if "n_counts" in t else t
        if t.empty:
            continue
        wide = t.pivot_table(index=["quantity", "published"], columns="series", values="ours_text",
                             aggfunc="first", sort=False).reset_index()
        series = [c for c in ("prediction", "input", "mean_normal", "constant", "original") if c in wide.columns]
        head = {"prediction": "ours", "input": "baseline: damaged input",
                "mean_normal": "baseline: mean normal slice", "constant": "baseline: constant ratio",
                "original": "yardstick: CNN on the originals"}
        lines += ["", f"`{f.parent.name}`, per test subject (`{f.parent.name}/summary.tsv`):", ""]
        lines += md_table(wide, [("quantity", "quantity"), ("published", "published"),
                                 *[(s, head[s]) for s in series]])
    return lines


def _s1_support(folder: Path) -> list[str]:
    f = folder / "summary.tsv"
    if not f.is_file():
        return []
    t = _read(f)
    if "headline" in t:
        t = t[t["headline"].map(_truthy)]
    lines = ["", "Real vs generated per pattern, levels pooled, subjects as units (`summary.tsv`; variant "
                 "`real half 2` is the real-vs-real reference):", ""]
    return lines + md_table(t, [("value", "quantity"), ("pattern", "pattern"), ("variant", "variant"),
                                ("published_p", "published P"), ("published", "published"),
                                ("pooled_estimate", "ours: estimate"), ("pooled_p", "ours: p"),
                                ("pooled_power_at_reference_d", "power"), ("pooled_ours", "ours"),
                                ("n_counts", "n")])


def _s2_support(folder: Path) -> list[str]:
    f = folder / "published.tsv"
    if not f.is_file():
        return []
    lines = ["", "Table 4 and the native-vs-template count beside the paper's (`published.tsv`; ours as S2 "
                 "measured it, whole slice, and inside the brain):", ""]
    return lines + md_table(_read(f), [("quantity", "quantity"), ("space", "space"), ("loss", "loss"),
                                       ("input", "input"), ("published", "published"),
                                       ("ours", "ours (paper's metric)"), ("ours_brain", "ours (in brain)"),
                                       ("n", "n"), ("n_counts", "n counts")])


def _s3_support(folder: Path) -> list[str]:
    lines = []
    for f in sorted(folder.glob("*/published.tsv")):
        lines += ["", f"`{f.parent.name}`: ours beside the published SSIMs and lines (`{f.parent.name}/published.tsv`):",
                  ""]
        lines += md_table(_read(f), [("quantity", "quantity"), ("published", "published"), ("ours", "ours"),
                                     ("units", "units")])
        reg = f.parent / "regression.tsv"
        if reg.is_file():
            lines += ["", f"Every line with the nulls (`{f.parent.name}/regression.tsv`):", ""]
            lines += md_table(_read(reg), [("basis", "basis"), ("label", "line"), ("intercept", "intercept"),
                                           ("slope", "slope"), ("statistic", "r"), ("slope_ci_low", "slope CI low"),
                                           ("slope_ci_high", "slope CI high"), ("n", "n"),
                                           ("n_counts", "n counts")])
    return lines


SUPPORT = {"s0": _s0_support, "s1": _s1_support, "s2": _s2_support, "s3": _s3_support}


def _paper_test_n(key: str, default: int) -> int:
    """The paper's test patients, from its paper-scale config (config/studies/<key>.yaml)."""
    f = REPO / "config" / "studies" / f"{key}.yaml"
    try:
        return int(yaml.safe_load(f.read_text())["datasets"][key]["split"]["counts"]["test"])
    except (OSError, KeyError, TypeError):
        return default


def _unit_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n paired differences with SD 1 (and pairs of zeros): paired_power of these at effect d is
    the power for a standardised effect d (mean difference / SD of the differences)."""
    z = np.linspace(-1.0, 1.0, n)
    return z / z.std(ddof=1), np.zeros(n)


def power_lines(cfg: Mapping, p: Mapping) -> list[str]:
    """The reference design's test subjects and the power of its subject-level tests for the
    published effects, one line each (without the comment sign); ``p`` is
    :func:`spectsynth.planner.plan` of ``cfg``."""
    from scipy import stats as sps

    from .. import stats as S
    from ..labels import PATTERNS

    ev = cfg.get("evaluate") or {}
    alpha = float(ev.get("alpha", 0.01))
    lines = []
    d = p["designs"]

    def n_test(ds: str) -> int:
        return len(d[ds].subjects["test"]) if ds in d else 0

    if "s0" in d:
        n = n_test("s0")
        lines.append(f"S0: {n} test subjects; level verdicts (no test): the published Dice SD 0.08 gives a "
                     f"standard error of {0.08 / math.sqrt(n):.3f} for the subject-mean Dice (paper: "
                     f"{_paper_test_n('s0', 9)} test MRIs).")
    if "s1" in d:
        a_alpha = float(ev.get("anova_alpha", 0.05))
        eff = 2.0 * float(ev.get("anova_reference_f", 0.25))
        n1 = n_test("s1")
        exp = d["s1"].expected
        test = exp[exp["split"] == "test"]
        parts = []
        for variant, levels in (("A", None), ("B", ["COR"])):
            sub = test if levels is None else test[test["level"].isin(levels)]
            for pat in PATTERNS:
                n2 = int(sub[sub["pattern"] == pat]["images"].sum())
                if n2 >= 2 and n1 >= 2:
                    parts.append(f"{variant} {pat} {S.two_sample_power(n1, n2, effect_d=eff, alpha=a_alpha):.2f} "
                                 f"({n2} images)")
        lines.append(f"S1: {n1} real test subjects vs as many generated images as real ones per pattern; "
                     f"two_sample_power at d = {eff:g} (2 x anova_reference_f), alpha {a_alpha:g}: "
                     + ", ".join(parts) + " (the real units are at most the test subjects).")
    for key, ds, what in (("s2", "s2_native", "native vs template, MRI vs PET"),
                          ("s3", "s3", "SSIM of pix2pix vs SPECT against PET")):
        if ds not in d:
            continue
        n_pub = _paper_test_n(key, 12 if key == "s2" else 15)
        d_min = float(sps.t.ppf(1 - alpha / 2, n_pub - 1)) / math.sqrt(n_pub)
        n = n_test(ds)
        pw = S.paired_power(*_unit_pairs(n), d_min, alpha=alpha) if n >= 2 else None
        pw_pub = S.paired_power(*_unit_pairs(n_pub), d_min, alpha=alpha)
        lines.append(f"{key.upper()}: {n} test subjects; paired t on subject means ({what}), alpha {alpha:g}: "
                     f"power {pw:.2f} for d_z = {d_min:.3f}, the smallest effect the paper's own test on "
                     f"{n_pub} patients declares significant (power there {pw_pub:.2f}).")
    return lines
