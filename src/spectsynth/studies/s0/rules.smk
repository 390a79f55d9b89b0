# S0's own rules, included by the Snakefile's loop over the study registry (Study.rules).
#
# train_sbr_regressor: S0's binding-ratio regression CNN (spectsynth.studies.s0.sbr_regressor),
# trained on the S0 dataset's slices, whose SBR the simulator knows, and used by evaluate_s0 to
# read the binding ratios of the predicted slices (S0's "binding-ratio match"). Harness settings
# (device, threads, GPUs, memory, run time, seed, progress bar) come from `training:` and
# `compute:` as for train_model.
#
# s0_clinical: the clinical outputs S0 was aiming at (spectsynth.studies.s0.clinical), for every
# S0 experiment of the clinical task (model vae, trained on normal slices only): the patients'
# deficit maps against their predicted pseudo-normal, regional deficits with flags, and z-scores
# against a synthetic normal database drawn from the VAE next to those against the real
# (simulated) normal cohort; the mean normal of the training subjects is the baseline predicted
# normal beside the model's (deficit_summary).
#
# Lives with the study, so its script, environment and caption paths are absolute (common.smk:
# SCRIPTS, ENVS, CAPTIONS). Needs from common.smk: OUT, SUBJECTS, CTX, EXPERIMENTS, EVAL_CFG,
# SCALE_LABEL, TARGETS, EXPERIMENT_FILES, PREDICTION_FILES, dataset_shards, study_outputs.
from spectsynth.experiments import TRAINING_DEFAULTS
from spectsynth.studies.s0 import STUDY as S0_STUDY

CLIN = S0_STUDY.clinical_paths(OUT)
S0_SHARDS = CTX.shards(S0_STUDY.key)
TARGETS.append(
    lambda: [
        p.format(experiment=e)
        for e in S0_STUDY.clinical_experiments(CTX)
        for p in CLIN.values()
    ]
)

SBR_REGRESSOR_FILES = S0_STUDY.regressor_files(OUT)
SBR_REGRESSOR_SHARDS = dataset_shards(S0_STUDY.key)
SBR_REGRESSOR_TRAINING = {**TRAINING_DEFAULTS, **(config.get("training") or {})}
SBR_REGRESSOR_RESOURCES = {
    "gpu": int(
        config["compute"]["gpus"]
        if SBR_REGRESSOR_TRAINING["gpu"] is None
        else SBR_REGRESSOR_TRAINING["gpu"]
    ),
    "mem_mb": int(SBR_REGRESSOR_TRAINING["mem_mb"]),
    "runtime": int(SBR_REGRESSOR_TRAINING["runtime"]),
    "threads": int(SBR_REGRESSOR_TRAINING["threads"]),
}


rule train_sbr_regressor:
    input:
        train=SBR_REGRESSOR_SHARDS["train"],
        val=SBR_REGRESSOR_SHARDS["val"],
        index=SBR_REGRESSOR_SHARDS["index"],
    output:
        best=SBR_REGRESSOR_FILES.best,
        training=SBR_REGRESSOR_FILES.training,
        curve=report(
            SBR_REGRESSOR_FILES.learning_curve,
            caption=f"{CAPTIONS}/sbr_regressor.rst",
            category=S0_STUDY.report_category,
            subcategory="SBR regression CNN",
            labels={"figure": "SBR regression CNN learning curve"},
        ),
    log:
        f"{OUT}/logs/train_sbr_regressor/sbr_regressor.log",
    benchmark:
        f"{OUT}/benchmarks/train_sbr_regressor/sbr_regressor.tsv"
    conda:
        f"{ENVS}/torch.yaml"
    threads: SBR_REGRESSOR_RESOURCES["threads"]
    resources:
        gpu=SBR_REGRESSOR_RESOURCES["gpu"],
        mem_mb=SBR_REGRESSOR_RESOURCES["mem_mb"],
        runtime=SBR_REGRESSOR_RESOURCES["runtime"],
    params:
        settings=config["evaluate"]["sbr_regressor"],
        seed=SBR_REGRESSOR_TRAINING["seed"],
        device=SBR_REGRESSOR_TRAINING["device"] or config["compute"]["device"],
        progress=SBR_REGRESSOR_TRAINING["progress"],
        scale_label=config["report"]["scale_label"],
        out_dir=lambda wc, output: str(Path(output.best).parent),
    script:
        f"{SCRIPTS}/train_sbr_regressor.py"


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
        f"{ENVS}/torch.yaml"
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
        f"{SCRIPTS}/s0_clinical.py"
