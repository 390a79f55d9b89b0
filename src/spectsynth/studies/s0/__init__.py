"""S0: a patient's pseudo-normal DaTscan from a VAE (Dudasova & Trnka).

Two tasks from the same dataset ``s0`` (one slice per degraded DaT volume, paired with the
undegraded original of the same MRI): ``restoration`` (conditional VAE, damaged -> original)
and ``clinical`` (VAE trained on normal slices, whose outputs are the clinical ones: deficit
maps against the predicted normal, regional deficits, z-scores against a synthetic normal
database; :mod:`.clinical`). Evaluated per experiment, with the damaged input as the baseline
and S0's binding-ratio regression CNN (:mod:`spectsynth.studies.s0.sbr_regressor`) reading the SBR of
the predicted slices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...artifacts import RegressorFiles, regressor_files
from ...errors import InputDataError
from ..base import Context, Output, Study, truth_table

DAT_PARAMS = ("pbr", "cbr", "slr", "affected_side", "design_set", "desc")
# Regions whose binding ratio S0's regression CNN reads from a slice (caudate/putamen, L/R).
SBR_REGIONS = ("caudate_L", "caudate_R", "putamen_L", "putamen_R")
SBR_PREFIX = "sbr_"            # index column of the damaged (input) volume's SBR: sbr_<region>
ORIG_SBR_PREFIX = "orig_sbr_"  # ... of the undegraded original it is paired with: orig_sbr_<region>
DESIGN_SETS = ("main", "validation")
# The task each family serves (an experiment's ``task``); the clinical outputs are the clinical
# task's (a VAE trained on normal slices only).
CLINICAL_TASK = "clinical"
TASKS = {"cvae": "restoration", "vae": CLINICAL_TASK}
# The binding-ratio regression CNN: trained once on the dataset, read by every evaluation.
REGRESSOR = "sbr_regressor"
# Index column: the axial slice chosen from the subject's striatum labels (never from the target).
ANAT_SLICE = "anat_slice"


def _o(path: str, label: tuple[str, str], caption: str = "evaluate_s0.rst", **kw) -> Output:
    return Output(path, caption, "{experiment}", label, **kw)


class S0(Study):
    name = "S0"
    key = "s0"
    rules = "rules.smk"              # its clinical outputs and its binding-ratio CNN
    families = ("vae", "cvae")
    # S0 gives no optimiser details: Adam 1e-3, batch 16, 300 epochs are the pipeline's choice.
    training_defaults = {"epochs": 300, "batch_size": 16, "lr": 1e-3, "betas": [0.9, 0.999],
                         "selection_metric": "ssim"}
    channels = ("damaged", "original")
    roles = ("damaged", "original")
    condition_columns = ("design_set",)
    report_category = "5. Results S0"
    per_experiment = True
    stamp = "asp"
    val_within_train = True            # S0's validation images: other degradations of the training MRIs
    evaluation_param_names = ("spec", "anatomy")
    evaluation = {
        "asp": _o("{experiment}/asp.tsv", ("table", "ASP per slice and side")),
        "asp_summary": _o("{experiment}/asp_summary.tsv", ("table", "ASP summary")),
        "dice": _o("{experiment}/dice.tsv", ("table", "Dice per slice and side")),
        "dice_summary": _o("{experiment}/dice_summary.tsv", ("table", "Dice summary")),
        "sbr": _o("{experiment}/sbr.tsv", ("table", "slice SBR, prediction vs original")),
        "sbr_error": _o("{experiment}/sbr_error.tsv", ("table", "fraction under SBR error thresholds")),
        "bland_altman": _o("{experiment}/bland_altman.tsv", ("table", "Bland-Altman statistics")),
        "bland_altman_plot": _o("{experiment}/bland_altman.png", ("figure", "Bland-Altman plot")),
        "examples": _o("{experiment}/examples.png", ("figure", "example test slices")),
        "summary": _o("{experiment}/summary.tsv", ("table", "summary beside the published values")),
        "verdicts": _o("{experiment}/verdicts.tsv", ("table", "verdicts on the published findings")),
        "sbr_cnn": _o("{experiment}/sbr_cnn.tsv", ("table", "SBR read by the regression CNN per case and region")),
        "sbr_cnn_error": _o("{experiment}/sbr_cnn_error.tsv",
                            ("table", "fraction under SBR error thresholds (regression CNN)")),
        "sbr_cnn_plot": _o("{experiment}/sbr_cnn.png", ("figure", "regression-CNN SBR vs known SBR")),
        "not_computed": _o("{experiment}/not_computed.tsv", ("table", "statistics not computed"),
                           "evaluate_not_computed.rst"),
    }
    # The clinical outputs (rule s0_clinical, experiments with model vae).
    clinical = {
        "deficit_maps": _o("{experiment}/clinical/deficit_maps", None, None, report=False, directory=True),
        "deficit_figure": _o("{experiment}/clinical/deficit_maps.png", ("figure", "deficit maps"), "s0_clinical.rst"),
        "regional_deficits": _o("{experiment}/clinical/regional_deficits.tsv", ("table", "regional deficits"),
                                "s0_clinical.rst"),
        "deficit_summary": _o("{experiment}/clinical/deficit_summary.tsv",
                              ("table", "deficits: model vs mean-normal baseline"), "s0_clinical.rst"),
        "normal_database": _o("{experiment}/clinical/normal_database.tsv", None, None, report=False),
        "zscores": _o("{experiment}/clinical/zscores.tsv", ("table", "z-scores (synthetic, real)"),
                      "s0_clinical.rst"),
        "database_agreement": _o("{experiment}/clinical/database_agreement.tsv",
                                 ("table", "normal databases compared"), "s0_clinical.rst"),
        "zscore_figure": _o("{experiment}/clinical/normal_database.png", ("figure", "normal databases, z-scores"),
                            "s0_clinical.rst"),
        "not_computed": _o("{experiment}/clinical/not_computed.tsv", ("table", "clinical outputs not computed"),
                           "evaluate_not_computed.rst"),
    }

    def expand(self, name: str, model: str, entry: Mapping, cfg: Mapping) -> list[tuple[str, dict]]:
        return [(name, {"dataset": self.key, "size": self.size(cfg, name), "input_channels": ["damaged"],
                        "target_channels": ["original"], "task": TASKS[model]})]

    # ------------------------------------------------------------------ datasets
    def subject_files(self, dataset: str, out: str, subject: str, sim: Mapping) -> dict[str, str]:
        from ...simulate import paths as sim_paths

        dat = sim_paths.dat_files(out, subject)
        return {"dat": dat["nifti"], "dat_truth": dat["truth"],
                "striatum": sim_paths.anatomy_files(out, subject)["striatum"]}

    def entries(self, dataset: str, subject: str, files: Mapping[str, str]) -> list[dict]:
        """One entry per degraded volume (damaged = that volume, original = its ``pair_index``).

        ``params`` (which become columns of the dataset index) hold the degradation parameters and
        the known regional binding ratios of both volumes: ``sbr_<region>`` of the damaged volume
        and ``orig_sbr_<region>`` of the original, for the :data:`SBR_REGIONS`.  They are the
        truth table's ``meas_sbr_*`` (the volumetric SBR measured on the simulated image with the
        subject's anatomical labels, occipital reference), not the phantom's ``true_sbr_*``: a
        reader, or a regression CNN trained to be one, can only recover what the image shows,
        after the camera's blur, partial-volume loss and noise, and the simulator calibrates the
        phantom so that these measured values sit at clinical levels.  A truth table without
        ``meas_sbr_*`` columns (an older simulator's) gives entries without them; the regression
        CNN and its evaluation then stop with a message naming the missing index columns.
        ``params["design_set"]`` (main or validation) decides the split (:meth:`record_split`).
        ``params["anat_slice"]`` is the axial slice the subject's striatum labels fill most, on
        the DaT grid (:mod:`.regions`): the slice :meth:`extract` cuts, chosen from the anatomy,
        never from the original (the target).
        """
        df = truth_table(files["dat_truth"], subject)
        anat_z = None
        if files.get("striatum"):
            from .regions import anatomical_slice, striatum_on_grid

            anat_z = anatomical_slice(striatum_on_grid(files["striatum"], files["dat"], subject=subject),
                                      subject=subject)
        by_index = {int(r["index"]): r for _, r in df.iterrows()}
        out = []
        for _, row in df.iterrows():
            if row["pattern"] == "normal":
                continue                      # the undegraded original itself
            params = {k: row[k] for k in DAT_PARAMS if k in row}
            if anat_z is not None:
                params[ANAT_SLICE] = anat_z
            original = by_index.get(int(row["pair_index"]))
            if original is None:
                raise InputDataError(f"volume {int(row['index'])} is paired with volume {int(row['pair_index'])}, "
                                     "which the truth table does not list", subject=subject,
                                     path=files["dat_truth"], hint="Rerun the simulation of this subject")
            for prefix, source in ((SBR_PREFIX, row), (ORIG_SBR_PREFIX, original)):
                for region in SBR_REGIONS:
                    col = f"meas_sbr_{region}"
                    if col in row and col in original:
                        params[f"{prefix}{region}"] = float(source[col])
            out.append({
                "subject": subject,
                "files": {"damaged": {"path": files["dat"], "volume": int(row["index"])},
                          "original": {"path": files["dat"], "volume": int(row["pair_index"])}},
                "levels": None, "pattern": "degraded", "space": "camera",
                "params": params,
            })
        return out

    def extract(self, rec: Mapping, vols: Mapping, base: Mapping, spec: Mapping):
        """``slices_per_volume`` slices around the subject's anatomical striatal slice, both
        channels divided by the damaged slice's background (computable from the input alone).

        The centre slice is ``anat_slice`` (the axial slice the subject's T1w striatum labels
        fill most, on the DaT grid, set by :meth:`entries`); a record without it (a hand-made
        one) falls back to the damaged input's striatal maximum. The original (the target)
        never chooses the slice."""
        import numpy as np

        from ...datasets import (
            axial_slice,
            background_level,
            gain_columns,
            level_range,
            normalise_gain_bias,
            resize_slice,
        )

        size, method, name = int(spec["size"]), spec["normalise"], spec.get("name", self.key)
        dam, orig = vols["damaged"], vols["original"]
        nz = base["n_z"]
        if base.get(ANAT_SLICE) is not None and str(base.get(ANAT_SLICE)) != "":
            zc = int(base[ANAT_SLICE])
            if not 0 <= zc < nz:
                raise InputDataError(f"the anatomical striatal slice {zc} is outside the DaT grid's 0..{nz - 1}",
                                     subject=str(base.get("subject", "")), path=str(base.get("source", "")),
                                     hint="Check the anatomy's striatum labels and the DaT grid")
        else:
            if "BG" in (rec.get("levels") or {}):
                z0, z1 = level_range(rec, "BG", nz, name)
            else:
                z0, z1 = 0, nz
            zc = z0 + int(np.argmax(dam[:, :, z0:z1].sum(axis=(0, 1))))
        n = int(spec["slices_per_volume"])
        zs = [z for z in range(zc - (n - 1) // 2, zc + n // 2 + 1) if 0 <= z < nz][:n]
        for z in zs:
            sd = resize_slice(axial_slice(dam, z), size)
            so = resize_slice(axial_slice(orig, z), size)
            ref = background_level(sd) if method == "background" else None
            gd = normalise_gain_bias(sd, method, reference=ref)
            go = normalise_gain_bias(so, method, reference=ref) if ref is not None else \
                normalise_gain_bias(so, method)
            yield np.stack([sd * gd[0] + gd[1], so * go[0] + go[1]]), \
                {**base, "level": "BG", "slice_index": z, **gain_columns(self.channels, [gd, go])}

    def design(self, design, spec: Mapping, n: Mapping[str, int], cfg: Mapping) -> list[dict]:
        """Images per split: the subjects' degradations of the split's design set (main or
        validation, simulate.dat.n_main / n_validation) x slices per volume."""
        from ...errors import ConfigError
        from ...simulate.config import resolve
        from ...simulate.design import dat_design

        within = bool(spec["split"].get("val_within_train"))
        sim = resolve(cfg.get("simulate") or {})
        degs = dat_design(sim["dat"], sim["seed"])[1:]
        per_set = {s: sum(d.design_set == s for d in degs) for s in DESIGN_SETS}
        sets = spec["design_sets"]
        if within and sets["val"] == sets["train"]:
            raise ConfigError(f"dataset {design.name}: with split.val_within_train, datasets.{self.key}.design_sets."
                              f"val ({sets['val']}) must differ from design_sets.train, or the validation images "
                              "would be the training images")
        spv = int(spec["slices_per_volume"])
        rows = [{"split": split, "design_set": sets[split], "images": n[split] * per_set[sets[split]] * spv}
                for split in ("train", "val", "test")]
        design.per_set = per_set
        design.notes.append(
            f"{per_set['main']} main and {per_set['validation']} validation degradations per MRI "
            f"(simulate.dat.n_main / n_validation), {spv} slice(s) per image pair; "
            + ("val = the training MRIs' " + sets["val"] + " degradations" if within else
               "val = separate MRIs"))
        return rows

    def record_split(self, design, rec: Mapping, split: str) -> str | None:
        from ...design import first_source

        params = rec.get("params") or {}
        dset = params.get("design_set")
        if dset not in DESIGN_SETS:
            raise InputDataError(
                f"dataset {design.name}: a DaT record has design_set {dset!r}, not one of {', '.join(DESIGN_SETS)}",
                subject=str(rec.get("subject", "")), path=first_source(rec),
                hint="S0's split needs each degradation's design set from the simulator's truth table "
                     "(column design_set); rerun simulate_dat for this subject")
        sets = design.spec["design_sets"]
        if split == "train":
            if dset == sets["train"]:
                return "train"
            if design.spec["split"].get("val_within_train") and dset == sets["val"]:
                return "val"
            return None
        return split if dset == sets[split] else None

    # ------------------------------------------------------------------ evaluation
    def regressor_files(self, out: str) -> RegressorFiles:
        """The regression CNN's folder and files (train_sbr_regressor's outputs)."""
        return regressor_files(out, REGRESSOR)

    def evaluation_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        """The predictions, the regression CNN, the training shard and index (the mean-normal and
        constant-SBR baselines) and every subject's striatum labels (slice SBR regions)."""
        shards = ctx.shards(self.key)
        return {**ctx.predictions(wildcards.experiment), "regressor": self.regressor_files(ctx.out).best,
                "train": shards["train"], "index": shards["index"],
                "anatomy": sorted(self.anatomy_files(ctx).values())}

    def evaluation_params(self, ctx: Context, wildcards) -> dict[str, Any]:
        return {"spec": ctx.experiments[wildcards.experiment], "anatomy": self.anatomy_files(ctx)}

    def anatomy_files(self, ctx: Context) -> dict[str, str]:
        """Per subject, the striatum labels (T1w grid) the slice-SBR regions are cut from."""
        from ...simulate import paths as sim_paths

        return {s: sim_paths.anatomy_files(ctx.out, s)["striatum"] for s in ctx.subjects}

    # ------------------------------------------------------------------ clinical outputs
    def clinical_experiments(self, ctx: Context) -> list[str]:
        return [e for e in ctx.experiments_of(self.name) if ctx.experiments[e].get("task") == CLINICAL_TASK]

    def clinical_paths(self, out: str) -> dict[str, str]:
        return {k: f"{out}/evaluate/{self.key}/{o.path}" for k, o in self.clinical.items()}

    def clinical_subject_files(self, ctx: Context) -> dict[str, dict[str, str]]:
        """Per subject: the T1w, labels and DaT stack the deficit maps are drawn from."""
        from ...simulate import paths as sim_paths

        out = {}
        for s in ctx.subjects:
            anat = sim_paths.anatomy_files(ctx.out, s)
            dat = sim_paths.dat_files(ctx.out, s)
            out[s] = {"t1w": sim_paths.t1w_file(ctx.out, s), "striatum": anat["striatum"],
                      "reference": anat["reference"], "brain": anat["brain"], "dat": dat["nifti"],
                      "dat_truth": dat["truth"]}
        return out


STUDY = S0()
