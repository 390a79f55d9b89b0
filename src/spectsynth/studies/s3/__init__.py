"""S3: pix2pix 123I-IMP CBF SPECT -> 15O-water CBF PET (Ann Nucl Med 2025).

One run per entry on dataset ``s3``; evaluated per experiment: SSIM of the prediction and of
its baselines (SPECT as PET, the training mean PET) against the PET, atlas ROI means (absolute
and scale-free) and regressions with subject-level intervals beside the published ones, a
verdict on each published finding; and a visual similarity reading (open and blind).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base import Context, Output, Similarity, Study
from .published import PUBLISHED


def _o(path: str, label: tuple[str, str], caption: str = "evaluate_s3.rst") -> Output:
    return Output(path, caption, "{experiment}", label)


class S3(Study):
    name = "S3"
    key = "s3"
    families = ("pix2pix",)
    # S3 names no settings: S2's batch size and rate, the pix2pix reference's 200 epochs.
    training_defaults = {"epochs": 200, "batch_size": 8, "lr": 1e-4, "betas": [0.5, 0.999],
                         "selection_metric": "ssim"}
    # "brain": the T1w brain mask; it chooses the slices and masks the in-brain metrics, never a
    # model input (spectsynth.datasets.BRAIN_CHANNEL)
    channels = ("spect_cbf", "pet_cbf", "brain")
    roles = ("spect_cbf", "pet_cbf", "brain")
    condition_columns = ()
    report_category = "8. Results S3"
    per_experiment = True
    stamp = "slice_metrics"
    reading = True
    similarity_dataset = "s3"
    input_similarity = (Similarity("spect_cbf", "pet_cbf", "SPECT vs PET", PUBLISHED["ssim"]["input_vs_target"],
                                   "S3: SPECT-CBF vs PET-CBF, mean over test slices", band_low=0.75,
                                   band_high=0.83, band_source="S3 (Ann Nucl Med 2025)",
                                   band_note=f"S3 reports {PUBLISHED['ssim']['input_vs_target']:g} for its input"),)
    # S3's "input vs target" ROI line (SPECT on PET, vascular territories) measured on the data itself
    realism_roi = {"input": "spect_cbf", "target": "pet_cbf", "labels": "territories",
                   "published": next(r for r in PUBLISHED["regressions"] if r["label"] == "input vs target"),
                   "r_band": (0.70, 0.82), "source": "S3 (Ann Nucl Med 2025)"}
    evaluation_param_names = ("spec", "subjects")
    evaluation = {
        "slice_metrics": _o("{experiment}/slice_metrics.tsv", ("table", "per-slice metrics and CBF means")),
        "roi_means": _o("{experiment}/roi_means.tsv", ("table", "atlas ROI means")),
        "summary": _o("{experiment}/summary.tsv", ("table", "summary (mean ± sd)")),
        "ttest": _o("{experiment}/ttests.tsv", ("table", "paired t-tests against the baselines")),
        "regression": _o("{experiment}/regression.tsv", ("table", "regressions and Pearson r")),
        "published": _o("{experiment}/published.tsv", ("table", "ours next to the published values")),
        "scatter": _o("{experiment}/scatter_fits.png", ("figure", "scatter plots with fits")),
        "verdicts": _o("{experiment}/verdicts.tsv", ("table", "verdicts on the published findings"),
                       "evaluate_s3_verdicts.rst"),
        "not_computed": _o("{experiment}/not_computed.tsv", ("table", "statistics not computed"),
                           "evaluate_not_computed.rst"),
    }

    def expand(self, name: str, model: str, entry: Mapping, cfg: Mapping) -> list[tuple[str, dict]]:
        return [(name, {"dataset": self.key, "size": self.size(cfg, name), "input_channels": ["spect_cbf"],
                        "target_channels": ["pet_cbf"],
                        "loss": "l1+ssim" if entry.get("lambda_ssim") else "l1"})]

    def subject_files(self, dataset: str, out: str, subject: str, sim: Mapping) -> dict[str, str]:
        from ...simulate import paths as sim_paths

        scans = sim_paths.scans(out, subject, sim)   # registered by register_modality
        return {"spect_cbf": scans["cbf_spect"]["native"], "pet_cbf": scans["cbf_pet"]["native"],
                "brain": sim_paths.anatomy_files(out, subject)["brain"]}

    # ------------------------------------------------------------------ evaluation
    def evaluation_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        from ...simulate import paths as sim_paths

        spec = ctx.experiments[wildcards.experiment]
        sh = ctx.shards(spec["dataset"])
        return {**ctx.predictions(wildcards.experiment), "train": sh["train"], "index": sh["index"],
                "labels": [sim_paths.anatomy_files(ctx.out, s)["territories"] for s in ctx.subjects]}

    def evaluation_params(self, ctx: Context, wildcards) -> dict[str, Any]:
        return {"spec": ctx.experiments[wildcards.experiment], "subjects": list(ctx.subjects)}

    def reading_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        return ctx.predictions(wildcards.experiment)

STUDY = S3()
