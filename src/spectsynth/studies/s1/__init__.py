"""S1: conditional FastGAN perfusion SPECT slices (Werner et al., Sci Rep 2022).

Variants A (conditions level x pattern, all three levels) and B (the cortex only, pattern as
condition) from one entry; dataset ``s1`` sampled to S1's Table 1 (slices per level and
pattern); evaluated once for all variants: mean counts and L/R ratio of real and generated
slices; per pattern, mixed models with the subject as unit (levels pooled, as S1) against a
real-vs-real reference, with their power and one verdict per published finding; per-level
one-way ANOVAs on images (descriptive); a blinded real-or-generated reading packet per experiment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...design import half_up
from ...errors import ConfigError, InputDataError
from ...labels import LEVELS, PATTERNS
from ...models.fastgan import GAN_CRITERIA
from ...splits import SPLITS
from ..base import Context, Output, Study, as_list, fail

VARIANTS = {"A": list(LEVELS), "B": ["COR"]}
# How a FastGAN checkpoint is selected is the family's (spectsynth.models.fastgan.GAN_CRITERIA):
# the Frechet distance of a feature network's embeddings, or the distance of S1's own tested
# quantities (mean counts, L/R ratio), which then decide S1's finding too; both are evaluated.
SELECTION_CRITERIA = GAN_CRITERIA


def _o(path: str, sub: str, label: tuple[str, str], caption: str = "evaluate_s1.rst") -> Output:
    return Output(path, caption, sub, label)


class S1(Study):
    name = "S1"
    key = "s1"
    families = ("fastgan",)
    # S1: Adam 2e-4, betas 0.9/0.999, 1000 epochs, batch 4.
    training_defaults = {"epochs": 1000, "batch_size": 4, "lr": 2e-4, "betas": [0.9, 0.999],
                         "selection_metric": "gan"}
    channels = ("slice", "inferior", "superior")
    roles = ("spect",)
    condition_columns = ("level", "pattern")
    report_category = "6. Results S1"
    per_experiment = False
    stamp = "images"
    reading = True
    evaluation_param_names = ("experiments", "specs", "criteria", "selection", "seed")
    evaluation = {
        "images": _o("image_measures.tsv", "Tables", ("table", "MC and L/R ratio per image")),
        "anova": _o("anova.tsv", "Statistics", ("table", "one-way ANOVA")),
        "posthoc": _o("posthoc.tsv", "Statistics", ("table", "post-hoc comparisons")),
        "summary": _o("summary.tsv", "Tables", ("table", "summary beside the published finding")),
        "mixed": _o("mixed_model.tsv", "Statistics", ("table", "mixed models, subjects as units")),
        "verdicts": _o("verdicts.tsv", "Verdicts", ("table", "verdicts on the published findings"),
                       "evaluate_s1_verdicts.rst"),
        "average_sd": _o("average_sd.tsv", "Tables", ("table", "average pixel-wise SD")),
        "boxplot": _o("boxplot_mc_lr.png", "Figures", ("figure", "MC and L/R box plots")),
        "maps_mean": _o("maps_mean.png", "Figures", ("figure", "pixel-wise mean maps")),
        "maps_sd": _o("maps_sd.png", "Figures", ("figure", "pixel-wise SD maps")),
        "not_computed": _o("not_computed.tsv", "Statistics", ("table", "statistics not computed"),
                           "evaluate_not_computed.rst"),
    }

    def expand(self, name: str, model: str, entry: Mapping, cfg: Mapping) -> list[tuple[str, dict]]:
        size = self.size(cfg, name)
        variants = as_list(entry.get("variants"), list(VARIANTS))
        bad = [v for v in variants if v not in VARIANTS]
        if bad or not variants:
            raise fail(name, f"unknown {self.name} variant(s) {bad}", "Use variants A and/or B")
        runs = []
        for v in variants:
            levels = VARIANTS[v]
            cond = {"variant": v, "levels": levels, "patterns": list(PATTERNS),
                    "use_level": v == "A", "n_cond": (len(LEVELS) if v == "A" else 0) + len(PATTERNS)}
            runs.append((f"{name}_{v}", {"dataset": self.key, "size": size, "input_channels": [],
                                         "target_channels": ["slice"], "condition": cond}))
        return runs

    # ------------------------------------------------------------------ datasets
    def resolve_dataset(self, spec: dict, name: str) -> None:
        """Check ``counts`` (level -> pattern -> slices) and make zero cells and
        ``exclude_conditions`` one thing: an excluded pair has no slices, a zero cell is excluded."""
        counts = spec.get("counts") or {}
        for lv in spec["levels"]:
            row = counts.get(lv)
            if not isinstance(row, Mapping):
                raise ConfigError(f"dataset {name}: datasets.{self.key}.counts has no row for level {lv}; give "
                                  f"{lv}: {{normal: N, unilateral: N, bilateral: N}}")
            for p in PATTERNS:
                v = row.get(p)
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ConfigError(f"dataset {name}: datasets.{self.key}.counts.{lv}.{p} = {v!r}; give a "
                                      "whole number of slices >= 0")
        scale = spec.get("counts_scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ConfigError(f"dataset {name}: datasets.{self.key}.counts_scale = {scale!r}; give a number > 0")
        excl = [tuple(c) for c in spec.get("exclude_conditions") or []]
        for lv, p in excl:
            if lv in counts and p in PATTERNS:
                counts[lv][p] = 0
        zero = [(lv, p) for lv in spec["levels"] for p in PATTERNS if counts[lv][p] == 0]
        spec["exclude_conditions"] = [list(c) for c in dict.fromkeys(excl + zero)]
        spec["counts"] = counts

    def check_dataset(self, table, spec: Mapping) -> None:
        from ...datasets import required_conditions

        train = table[table["split"] == "train"]
        have = set(zip(train["level"], train["pattern"]))
        missing = [c for c in required_conditions(spec) if c not in have]
        if missing:
            txt = ", ".join(f"{p} at {lv}" for lv, p in missing)
            raise ConfigError(
                f"dataset {spec['name']}: no training slices for {txt}; the conditional GAN cannot learn a "
                "condition it never sees. Add subjects with that pattern, or list the pair under "
                f"datasets.{self.key}.exclude_conditions (e.g. [[{missing[0][0]}, {missing[0][1]}]]), as S1's "
                "own data had no bilateral defects at the CER level")

    def subject_files(self, dataset: str, out: str, subject: str, sim: Mapping) -> dict[str, str]:
        from ...simulate import paths as sim_paths

        perf = sim_paths.perfusion_files(out, subject, sim)
        return {"perfusion": perf["nifti"], "perfusion_json": perf["json"], "perfusion_truth": perf["truth"]}

    def entries(self, dataset: str, subject: str, files: Mapping[str, str]) -> list[dict]:
        """One entry per simulated scan and level: S1 labels a slice by the pattern seen at its
        level (a unilateral MCA defect may leave the cerebellum normal)."""
        import json
        from pathlib import Path

        from ..base import truth_table

        df = truth_table(files["perfusion_truth"], subject)
        meta = json.loads(Path(files["perfusion_json"]).read_text())
        slices = meta.get("level_slices") or {}
        out = []
        for _, row in df.iterrows():
            for level in LEVELS:
                if level not in slices:
                    continue
                levels = {lv: (tuple(slices[lv]) if lv == level else None) for lv in LEVELS}
                out.append({
                    "subject": subject,
                    "files": {"spect": {"path": files["perfusion"], "volume": int(row["index"])}},
                    "levels": levels, "pattern": row.get(f"pattern_{level}", row["pattern"]),
                    "space": "camera",
                    "params": {"volume": int(row["index"]), "pattern_volume": row["pattern"]},
                })
        return out

    def extract(self, rec: Mapping, vols: Mapping, base: Mapping, spec: Mapping):
        """Per level, ``slices_per_level`` evenly spaced slices, each with its two neighbours as
        channels (S1's neighbour averaging), normalised to the slice maximum."""
        import numpy as np

        from ...datasets import (
            axial_slice,
            evenly,
            gain_columns,
            level_range,
            normalise_gain_bias,
            resize_slice,
        )

        pattern = rec.get("pattern")
        if pattern not in PATTERNS:
            raise InputDataError(f"pattern {pattern!r} is not one of {PATTERNS}", subject=base["subject"],
                                 path=base["source"], hint="Check the simulation truth table")
        size, method, name = int(spec["size"]), spec["normalise"], spec.get("name", self.key)
        vol = vols["spect"]
        nz = base["n_z"]
        for level in spec["levels"]:
            if level in (rec.get("levels") or {}) and rec["levels"][level] is None:
                continue            # this scan has no slice at that level (as S1's CER bilateral)
            z0, z1 = level_range(rec, level, nz, name)
            for z in evenly(z0, z1 - 1, int(spec["slices_per_level"])):
                chans, gains = [], []
                for zz in (z, max(z - 1, 0), min(z + 1, nz - 1)):
                    sl = resize_slice(axial_slice(vol, zz), size)
                    g, b = normalise_gain_bias(sl, method)
                    chans.append(sl * g + b)
                    gains.append((g, b))
                yield np.stack(chans), {**base, "level": level, "slice_index": z,
                                        **gain_columns(self.channels, gains)}

    def design(self, design, spec: Mapping, n: Mapping[str, int], cfg: Mapping) -> list[dict]:
        from ...simulate.config import resolve

        targets = s1_targets(spec, n)
        rows = [{"split": split, "level": lv, "pattern": p, "images": k}
                for split in ("train", "val", "test") for (lv, p), k in targets[split].items()]
        design.cell_targets = targets
        pf = resolve(cfg.get("simulate") or {})["perfusion"]
        design.notes.append(
            f"training split = datasets.{self.key}.counts x counts_scale {float(spec['counts_scale']):g}; "
            f"val/test = the same table x their subjects / training subjects; drawn from {pf['n_normal']} normal, "
            f"{pf['n_unilateral']} unilateral and {pf['n_bilateral']} bilateral simulated scans per MRI "
            f"({int(spec['slices_per_level'])} slice(s) per level and scan), labelled by the pattern seen "
            "at each level")
        return rows

    # ------------------------------------------------------------------ evaluation
    def criterion_predictions(self, ctx: Context, experiment: str, criterion: str) -> dict[str, str]:
        """The images of ``experiment`` under a selection criterion: the headline predictions
        (best.pt) for the configured one, predict_criterion's (best-<criterion>.pt) otherwise."""
        if criterion == ctx.experiments[experiment]["selection_criterion"]:
            return ctx.predictions(experiment)
        return ctx.predictions(experiment, criterion)

    def evaluation_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        files: dict[str, Any] = {}
        exps = ctx.experiments_of(self.name)
        for e in exps:
            files |= {f"{e}_{k}": v for k, v in ctx.predictions(e).items()}
        for e in exps:
            for c in SELECTION_CRITERIA:
                files |= {f"{e}__{c}_{k}": v for k, v in self.criterion_predictions(ctx, e, c).items()}
        sh = ctx.shards(self.key)
        return files | {"real_test": sh["test"], "real_index": sh["index"]}

    def evaluation_params(self, ctx: Context, wildcards) -> dict[str, Any]:
        exps = ctx.experiments_of(self.name)
        return {"experiments": exps, "specs": {e: ctx.experiments[e] for e in exps},
                "criteria": list(SELECTION_CRITERIA),
                "selection": ", ".join(f"{e}: {ctx.experiments[e]['selection_criterion']}" for e in exps),
                "seed": ctx.config["seed"]}

    def reading_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        sh = ctx.shards(self.key)
        return ctx.predictions(wildcards.experiment) | {"real_test": sh["test"], "real_index": sh["index"]}

def s1_targets(spec: Mapping, n_subjects: Mapping[str, int]) -> dict[str, dict[tuple[str, str], int]]:
    """Slices per (level, pattern) of each split (:mod:`spectsynth.design`: Table 1 x counts_scale for training, scaled by subjects for val and test)."""
    table = spec["counts"]
    scale = float(spec["counts_scale"])
    excl = {tuple(c) for c in spec.get("exclude_conditions") or []}
    n_train = int(n_subjects.get("train", 0))
    out: dict[str, dict[tuple[str, str], int]] = {}
    for split in SPLITS:
        cells = {}
        for lv in spec["levels"]:
            for p in PATTERNS:
                base = 0.0 if (lv, p) in excl else float(table[lv][p]) * scale
                if split == "train":
                    n = max(1, half_up(base)) if base > 0 and n_train else 0
                else:
                    n = half_up(base * n_subjects.get(split, 0) / n_train) if n_train else 0
                cells[(lv, p)] = n
        out[split] = cells
    return out


STUDY = S1()
