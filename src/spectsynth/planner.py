"""``spectsynth plan``: every enabled experiment's dataset design, without running anything.

The counting is :mod:`spectsynth.design`'s (the dataset builder follows the same function, so
the plan cannot drift from what is built); this module adds what only the planner needs: the
cohort's subject list from the configured input source (demo labels, or the BIDS/DICOM folders
found, no image read) and the text table.  It lives apart from :mod:`spectsynth.design` so that
the dataset rules' environments need neither pybids nor the DICOM tools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .design import SPLITS, experiment_counts
from .errors import ConfigError
from .labels import PATTERNS


def cohort_subjects(cfg: Mapping) -> list[str]:
    """The subject list the workflow would use (demo labels, or the BIDS/DICOM folders found;
    no image is read)."""
    inputs = cfg["inputs"]
    source = inputs["source"]
    if source == "demo":
        from .inputs.demo import subject_labels

        return subject_labels(int(inputs["demo"]["n_subjects"]))
    if source == "bids":
        from .inputs import bids

        b = inputs["bids"]
        if not b["root"]:
            raise ConfigError("inputs.source is 'bids' but inputs.bids.root is not set")
        return [u.label for u in bids.discover(b["root"], b["participant_label"], b["session"], b["exclude"])]
    from .inputs import dicom

    d = inputs["dicom"]
    if not d["root"]:
        raise ConfigError("inputs.source is 'dicom' but inputs.dicom.root is not set")
    return sorted(dicom.discover(d["root"], d["participant_label"]))


def plan(cfg: Mapping, subjects: Sequence[str] | None = None) -> dict[str, Any]:
    """Every enabled experiment's dataset design: ``{"subjects", "designs": {dataset: design},
    "experiments": {experiment: {"dataset", "levels"}}}``."""
    from .experiments import expand_experiments
    from .studies import dataset_design

    subjects = list(cohort_subjects(cfg) if subjects is None else subjects)
    exps = expand_experiments(dict(cfg))
    used = sorted({e["dataset"] for e in exps.values()})
    designs = {d: dataset_design(cfg, d, subjects) for d in used}
    experiments = {name: {"dataset": e["dataset"],
                          "levels": list((e.get("condition") or {}).get("levels") or [])}
                   for name, e in exps.items()}
    return {"subjects": subjects, "designs": designs, "experiments": experiments}



def format_plan(p: Mapping[str, Any], title: str = "") -> str:
    """The plan as text: per dataset, subjects and images per split and condition; per experiment,
    images per split."""
    lines = [title] if title else []
    lines.append(f"cohort: {len(p['subjects'])} subjects")
    for name, d in p["designs"].items():
        lines.append("")
        lines.append(f"dataset {name} ({d.study})")
        for note in d.notes:
            lines.append(f"  {note}")
        exp = d.expected
        if d.cell_targets:
            lines.append(f"  {'split':<6} {'subjects':>8}  {'level':<5} " + " ".join(f"{p:>10}" for p in PATTERNS)
                         + f" {'total':>7}")
            for split in SPLITS:
                for lv in d.spec["levels"]:
                    cells = exp[(exp["split"] == split) & (exp["level"] == lv)].set_index("pattern")["images"]
                    vals = [int(cells.get(pt, 0)) for pt in PATTERNS]
                    lines.append(f"  {split:<6} {len(d.subjects[split]):>8}  {lv:<5} "
                                 + " ".join(f"{v:>10}" for v in vals) + f" {sum(vals):>7}")
                tot = exp[exp["split"] == split].groupby("pattern")["images"].sum()
                vals = [int(tot.get(pt, 0)) for pt in PATTERNS]
                lines.append(f"  {split:<6} {len(d.subjects[split]):>8}  {'all':<5} "
                             + " ".join(f"{v:>10}" for v in vals) + f" {sum(vals):>7}")
        else:
            cond = list(d.owner.condition_columns)
            head = f"  {'split':<6} {'subjects':>8} {'images':>7}"
            lines.append(head + ("  condition" if cond else ""))
            for _, r in exp.iterrows():
                extra = "  " + " ".join(f"{c} {r[c]}" for c in cond) if cond else ""
                lines.append(f"  {r['split']:<6} {len(d.subjects[r['split']]):>8} {int(r['images']):>7}{extra}")
    lines.append("")
    lines.append(f"{'experiment':<36} {'dataset':<12} " + " ".join(f"{s:>6}" for s in SPLITS))
    for name, e in p["experiments"].items():
        c = experiment_counts(p["designs"][e["dataset"]], e["levels"])
        lines.append(f"{name:<36} {e['dataset']:<12} " + " ".join(f"{int(c[s]):>6}" for s in SPLITS))
    return "\n".join(lines)
