"""S1's evaluation: mean counts and L/R ratio of real and generated slices; per pattern, mixed
models with the subject as unit (levels pooled) against a real-vs-real reference, their power and
the verdicts on S1's published findings; per-level one-way ANOVAs on images (descriptive);
pixel-wise mean/SD maps."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ... import metrics as M
from ... import plots as P
from ... import stats as S
from ...errors import EvaluationError, context
from ...evaluate import (
    attempt,
    figure_label,
    message_figure,
    notes_frame,
    shard_to_ras,
    with_columns,
)
from ...infer import load_predictions, read_index
from ...io import write_table
from ...labels import LEVELS, PATTERNS

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- S1
def _source_names(specs: Mapping[str, Mapping]) -> dict[str, str]:
    variants = {n: str(s.get("condition", {}).get("variant", n)) for n, s in specs.items()}
    if len(set(variants.values())) < len(variants):
        return {n: n for n in specs}
    return variants


REAL = "real"
REAL_HALVES = ("real half 1", "real half 2")
COMPARISON_GENERATED = "real vs generated"
COMPARISON_REAL_HALVES = "real half 1 vs real half 2 (reference)"
CRITERION_NONE = "none (real images only)"
# A real-vs-real reference needs this many subjects in each half, or it is not computed: with
# fewer, "the halves differ" or "they do not" says nothing about sampling variation.
MIN_REFERENCE_SUBJECTS = 5
# What n counts in S1's tables.
N_COUNTS_IMAGES = ("images (per-level image-level test: a subject's slices and scans count separately, "
                   "so p and power are optimistic; descriptive, the finding is read in mixed_model.tsv)")
MEASURES = {"mean_counts": ("mean counts", "max-normalised counts"), "lr_ratio": ("L/R ratio", "ratio")}


def split_subjects_in_halves(subjects: Sequence[str], *, seed: int, experiment: str = "S1") -> dict[str, int]:
    """Split subjects into two halves (1, 2) by a seeded shuffle; with an odd count half 1 has the
    extra subject.  Every image of a subject lands in the same half, so the real-vs-real
    comparison keeps S1's subject structure (no subject on both sides)."""
    uniq = sorted({str(s) for s in subjects})
    if len(uniq) < 2:
        raise EvaluationError(f"the real test split holds {len(uniq)} subject(s); a real-vs-real comparison needs "
                              "at least two, one per half", experiment=experiment,
                              hint="Give the s1 test split more subjects (datasets.s1.split)")
    order = np.random.default_rng(int(seed)).permutation(len(uniq))
    first = {uniq[i] for i in order[: (len(uniq) + 1) // 2]}
    return {s: 1 if s in first else 2 for s in uniq}


@context(experiment="S1")   # S1's statistics compare all sources at once, under the study's name
def _s1_tests(data: pd.DataFrame, sources: Sequence[str], *, reference: str | None, cfg: Mapping, notes: list,
              comparison: str, criterion: str, headline: bool,
              min_subjects: int = 0) -> tuple[list[dict], list[pd.DataFrame], dict]:
    """S1's one-way ANOVA (with its power) and post-hoc comparisons of ``sources`` per level and
    pattern, on images (``n_counts``: :data:`N_COUNTS_IMAGES`); rows tagged with ``comparison``,
    ``criterion`` and ``headline``.  With ``min_subjects``, a cell where a source holds fewer
    subjects (column ``subject``) is not computed (the real-vs-real reference)."""
    alpha = float(cfg["anova_alpha"])
    anova, post = [], []
    marks: dict[str, list] = {"mean_counts": [], "lr_ratio": []}
    tag = {"comparison": comparison, "criterion": criterion, "headline": bool(headline)}
    suffix = "" if headline else f" [{comparison}; criterion {criterion}]"
    for lv in LEVELS:
        for pat in PATTERNS:
            sub = data[(data["level"] == lv) & (data["pattern"] == pat)]
            groups_present = [s for s in sources if (sub["source"] == s).any()]
            if len(groups_present) < 2:
                continue
            if min_subjects:
                have = {s: int(sub.loc[sub["source"] == s, "subject"].nunique()) for s in groups_present}
                if min(have.values()) < min_subjects:
                    notes.append({"study": "S1", "what": f"ANOVA at {lv}, {pat}{suffix}",
                                  "reason": ", ".join(f"{s}: {k} subject(s)" for s, k in have.items())
                                  + f"; the reference needs at least {min_subjects} subjects per half"})
                    continue
            for value in ("mean_counts", "lr_ratio"):
                groups = {s: sub.loc[sub["source"] == s, value].to_numpy() for s in groups_present}
                what = f"{value} at {lv}, {pat}"
                rec = attempt(notes, "S1", f"ANOVA {what}{suffix}", S.one_way_anova, groups,
                               label=what, alpha=alpha)
                if rec is None:
                    continue
                tab = S.anova_table(groups, label=what)
                row = {**tag, "experiment": "S1",
                       **{k: v for k, v in rec.as_dict().items() if not k.startswith("mean_")},
                       "n_counts": N_COUNTS_IMAGES}
                row.update({"level": lv, "pattern": pat, "value": value,
                            "sum_sq": float(tab["sum_sq"].iat[0]),
                            "residual_sum_sq": float(tab["residual_sum_sq"].iat[0])})
                power = attempt(notes, "S1", f"power of the ANOVA {what}{suffix}", S.anova_sensitivity, groups,
                                 label=what, alpha=alpha, power=float(cfg["anova_power"]),
                                 reference_f=float(cfg["anova_reference_f"]))
                if power is None:
                    continue   # a row without its power is not written (noted instead)
                row.update(power)
                anova.append(row)
                ref = reference if reference in groups else None
                ph = attempt(notes, "S1", f"post-hoc {what}{suffix}", S.posthoc, groups,
                              label=what, method=cfg["posthoc"], alpha=alpha, reference=ref)
                if ph is not None:
                    ph = with_columns(ph, experiment="S1")
                    for pos, (k, v) in enumerate({"level": lv, "pattern": pat, "value": value, **tag}.items()):
                        ph.insert(pos, k, v)
                    ph["n_counts"] = N_COUNTS_IMAGES
                    post.append(ph)
                    m = ph[["group1", "group2", "p_corrected"]].copy()
                    m["x"] = f"{lv}\n{pat}"
                    marks[value].append(m)
    return anova, post, marks


def holm_across_levels(posthoc: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Holm correction of the post-hoc p-values over the levels that share one claim (the same
    comparison, criterion, quantity, pattern and pair): ``p_holm_levels`` and
    ``significant_holm_levels``.  A variant called "different" at any of three levels would
    otherwise be tested three times for one published finding (S1 pooled the levels)."""
    out = posthoc.copy()
    out["p_holm_levels"] = out.get("p_corrected", pd.Series(dtype=float))
    out["significant_holm_levels"] = False
    if out.empty:
        return out
    keys = ["comparison", "criterion", "value", "pattern", "group1", "group2"]
    for _, g in out.groupby(keys, sort=False):
        reject, p_corr = S.correct_pvalues(g["p_corrected"].to_numpy(dtype=float), method="holm", alpha=alpha)
        out.loc[g.index, "p_holm_levels"] = p_corr
        out.loc[g.index, "significant_holm_levels"] = reject
    out["significant_holm_levels"] = out["significant_holm_levels"].astype(bool)
    return out


def s1_units(data: pd.DataFrame) -> pd.Series:
    """The statistical unit of each image: its subject for real images (a subject's slices and
    near-identical scans are one unit), the image itself for generated images (they have no
    subject)."""
    real = data["source"].astype(str).str.startswith(REAL)
    gen = data["source"].astype(str) + " image " + data["image"].astype(str)
    subj = data["subject"] if "subject" in data else pd.Series(index=data.index, dtype=object)
    return ("subject " + subj.astype(str)).where(real, gen)


MIXED_COLUMNS = ["comparison", "criterion", "headline", "experiment", "value", "pattern", "scope", "group1",
                 "group2", "n1", "n2", "units1", "units2", "estimate", "se", "z", "p", "significant",
                 "power_at_reference_d", "n_counts"]


def notes_reason(notes: Sequence[Mapping], what: str) -> str:
    """The reason of the last not-computed note whose ``what`` contains ``what``."""
    hits = [n["reason"] for n in notes if what in str(n["what"])]
    return hits[-1] if hits else "see not_computed.tsv"


def _mixed_n_counts(r: Mapping) -> str:
    second = ("subjects (all their slices; subject random intercept)" if str(r["group2"]).startswith(REAL)
              else "images (each generated image its own unit)")
    return (f"units: {r['units1']} {r['group1']} subjects (all their slices; subject random intercept) vs "
            f"{r['units2']} {r['group2']} {second}; images {r['n1']} vs {r['n2']}")


@context(experiment="S1")
def s1_mixed_tests(data: pd.DataFrame, sources: Sequence[str], *, reference: str, cfg: Mapping, notes: list,
                   comparison: str, criterion: str, headline: bool, min_units: int = 2,
                   reasons: dict | None = None) -> list[dict]:
    """S1's comparison with the patient as the unit, levels pooled as S1 pooled them: per pattern
    and quantity, a linear mixed model ``value ~ source + level`` with a random intercept per
    unit (:func:`spectsynth.stats.mixed_model_contrasts`; units from :func:`s1_units`), one row
    per source against ``reference``.  The level is a fixed effect because variant B holds COR
    slices only.  Each row carries the power of a two-sample test with these units for the
    reference effect (Cohen's d = 2 x ``anova_reference_f``, the two-group form of Cohen's f)
    and ``n_counts``.  ``reasons`` collects why a (value, pattern) was not computed."""
    alpha = float(cfg["anova_alpha"])
    effect_d = 2.0 * float(cfg["anova_reference_f"])
    tag = {"comparison": comparison, "criterion": criterion, "headline": bool(headline)}
    suffix = "" if headline else f" [{comparison}; criterion {criterion}]"
    d = data.assign(unit=s1_units(data))
    rows = []
    for pat in PATTERNS:
        sub = d[d["pattern"] == pat]
        present = [s for s in sources if (sub["source"] == s).any()]
        for value in MEASURES:
            what = f"mixed model {value}, {pat} (levels pooled){suffix}"
            if reference not in present or len(present) < 2:
                if reasons is not None:
                    reasons[(value, pat)] = f"no {' or '.join(s for s in sources if s not in present)} images"
                continue
            res = attempt(notes, "S1", what, S.mixed_model_contrasts, sub[sub["source"].isin(present)],
                          value=value, group="source", unit="unit", reference=reference, covariates=["level"],
                          label=f"{value}, {pat}", alpha=alpha, min_units=min_units)
            if res is None:
                if reasons is not None:
                    reasons[(value, pat)] = notes[-1]["reason"]
                continue
            for r in res.to_dict("records"):
                power = attempt(notes, "S1", f"power {what} {r['group2']}", S.two_sample_power,
                                r["units1"], r["units2"], effect_d=effect_d, alpha=alpha)
                rows.append({**tag, "experiment": "S1", "value": value, "pattern": pat,
                             "scope": "levels pooled (level as fixed effect)", **r,
                             "reference_d": effect_d, "power_at_reference_d": "" if power is None else power,
                             "n_counts": _mixed_n_counts(r)})
    return rows


def _claim(value: str, variant: str, pattern: str) -> tuple[str, dict | None]:
    from .published import published_p as s1_published_p

    pub = s1_published_p(value, variant, pattern)
    if pub is None:
        return "equal", None
    return ("different" if pub["significant"] else "equal"), pub


def s1_verdicts(mixed: pd.DataFrame, *, variants: Sequence[str], criterion: str, alpha: float,
                reference_reasons: Mapping | None = None, generated_reasons: Mapping | None = None,
                min_power: float | None = None) -> pd.DataFrame:
    """One verdict per published finding (:mod:`spectsynth.verdicts`): per quantity, pattern and
    variant (A, B), the claim as published -- "not different from real" where S1's pooled p was
    >= 0.05, "different" where it was < 0.05 (two-sided: S1 states no direction, so the
    direction our estimate takes is the claim's and "reversed" cannot occur) -- tested by the
    mixed model of the headline ``criterion`` (``mixed``: :func:`s1_mixed_tests` rows), read
    against the real-vs-real reference of the same quantity and pattern (not testable when that
    reference could not be computed or is itself different) and the power for the reference
    effect.  Extra columns after :data:`spectsynth.verdicts.COLUMNS`: ``criterion``, ``claim``,
    ``reference_p`` and ``reference_differs``."""
    from ... import verdicts as V

    kw = {} if min_power is None else {"min_power": float(min_power)}
    ref_rows = mixed[mixed["comparison"] == COMPARISON_REAL_HALVES] if not mixed.empty else mixed
    gen_rows = (mixed[(mixed["comparison"] == COMPARISON_GENERATED) & (mixed["criterion"] == criterion)]
                if not mixed.empty else mixed)
    rows, extra = [], []
    for value, (measure, unit) in MEASURES.items():
        for pat in PATTERNS:
            ref = ref_rows[(ref_rows["value"] == value) & (ref_rows["pattern"] == pat)] if not ref_rows.empty \
                else ref_rows
            ref_p = float(ref["p"].iat[0]) if len(ref) else None
            ref_est = float(ref["estimate"].iat[0]) if len(ref) else None
            for variant in ("A", "B"):
                claim, pub = _claim(value, variant, pat)
                words = "different from real" if claim == "different" else "not different from real"
                finding = f"{variant} {words}: {measure}, {pat} (published {pub['published'] if pub else 'n/a'})"
                g = gen_rows[(gen_rows["value"] == value) & (gen_rows["pattern"] == pat)
                             & (gen_rows["group2"] == variant)] if not gen_rows.empty else gen_rows
                r = g.iloc[0].to_dict() if len(g) else None
                not_computed = None
                if variant not in variants:
                    not_computed = f"variant {variant} was not run"
                elif r is None:
                    why = (generated_reasons or {}).get((value, pat), "see not_computed.tsv")
                    not_computed = f"the mixed model of {measure}, {pat} was not computed ({why})"
                elif ref_p is None:
                    why = (reference_reasons or {}).get((value, pat), "see not_computed.tsv")
                    not_computed = f"the real-vs-real reference of {measure}, {pat} was not computed ({why})"
                elif claim == "different" and ref_p < alpha:
                    not_computed = (f"the real-vs-real reference is itself different (p = {ref_p:.3g}), so a "
                                    "difference cannot be told from sampling")
                power = r.get("power_at_reference_d") if r else None
                power = None if power in ("", None) else float(power)
                est = r["estimate"] if r else None
                v_claim = claim if claim == "equal" else ("greater" if (est or 0) >= 0 else "less")
                verdict = V.comparison_verdict(claim=v_claim, estimate=est, p=r["p"] if r else None, alpha=alpha,
                                               power=power, reference_differs=bool(ref_p is not None
                                                                                   and ref_p < alpha),
                                               not_computed=not_computed, **kw)
                if claim == "different" and verdict[0] == "reproduced":
                    verdict = (verdict[0], verdict[1].replace("in the published direction",
                                                              "(two-sided; S1 gives no direction)"))
                rows.append(V.row(
                    study="S1", finding=finding, measure=measure, unit=unit, ours=est if r else "",
                    published=pub["published"] if pub else "not reported",
                    n=(int(r["units1"]) + int(r["units2"])) if r else 0,
                    n_counts=r["n_counts"] if r else "units: real subjects + generated images (none here)",
                    verdict=verdict, baseline=ref_est,
                    baseline_name="real vs real: half 2 - half 1 (same model)",
                    statistic=(f"mixed model, {variant} - real (level fixed, subject random intercept), z"
                               if r else ""),
                    p=r["p"] if r else None, power=power))
                extra.append({"criterion": criterion, "claim": claim,
                              "reference_p": "" if ref_p is None else ref_p,
                              "reference_differs": "" if ref_p is None else bool(ref_p < alpha)})
    table = V.frame(rows)
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)


def s1_published_columns(posthoc: pd.DataFrame, *, scale_label: str) -> pd.DataFrame:
    """S1's published p-value (:data:`spectsynth.studies.published.S1`, per quantity, variant and pattern,
    levels pooled) beside every real-vs-variant post-hoc row: ``published_p`` (as printed),
    ``published_significant`` and ``scale``.  Rows the paper has no value for say so."""
    from ..published import published
    from .published import published_p as s1_published_p

    alpha = float(published("S1")["alpha"])
    texts, sig, scale = [], [], []
    for _, r in posthoc.iterrows():
        pair = {str(r["group1"]), str(r["group2"])}
        other = sorted(pair - {REAL})
        pub = s1_published_p(str(r["value"]), other[0], str(r["pattern"])) \
            if REAL in pair and len(other) == 1 else None
        texts.append(pub["published"] if pub else "not reported")
        sig.append(("yes" if pub["significant"] else "no") if pub else "not reported")
        scale.append(scale_label)
    out = posthoc.copy()
    out["published_p"] = texts
    out["published_significant"] = sig
    out["published_alpha"] = alpha
    out["scale"] = scale
    return out


def s1_summary(posthoc: pd.DataFrame, *, scale_label: str, mixed: pd.DataFrame | None = None) -> pd.DataFrame:
    """S1's finding beside the paper's: one row per quantity, pattern, variant and selection
    criterion.  ``pooled_*``: the levels pooled as S1 pooled them, subjects as units
    (:func:`s1_mixed_tests`; ``pooled_ours`` is the finding, ``n_counts`` says what n counts).
    ``levels`` and ``significant_levels`` count our per-level, image-level post-hoc tests
    against real, Holm-corrected across the levels of one claim (``min_p_holm_levels``).  The
    real-vs-real reference appears as variant ``real half 2`` (criterion
    :data:`CRITERION_NONE`, published ``reference``)."""
    from .published import published_p as s1_published_p

    rows = []
    for _, r in posthoc.iterrows():
        pair = {str(r["group1"]), str(r["group2"])}
        if r["comparison"] == COMPARISON_REAL_HALVES:        # the reference: real vs real
            rows.append({**r.to_dict(), "variant": REAL_HALVES[1]})
        elif REAL in pair and len(pair - {REAL}) == 1:
            rows.append({**r.to_dict(), "variant": next(iter(pair - {REAL}))})
    cols = ["value", "pattern", "variant", "criterion", "headline", "pooled_estimate", "pooled_p",
            "pooled_power_at_reference_d", "pooled_ours", "n_counts", "levels", "significant_levels",
            "min_p_corrected", "min_p_holm_levels", "ours", "published_p", "published", "scale"]
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows)
    if "significant_holm_levels" not in frame:
        frame = holm_across_levels(frame, alpha=float(frame["alpha"].iat[0]))
    pooled = {}
    for r in ([] if mixed is None or mixed.empty else mixed.to_dict("records")):
        pooled[(r["value"], r["pattern"], str(r["group2"]), r["criterion"])] = r
    out = []
    for (value, pattern, variant, criterion), g in frame.groupby(["value", "pattern", "variant", "criterion"],
                                                                sort=True):
        pub = s1_published_p(value, variant, pattern)
        reference = variant == REAL_HALVES[1]
        n_sig = int(g["significant_holm_levels"].astype(bool).sum())
        m = pooled.get((value, pattern, variant, criterion))
        out.append({"value": value, "pattern": pattern, "variant": variant, "criterion": criterion,
                    "headline": bool(g["headline"].iat[0]),
                    "pooled_estimate": m["estimate"] if m else "", "pooled_p": m["p"] if m else "",
                    "pooled_power_at_reference_d": m["power_at_reference_d"] if m else "",
                    "pooled_ours": ("different" if m["p"] < float(m["alpha"]) else "not different") if m
                    else "not computed (see not_computed.tsv)",
                    "n_counts": m["n_counts"] if m else N_COUNTS_IMAGES,
                    "levels": " ".join(g["level"]),
                    "significant_levels": n_sig, "min_p_corrected": float(g["p_corrected"].min()),
                    "min_p_holm_levels": float(g["p_holm_levels"].min()),
                    "ours": "different" if n_sig else "not different",
                    "published_p": pub["published"] if pub else ("reference" if reference else "not reported"),
                    "published": ("different" if pub["significant"] else "not different") if pub
                    else ("reference" if reference else "not reported"),
                    "scale": scale_label})
    return pd.DataFrame(out, columns=cols)


def evaluate_s1(predictions: Mapping[str, Mapping[str, str]], specs: Mapping[str, Mapping],
                real_shard: str, real_index: str, out: Mapping[str, str], *, cfg: Mapping,
                scale_label: str, other_predictions: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
                headline_criterion: str | None = None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """S1's evaluation: real test slices vs the images of each FastGAN variant (A, B).

    * per image: mean counts (MC) and left/right ratio (LR) of the max-normalised slice;
    * per pattern, levels pooled as S1 pooled them: a mixed model real vs A vs B with a random
      intercept per real subject (:func:`s1_mixed_tests`; each generated image its own unit),
      with the power for the reference effect at these units (``mixed``), and one verdict per
      published finding (:func:`s1_verdicts`, ``verdicts``);
    * per (level, pattern): one-way ANOVA real vs A vs B of MC and LR (sources present at
      that level), with its power (:func:`spectsynth.stats.anova_sensitivity`: observed
      Cohen's f, the smallest f detectable at ``cfg['anova_power']``), post-hoc comparisons
      (``cfg['posthoc']``, against ``posthoc_reference``) and S1's published p beside each;
    * the reference a "not different from real" is read against: the real test set split in
      two halves by subject (:func:`split_subjects_in_halves`, ``seed``) through the same
      mixed model, ANOVA and post-hoc (``comparison`` = :data:`COMPARISON_REAL_HALVES`), only
      where each half holds :data:`MIN_REFERENCE_SUBJECTS` subjects (else not computed);
    * the per-level post-hoc p-values Holm-corrected across the levels of one claim
      (:func:`holm_across_levels`);
    * the same tests for the checkpoints picked by the other selection criteria
      (``other_predictions``: criterion -> experiment -> files; ``headline`` false), so a
      reader sees whether the finding depends on how the epoch was chosen;
    * box plots with S1's significance marks; pixel-wise mean and SD maps per source, level
      and pattern (groups of at least two images) with their average pixel-wise SD (headline).

    ``out``: ``images``, ``anova``, ``posthoc``, ``average_sd``, ``boxplot``, ``maps_mean``,
    ``maps_sd``, ``not_computed`` and, when given, ``summary`` (:func:`s1_summary`), ``mixed``
    and ``verdicts``.
    """
    from ...datasets import SliceShard

    notes: list[dict] = []
    headline_criterion = headline_criterion or "configured"
    index = read_index(real_index, experiment="S1 real test set")
    shard = SliceShard(real_shard)
    if len(shard) != len(index):
        raise EvaluationError(f"S1 test shard {real_shard} holds {len(shard)} slices but the index "
                              f"lists {len(index)}", experiment="S1", hint="Rebuild dataset s1")
    ch = shard.channel_index(["slice"])[0]
    real_imgs = shard_to_ras(shard.all_images()[:, ch])
    names = _source_names(specs)

    def generated(files_by_experiment: Mapping[str, Mapping[str, str]]) -> dict[str, tuple]:
        stacks = {}
        for name in sorted(files_by_experiment):
            arrays, table, _ = load_predictions(files_by_experiment[name]["h5"], files_by_experiment[name]["tsv"],
                                                experiment=name)
            stacks[names[name]] = (shard_to_ras(arrays["prediction"][:, 0]), table["level"].tolist(),
                                   table["pattern"].tolist())
        return stacks

    stacks = {REAL: (real_imgs, index["level"].tolist(), index["pattern"].tolist()), **generated(predictions)}
    parts = []
    for source, (imgs, lev, pat) in stacks.items():
        exp = "S1" if source == REAL else source
        with context(experiment=exp):
            part = with_columns(M.s1_image_table(imgs, levels=lev, patterns=pat, source=source), experiment=exp)
        part["criterion"] = CRITERION_NONE if source == REAL else headline_criterion
        parts.append(part)
    parts[0]["subject"] = index["subject"].astype(str).to_numpy()
    other_data = {}
    for criterion, files in sorted((other_predictions or {}).items()):
        alt = []
        for source, (imgs, lev, pat) in generated(files).items():
            with context(experiment=source):
                alt.append(with_columns(M.s1_image_table(imgs, levels=lev, patterns=pat, source=source),
                                        experiment=source).assign(criterion=criterion))
        other_data[criterion] = pd.concat(alt, ignore_index=True) if alt else None
    data = pd.concat(parts, ignore_index=True)
    sources = list(stacks)
    all_images = pd.concat([data, *(d for d in other_data.values() if d is not None)], ignore_index=True)
    all_images["subject"] = all_images["subject"].fillna("none (generated)")   # generated images have no subject
    halves = attempt(notes, "S1", "real-vs-real reference (real test set in two halves by subject)",
                      split_subjects_in_halves, index["subject"].astype(str).tolist(), seed=seed)
    all_images["real_half"] = 0
    if halves is not None:
        is_real = all_images["source"] == REAL
        all_images.loc[is_real, "real_half"] = all_images.loc[is_real, "subject"].map(halves).astype(int)
    write_table(all_images, out["images"], what="S1 per-image measures")
    data["condition"] = data["level"] + "\n" + data["pattern"]

    reference = cfg["posthoc_reference"]
    anova, post, comps = _s1_tests(data, sources, reference=reference, cfg=cfg, notes=notes,
                                   comparison=COMPARISON_GENERATED, criterion=headline_criterion, headline=True)
    for criterion, alt in other_data.items():
        if alt is None:
            continue
        alt_data = pd.concat([data[data["source"] == REAL], alt], ignore_index=True)
        a, p, _ = _s1_tests(alt_data, sources, reference=reference, cfg=cfg, notes=notes,
                            comparison=COMPARISON_GENERATED, criterion=criterion, headline=False)
        anova += a
        post += p
    gen_reasons: dict = {}
    mixed = s1_mixed_tests(data, sources, reference=REAL, cfg=cfg, notes=notes, comparison=COMPARISON_GENERATED,
                           criterion=headline_criterion, headline=True, reasons=gen_reasons)
    for criterion, alt in other_data.items():
        if alt is not None:
            mixed += s1_mixed_tests(pd.concat([data[data["source"] == REAL], alt], ignore_index=True), sources,
                                    reference=REAL, cfg=cfg, notes=notes, comparison=COMPARISON_GENERATED,
                                    criterion=criterion, headline=False)
    ref_reasons: dict = {}
    if halves is not None:
        real = data[data["source"] == REAL].copy()
        real["source"] = [REAL_HALVES[halves[s] - 1] for s in real["subject"]]
        a, p, _ = _s1_tests(real, list(REAL_HALVES), reference=REAL_HALVES[0], cfg=cfg, notes=notes,
                            comparison=COMPARISON_REAL_HALVES, criterion=CRITERION_NONE, headline=False,
                            min_subjects=MIN_REFERENCE_SUBJECTS)
        anova += a
        post += p
        mixed += s1_mixed_tests(real, list(REAL_HALVES), reference=REAL_HALVES[0], cfg=cfg, notes=notes,
                                comparison=COMPARISON_REAL_HALVES, criterion=CRITERION_NONE, headline=False,
                                min_units=MIN_REFERENCE_SUBJECTS, reasons=ref_reasons)
    else:
        why = (f"fewer than {MIN_REFERENCE_SUBJECTS} subjects per half: "
               + notes_reason(notes, "real-vs-real reference"))
        ref_reasons = {(v, p): why for v in MEASURES for p in PATTERNS}
    anova_t = pd.DataFrame(anova) if anova else pd.DataFrame(
        columns=["comparison", "criterion", "headline", "level", "pattern", "value"])
    post_t = pd.concat(post, ignore_index=True) if post else pd.DataFrame(
        columns=["level", "pattern", "value", "comparison", "criterion", "headline", "group1", "group2"])
    post_t = holm_across_levels(s1_published_columns(post_t, scale_label=scale_label),
                                alpha=float(cfg["anova_alpha"]))
    mixed_t = pd.DataFrame(mixed) if mixed else pd.DataFrame(columns=MIXED_COLUMNS)
    write_table(anova_t, out["anova"], what="S1 ANOVA")
    write_table(post_t, out["posthoc"], what="S1 post-hoc")
    summary = s1_summary(post_t, scale_label=scale_label, mixed=mixed_t)
    if "summary" in out:
        write_table(summary, out["summary"], what="S1 summary beside the published finding")
    if "mixed" in out:
        write_table(mixed_t, out["mixed"], what="S1 mixed models (subjects as units)")
    variants = [names[e] for e in specs]
    verdicts = s1_verdicts(mixed_t, variants=variants, criterion=headline_criterion,
                           alpha=float(cfg["anova_alpha"]), reference_reasons=ref_reasons,
                           generated_reasons=gen_reasons)
    if "verdicts" in out:
        write_table(verdicts, out["verdicts"], what="S1 verdicts")

    label = figure_label(scale_label, int(index["subject"].nunique()), list(specs.values()))
    order = [f"{lv}\n{p}" for lv in LEVELS for p in PATTERNS if f"{lv}\n{p}" in set(data["condition"])]
    fig = P.s1_whisker_grid(data, values={"mean_counts": "mean counts (MC)", "lr_ratio": "L/R ratio"},
                            x="condition", hue="source", subtitle=label,
                            comparisons={k: pd.concat(v, ignore_index=True) for k, v in comps.items() if v},
                            title=f"S1: real vs generated perfusion slices (selection: {headline_criterion})",
                            order=order, hue_order=sources)
    P.save_figure(fig, out["boxplot"], dpi=int(cfg["figure_dpi"]))

    maps, avg = {}, []
    for source, (imgs, lev, pat) in stacks.items():
        for lv in LEVELS:
            for p in PATTERNS:
                sel = [i for i, (a, b) in enumerate(zip(lev, pat, strict=True)) if a == lv and b == p]
                if not sel:
                    continue
                with context(experiment="S1", subject=source):
                    res = attempt(notes, "S1", f"mean/SD map {source} {lv} {p}", M.mean_sd_maps,
                                   imgs[sel], levels=[lv] * len(sel), patterns=[p] * len(sel))
                if res is None:
                    continue
                r = res[(lv, p)]
                maps[(f"{source} {lv}", p)] = r
                avg.append({"source": source, "level": lv, "pattern": p, "n": r["n"],
                            "average_sd": r["average_sd"]})
    write_table(pd.DataFrame(avg, columns=["source", "level", "pattern", "n", "average_sd"]),
                out["average_sd"], what="S1 average pixel-wise SD")
    rows = [f"{s} {lv}" for s in sources for lv in LEVELS if any(k[0] == f"{s} {lv}" for k in maps)]
    for key, stat in (("maps_mean", "mean"), ("maps_sd", "sd")):
        title = f"S1: pixel-wise {stat.upper() if stat == 'sd' else stat} maps per source, level and pattern"
        if maps:
            fig = P.map_grid({k: v[stat] for k, v in maps.items()}, levels=rows, patterns=list(PATTERNS),
                             subtitle=label, title=title, convention=cfg["display_convention"],
                             colorbar_label=f"pixel-wise {stat} (max-normalised counts)")
        else:
            fig = message_figure("No condition holds two or more images of one source; pixel-wise "
                                  "mean and SD maps need at least two (see not_computed.tsv).",
                                  label, title)
        P.save_figure(fig, out[key], dpi=int(cfg["figure_dpi"]))
    write_table(notes_frame(notes), out["not_computed"], what="S1 statistics not computed")
    return {"images": all_images, "anova": anova_t, "posthoc": post_t, "summary": summary, "mixed": mixed_t,
            "verdicts": verdicts}


# ----------------------------------------------------------------------------- entry points
def run(inputs: Mapping, output: Mapping, params: Mapping, wildcards: Mapping) -> None:
    """The evaluation rule's entry point (workflow/scripts/evaluate_study.py): rule inputs, outputs,
    the study's evaluation params and the wildcards, as plain mappings."""

    exps = params["experiments"]
    files = {e: {"h5": inputs[f"{e}_h5"], "tsv": inputs[f"{e}_tsv"]} for e in exps}
    configured = {params["specs"][e]["selection_criterion"] for e in exps}
    headline = configured.pop() if len(configured) == 1 else None
    other = {c: {e: {"h5": inputs[f"{e}__{c}_h5"], "tsv": inputs[f"{e}__{c}_tsv"]} for e in exps}
             for c in params["criteria"] if c != headline}
    evaluate_s1(files, params["specs"], inputs["real_test"], inputs["real_index"], output, cfg=params["cfg"],
                scale_label=params["scale_label"], other_predictions=other,
                headline_criterion=headline or "configured per experiment", seed=params["seed"])



def reading_packet(experiment: str, inputs: Mapping, *, out_dir: str, key_path: str, cfg: Mapping,
                   seed: int = 0, convention: str = "radiological") -> dict:
    """Generated images read against the real test slices of the dataset (conditions level and
    pattern in the key): :func:`spectsynth.reading.reading_packet`."""
    from ...datasets import SliceShard
    from ...evaluate import shard_to_ras
    from ...infer import load_predictions, read_index
    from ...reading import reading_packet

    arrays, table, _ = load_predictions(inputs["h5"], inputs["tsv"], experiment=experiment)
    generated = shard_to_ras(arrays["prediction"][:, 0])
    index = read_index(inputs["real_index"], experiment=experiment)
    shard = SliceShard(inputs["real_test"])
    real = shard_to_ras(shard.all_images()[:, shard.channel_index(["slice"])[0]])
    n = cfg.get("n_per_source")
    n = None if n is None else min(int(n), len(real), len(generated))
    return reading_packet(
        list(real), list(generated), out_dir=out_dir, key_path=key_path, experiment=experiment, seed=seed,
        n_per_source=n, convention=convention, score_scale=int(cfg["score_scale"]),
        footer=f"reading packet {experiment}",
        real_ids=[f"sub-{s} slice {z}" for s, z in zip(index["subject"], index["slice_index"], strict=True)],
        generated_ids=[f"sample {k}" for k in table["sample"]],
        real_conditions=[f"{lv} {p}" for lv, p in zip(index["level"], index["pattern"], strict=True)],
        generated_conditions=[f"{lv} {p}" for lv, p in zip(table["level"], table["pattern"], strict=True)])


