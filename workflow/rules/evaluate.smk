# Evaluation: the studies' metrics, statistics and figures from the prediction files
# (spectsynth.evaluate). One rule per study; a study is evaluated only when at least one of
# its experiments is enabled. Statistics that the data cannot support (too few samples, an
# empty group) are listed with the reason in not_computed.tsv, never written as NaN.
#
# Needs from common.smk: OUT, SUBJECTS; from datasets.smk: dataset_shards; from train.smk:
# EXPERIMENTS; from infer.smk: the prediction files.
from spectsynth.evaluate import study_experiments

EVAL = f"{OUT}/evaluate"
EVAL_CFG = config["evaluate"]
SCALE_LABEL = config["report"]["scale_label"]
EVAL_S2 = {
    "slice_metrics": f"{EVAL}/s2/slice_metrics.tsv",
    "ttests": f"{EVAL}/s2/ttests.tsv",
    "table4": f"{EVAL}/s2/table4.tsv",
    "published": f"{EVAL}/s2/published.tsv",
    "violin": f"{EVAL}/s2/violin_metrics.png",
    "not_computed": f"{EVAL}/s2/not_computed.tsv",
}
EVAL_S3 = {
    "slice_metrics": f"{EVAL}/s3/{{experiment}}/slice_metrics.tsv",
    "roi_means": f"{EVAL}/s3/{{experiment}}/roi_means.tsv",
    "summary": f"{EVAL}/s3/{{experiment}}/summary.tsv",
    "ttest": f"{EVAL}/s3/{{experiment}}/ttests.tsv",
    "regression": f"{EVAL}/s3/{{experiment}}/regression.tsv",
    "published": f"{EVAL}/s3/{{experiment}}/published.tsv",
    "scatter": f"{EVAL}/s3/{{experiment}}/scatter_fits.png",
    "not_computed": f"{EVAL}/s3/{{experiment}}/not_computed.tsv",
}
EVAL_S0 = {
    "asp": f"{EVAL}/s0/{{experiment}}/asp.tsv",
    "asp_summary": f"{EVAL}/s0/{{experiment}}/asp_summary.tsv",
    "dice": f"{EVAL}/s0/{{experiment}}/dice.tsv",
    "dice_summary": f"{EVAL}/s0/{{experiment}}/dice_summary.tsv",
    "sbr": f"{EVAL}/s0/{{experiment}}/sbr.tsv",
    "sbr_error": f"{EVAL}/s0/{{experiment}}/sbr_error.tsv",
    "bland_altman": f"{EVAL}/s0/{{experiment}}/bland_altman.tsv",
    "bland_altman_plot": f"{EVAL}/s0/{{experiment}}/bland_altman.png",
    "examples": f"{EVAL}/s0/{{experiment}}/examples.png",
    "summary": f"{EVAL}/s0/{{experiment}}/summary.tsv",
    "sbr_cnn": f"{EVAL}/s0/{{experiment}}/sbr_cnn.tsv",
    "sbr_cnn_error": f"{EVAL}/s0/{{experiment}}/sbr_cnn_error.tsv",
    "sbr_cnn_plot": f"{EVAL}/s0/{{experiment}}/sbr_cnn.png",
    "not_computed": f"{EVAL}/s0/{{experiment}}/not_computed.tsv",
}
EVAL_S1 = {
    "images": f"{EVAL}/s1/image_measures.tsv",
    "anova": f"{EVAL}/s1/anova.tsv",
    "posthoc": f"{EVAL}/s1/posthoc.tsv",
    "summary": f"{EVAL}/s1/summary.tsv",
    "average_sd": f"{EVAL}/s1/average_sd.tsv",
    "boxplot": f"{EVAL}/s1/boxplot_mc_lr.png",
    "maps_mean": f"{EVAL}/s1/maps_mean.png",
    "maps_sd": f"{EVAL}/s1/maps_sd.png",
    "not_computed": f"{EVAL}/s1/not_computed.tsv",
}

study_predictions = lambda study: {
    f"{e}_{ext}": f"{OUT}/predictions/{e}/predictions.{ext}"
    for e in study_experiments(EXPERIMENTS, study)
    for ext in ("h5", "tsv")
}
# S1 under every selection criterion: the headline predictions (best.pt) for the configured
# criterion, predict_criterion's (best-<criterion>.pt) for the others.
s1_criterion_predictions = lambda: {
    f"{e}__{c}_{ext}": (
        f"{OUT}/predictions/{e}/predictions.{ext}"
        if c == EXPERIMENTS[e]["selection_criterion"]
        else f"{OUT}/predictions/{e}/criterion-{c}/predictions.{ext}"
    )
    for e in study_experiments(EXPERIMENTS, "S1")
    for c in GAN_CRITERIA
    for ext in ("h5", "tsv")
}
study_specs = lambda study: {
    e: EXPERIMENTS[e] for e in study_experiments(EXPERIMENTS, study)
}
# The training split of each dataset a study's experiments read: the baselines (S2's per-pixel
# linear map, S3's null model) and S3's calibration are fitted on it, never on the test split.
study_train_shards = lambda study: {
    f"{d}_{k}": dataset_shards(d)[s]
    for d in sorted(
        {EXPERIMENTS[e]["dataset"] for e in study_experiments(EXPERIMENTS, study)}
    )
    for k, s in (("train", "train"), ("index", "index"))
}
study_epochs = lambda study: ", ".join(
    f"{e}: {EXPERIMENTS[e]['epochs']}" for e in study_experiments(EXPERIMENTS, study)
)

evaluate_targets = lambda: (
    [
        p.format(experiment=e)
        for e in study_experiments(EXPERIMENTS, "S0")
        for p in EVAL_S0.values()
    ]
    + (list(EVAL_S1.values()) if study_experiments(EXPERIMENTS, "S1") else [])
    + (list(EVAL_S2.values()) if study_experiments(EXPERIMENTS, "S2") else [])
    + [
        p.format(experiment=e)
        for e in study_experiments(EXPERIMENTS, "S3")
        for p in EVAL_S3.values()
    ]
    + clinical_targets()  # clinical.smk
)


rule evaluate_s2:
    input:
        unpack(lambda wc: study_predictions("S2")),
        unpack(lambda wc: study_train_shards("S2")),
    output:
        slice_metrics=report(
            EVAL_S2["slice_metrics"],
            caption="../report/evaluate_s2.rst",
            category="7. Results S2",
            subcategory="Tables",
            labels={"table": "per-slice RMSE, SSIM, PSNR"},
        ),
        ttests=report(
            EVAL_S2["ttests"],
            caption="../report/evaluate_s2.rst",
            category="7. Results S2",
            subcategory="Statistics",
            labels={"table": "paired t-tests"},
        ),
        table4=report(
            EVAL_S2["table4"],
            caption="../report/evaluate_s2.rst",
            category="7. Results S2",
            subcategory="Tables",
            labels={"table": "Table 4 (mean, CV) with baselines and published rows"},
        ),
        published=report(
            EVAL_S2["published"],
            caption="../report/evaluate_s2.rst",
            category="7. Results S2",
            subcategory="Tables",
            labels={"table": "ours next to the published values"},
        ),
        violin=report(
            EVAL_S2["violin"],
            caption="../report/evaluate_s2.rst",
            category="7. Results S2",
            subcategory="Figures",
            labels={"figure": "violin plots per metric, with baselines"},
        ),
        not_computed=report(
            EVAL_S2["not_computed"],
            caption="../report/evaluate_not_computed.rst",
            category="7. Results S2",
            subcategory="Statistics",
            labels={"table": "statistics not computed"},
        ),
    log:
        f"{OUT}/logs/evaluate_s2/evaluate_s2.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        experiments=lambda wc: study_experiments(EXPERIMENTS, "S2"),
        datasets=lambda wc: sorted(
            {EXPERIMENTS[e]["dataset"] for e in study_experiments(EXPERIMENTS, "S2")}
        ),
        specs=lambda wc: study_specs("S2"),
        epochs=lambda wc: study_epochs("S2"),
        n_cohort=len(SUBJECTS),
        cfg=EVAL_CFG,
        scale_label=SCALE_LABEL,
    script:
        "../scripts/evaluate_s2.py"


rule evaluate_s3:
    input:
        h5=f"{OUT}/predictions/{{experiment}}/predictions.h5",
        tsv=f"{OUT}/predictions/{{experiment}}/predictions.tsv",
        train=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["train"],
        index=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["index"],
        labels=[
            f"{OUT}/sub-{s}/anat/sub-{s}_desc-territories_dseg.nii.gz"
            for s in SUBJECTS
        ],
    output:
        slice_metrics=report(
            EVAL_S3["slice_metrics"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "per-slice metrics and CBF means",
            },
        ),
        roi_means=report(
            EVAL_S3["roi_means"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "atlas ROI means"},
        ),
        summary=report(
            EVAL_S3["summary"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "summary (mean ± sd)"},
        ),
        ttest=report(
            EVAL_S3["ttest"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "paired t-tests against the baselines",
            },
        ),
        regression=report(
            EVAL_S3["regression"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "regressions and Pearson r",
            },
        ),
        published=report(
            EVAL_S3["published"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "ours next to the published values",
            },
        ),
        scatter=report(
            EVAL_S3["scatter"],
            caption="../report/evaluate_s3.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "scatter plots with fits"},
        ),
        not_computed=report(
            EVAL_S3["not_computed"],
            caption="../report/evaluate_not_computed.rst",
            category="8. Results S3",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "statistics not computed"},
        ),
    log:
        f"{OUT}/logs/evaluate_s3/{{experiment}}.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wc: EXPERIMENTS[wc.experiment],
        epochs=lambda wc: EXPERIMENTS[wc.experiment]["epochs"],
        subjects=SUBJECTS,
        n_cohort=len(SUBJECTS),
        cfg=EVAL_CFG,
        scale_label=SCALE_LABEL,
    script:
        "../scripts/evaluate_s3.py"


rule evaluate_s1:
    input:
        unpack(lambda wc: study_predictions("S1")),
        unpack(lambda wc: s1_criterion_predictions()),
        real_test=dataset_shards("s1")["test"],
        real_index=dataset_shards("s1")["index"],
    output:
        images=report(
            EVAL_S1["images"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Tables",
            labels={"table": "MC and L/R ratio per image"},
        ),
        anova=report(
            EVAL_S1["anova"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Statistics",
            labels={"table": "one-way ANOVA"},
        ),
        posthoc=report(
            EVAL_S1["posthoc"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Statistics",
            labels={"table": "post-hoc comparisons"},
        ),
        summary=report(
            EVAL_S1["summary"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Tables",
            labels={"table": "summary beside the published finding"},
        ),
        average_sd=report(
            EVAL_S1["average_sd"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Tables",
            labels={"table": "average pixel-wise SD"},
        ),
        boxplot=report(
            EVAL_S1["boxplot"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Figures",
            labels={"figure": "MC and L/R box plots"},
        ),
        maps_mean=report(
            EVAL_S1["maps_mean"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Figures",
            labels={"figure": "pixel-wise mean maps"},
        ),
        maps_sd=report(
            EVAL_S1["maps_sd"],
            caption="../report/evaluate_s1.rst",
            category="6. Results S1",
            subcategory="Figures",
            labels={"figure": "pixel-wise SD maps"},
        ),
        not_computed=report(
            EVAL_S1["not_computed"],
            caption="../report/evaluate_not_computed.rst",
            category="6. Results S1",
            subcategory="Statistics",
            labels={"table": "statistics not computed"},
        ),
    log:
        f"{OUT}/logs/evaluate_s1/evaluate_s1.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        experiments=lambda wc: study_experiments(EXPERIMENTS, "S1"),
        specs=lambda wc: study_specs("S1"),
        epochs=lambda wc: study_epochs("S1"),
        criteria=list(GAN_CRITERIA),
        selection=lambda wc: ", ".join(
            f"{e}: {EXPERIMENTS[e]['selection_criterion']}"
            for e in study_experiments(EXPERIMENTS, "S1")
        ),
        n_cohort=len(SUBJECTS),
        cfg=EVAL_CFG,
        scale_label=SCALE_LABEL,
        seed=config["seed"],
    script:
        "../scripts/evaluate_s1.py"


rule evaluate_s0:
    input:
        h5=f"{OUT}/predictions/{{experiment}}/predictions.h5",
        tsv=f"{OUT}/predictions/{{experiment}}/predictions.tsv",
        regressor=f"{OUT}/experiments/sbr_regressor/best.pt",
    output:
        asp=report(
            EVAL_S0["asp"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "ASP per slice and side"},
        ),
        asp_summary=report(
            EVAL_S0["asp_summary"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "ASP summary"},
        ),
        dice=report(
            EVAL_S0["dice"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "Dice per slice and side"},
        ),
        dice_summary=report(
            EVAL_S0["dice_summary"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "Dice summary"},
        ),
        sbr=report(
            EVAL_S0["sbr"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "slice SBR, prediction vs original",
            },
        ),
        sbr_error=report(
            EVAL_S0["sbr_error"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "fraction under SBR error thresholds",
            },
        ),
        bland_altman=report(
            EVAL_S0["bland_altman"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "Bland-Altman statistics"},
        ),
        bland_altman_plot=report(
            EVAL_S0["bland_altman_plot"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "Bland-Altman plot"},
        ),
        examples=report(
            EVAL_S0["examples"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "example test slices"},
        ),
        summary=report(
            EVAL_S0["summary"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "summary beside the published values",
            },
        ),
        sbr_cnn=report(
            EVAL_S0["sbr_cnn"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "SBR read by the regression CNN per case and region",
            },
        ),
        sbr_cnn_error=report(
            EVAL_S0["sbr_cnn_error"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "fraction under SBR error thresholds (regression CNN)",
            },
        ),
        sbr_cnn_plot=report(
            EVAL_S0["sbr_cnn_plot"],
            caption="../report/evaluate_s0.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "regression-CNN SBR vs known SBR",
            },
        ),
        not_computed=report(
            EVAL_S0["not_computed"],
            caption="../report/evaluate_not_computed.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "statistics not computed"},
        ),
    log:
        f"{OUT}/logs/evaluate_s0/{{experiment}}.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wc: EXPERIMENTS[wc.experiment],
        epochs=lambda wc: EXPERIMENTS[wc.experiment]["epochs"],
        n_cohort=len(SUBJECTS),
        cfg=EVAL_CFG,
        scale_label=SCALE_LABEL,
    script:
        "../scripts/evaluate_s0.py"
