# The clinical outputs S0 was aiming at (spectsynth.studies.s0.clinical), and blinded reading
# packets (spectsynth.reading) of every study that has a visual reading.
# s0_clinical: for every S0 experiment of the clinical task (model vae, trained on normal
# slices only), the patients' deficit maps against their predicted pseudo-normal, regional
# deficits with flags, and z-scores against a synthetic normal database drawn from the VAE next
# to those against the real (simulated) normal cohort; the mean normal of the training subjects
# is the baseline predicted normal beside the model's (deficit_summary). reading_packet: for
# every experiment of a study with a reading (Study.reading; S1: real and generated slices
# shuffled into numbered PNGs with a scoring sheet; S3: the open and blind similarity packets);
# the key is written to a separate folder (reading/<experiment>/key), so the packet folder can
# be handed out as is.
#
# Needs from common.smk: OUT, SUBJECTS, CTX, EXPERIMENTS, STUDIES, EVAL_CFG, SCALE_LABEL, TARGETS,
# EXPERIMENT_FILES, PREDICTION_FILES.
from spectsynth.studies.s0 import STUDY as S0_STUDY

CLIN = S0_STUDY.clinical_paths(OUT)
READING = {
    "packet": f"{OUT}/reading/{{experiment}}/packet",
    "key": f"{OUT}/reading/{{experiment}}/key/key.csv",
}
READING_SCORES = {
    name: f"{OUT}/reading/{{experiment}}/scores/reading_{name}.tsv"
    for name in ("summary", "comparison", "agreement")
}
FILLED_SHEETS = config["reading_scores"]
READING_STUDIES = [s for s in STUDIES.values() if s.reading]
reading_experiments = lambda: [
    e for s in READING_STUDIES for e in CTX.experiments_of(s.name)
]
TARGETS.append(
    lambda: [
        p.format(experiment=e)
        for e in S0_STUDY.clinical_experiments(CTX)
        for p in CLIN.values()
    ]
    + [p.format(experiment=e) for e in reading_experiments() for p in READING.values()]
    + [
        p.format(experiment=e)
        for e in reading_experiments()
        if e in FILLED_SHEETS
        for p in READING_SCORES.values()
    ]
)
# The predictions, and what the study reads them against (S1: the real test slices).
reading_inputs = lambda wc: STUDIES[EXPERIMENTS[wc.experiment]["study"]].reading_inputs(
    CTX, wc
)
S0_SHARDS = CTX.shards(S0_STUDY.key)


rule s0_clinical:
    input:
        h5=PREDICTION_FILES.h5,
        tsv=PREDICTION_FILES.tsv,
        best=EXPERIMENT_FILES.best,
        train=S0_SHARDS["train"],
        val=S0_SHARDS["val"],
        index=S0_SHARDS["index"],
        subject_files=lambda wc: [
            f
            for d in S0_STUDY.clinical_subject_files(CTX).values()
            for f in d.values()
        ],
    output:
        **study_outputs(S0_STUDY, S0_STUDY.clinical),
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
        subject_files=lambda wc: S0_STUDY.clinical_subject_files(CTX),
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
    benchmark:
        f"{OUT}/benchmarks/reading_packet/{{experiment}}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        study=lambda wc: EXPERIMENTS[wc.experiment]["study"],
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
    benchmark:
        f"{OUT}/benchmarks/score_reading/{{experiment}}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/score_reading.py"
