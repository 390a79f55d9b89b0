# The clinical outputs S0 was aiming at, and blinded reading packets (spectsynth.clinical).
# s0_clinical: for every S0 experiment with model vae (trained on normal slices only), the
# patients' deficit maps against their predicted pseudo-normal, regional deficits with flags,
# and z-scores against a synthetic normal database drawn from the VAE next to those against
# the real (simulated) normal cohort; the mean normal of the training subjects is the baseline
# predicted normal beside the model's (deficit_summary). reading_packet: for every S1 and S3
# experiment, real and generated slices shuffled into numbered PNGs with a scoring sheet; the key is written to a
# separate folder (reading/<experiment>/key), so the packet folder can be handed out as is.
#
# Needs from common.smk: OUT, SUBJECTS, dataset_shards; from train.smk: EXPERIMENTS; from
# evaluate.smk: EVAL, EVAL_CFG, SCALE_LABEL.
from spectsynth.simulate import paths as clin_paths

CLIN = {
    "deficit_maps": f"{EVAL}/s0/{{experiment}}/clinical/deficit_maps",
    "deficit_figure": f"{EVAL}/s0/{{experiment}}/clinical/deficit_maps.png",
    "regional_deficits": f"{EVAL}/s0/{{experiment}}/clinical/regional_deficits.tsv",
    "deficit_summary": f"{EVAL}/s0/{{experiment}}/clinical/deficit_summary.tsv",
    "normal_database": f"{EVAL}/s0/{{experiment}}/clinical/normal_database.tsv",
    "zscores": f"{EVAL}/s0/{{experiment}}/clinical/zscores.tsv",
    "database_agreement": f"{EVAL}/s0/{{experiment}}/clinical/database_agreement.tsv",
    "zscore_figure": f"{EVAL}/s0/{{experiment}}/clinical/normal_database.png",
    "not_computed": f"{EVAL}/s0/{{experiment}}/clinical/not_computed.tsv",
}
READING = {
    "packet": f"{OUT}/reading/{{experiment}}/packet",
    "key": f"{OUT}/reading/{{experiment}}/key/key.csv",
}
READING_SCORES = {
    name: f"{OUT}/reading/{{experiment}}/scores/reading_{name}.tsv"
    for name in ("summary", "comparison", "agreement")
}
FILLED_SHEETS = config["reading_scores"]
clinical_experiments = lambda: [
    e for e in study_experiments(EXPERIMENTS, "S0") if EXPERIMENTS[e]["model"] == "vae"
]
reading_experiments = lambda: study_experiments(EXPERIMENTS, "S1") + study_experiments(
    EXPERIMENTS, "S3"
)
clinical_targets = (
    lambda: [
        p.format(experiment=e) for e in clinical_experiments() for p in CLIN.values()
    ]
    + [p.format(experiment=e) for e in reading_experiments() for p in READING.values()]
    + [
        p.format(experiment=e)
        for e in reading_experiments()
        if e in FILLED_SHEETS
        for p in READING_SCORES.values()
    ]
)


# Per subject: the T1w, labels and DaT stack the deficit maps are drawn from.
clinical_subject_files = lambda: {
    s: {
        "t1w": clin_paths.t1w_file(OUT, s),
        "striatum": clin_paths.anatomy_files(OUT, s)["striatum"],
        "reference": clin_paths.anatomy_files(OUT, s)["reference"],
        "brain": clin_paths.anatomy_files(OUT, s)["brain"],
        "dat": clin_paths.dat_files(OUT, s)["nifti"],
        "dat_truth": clin_paths.dat_files(OUT, s)["truth"],
    }
    for s in SUBJECTS
}
# Predictions; for S1's generated images also the real test slices they are read against.
reading_inputs = lambda wc: {
    "h5": f"{OUT}/predictions/{wc.experiment}/predictions.h5",
    "tsv": f"{OUT}/predictions/{wc.experiment}/predictions.tsv",
} | (
    {
        "real_test": dataset_shards("s1")["test"],
        "real_index": dataset_shards("s1")["index"],
    }
    if EXPERIMENTS[wc.experiment]["study"] == "S1"
    else {}
)


rule s0_clinical:
    input:
        h5=f"{OUT}/predictions/{{experiment}}/predictions.h5",
        tsv=f"{OUT}/predictions/{{experiment}}/predictions.tsv",
        best=f"{OUT}/experiments/{{experiment}}/best.pt",
        train=dataset_shards("s0")["train"],
        val=dataset_shards("s0")["val"],
        index=dataset_shards("s0")["index"],
        subject_files=lambda wc: [
            f for d in clinical_subject_files().values() for f in d.values()
        ],
    output:
        deficit_maps=directory(CLIN["deficit_maps"]),
        deficit_figure=report(
            CLIN["deficit_figure"],
            caption="../report/s0_clinical.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "deficit maps"},
        ),
        regional_deficits=report(
            CLIN["regional_deficits"],
            caption="../report/s0_clinical.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "table": "regional deficits"},
        ),
        deficit_summary=report(
            CLIN["deficit_summary"],
            caption="../report/s0_clinical.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "deficits: model vs mean-normal baseline",
            },
        ),
        normal_database=CLIN["normal_database"],
        zscores=report(
            CLIN["zscores"],
            caption="../report/s0_clinical.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "z-scores (synthetic, real)",
            },
        ),
        database_agreement=report(
            CLIN["database_agreement"],
            caption="../report/s0_clinical.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "normal databases compared",
            },
        ),
        zscore_figure=report(
            CLIN["zscore_figure"],
            caption="../report/s0_clinical.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "normal databases, z-scores",
            },
        ),
        not_computed=report(
            CLIN["not_computed"],
            caption="../report/evaluate_not_computed.rst",
            category="5. Results S0",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "table": "clinical outputs not computed",
            },
        ),
    log:
        f"{OUT}/logs/s0_clinical/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/s0_clinical/{{experiment}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        subject_files=lambda wc: clinical_subject_files(),
        spec=lambda wc: EXPERIMENTS[wc.experiment],
        epochs=lambda wc: EXPERIMENTS[wc.experiment]["epochs"],
        n_cohort=len(SUBJECTS),
        cfg=EVAL_CFG,
        scale_label=SCALE_LABEL,
        seed=config["seed"],
    script:
        "../scripts/s0_clinical.py"


rule reading_packet:
    input:
        unpack(reading_inputs),
    output:
        packet=directory(READING["packet"]),
        key=READING["key"],
    log:
        f"{OUT}/logs/reading_packet/{{experiment}}.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        cfg=EVAL_CFG,
        seed=config["seed"],
    script:
        "../scripts/reading_packet.py"


rule score_reading:
    input:
        sheets=lambda wc: FILLED_SHEETS[wc.experiment],
        key=READING["key"],
    output:
        **{
            name: report(
                path,
                caption="../report/reading_scores.rst",
                category="9. Visual reading",
                subcategory="{experiment}",
                labels={"experiment": "{experiment}", "table": name},
            )
            for name, path in READING_SCORES.items()
        },
    log:
        f"{OUT}/logs/score_reading/{{experiment}}.log",
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/score_reading.py"
