# S0's binding-ratio regression CNN (spectsynth.studies.s0.sbr_regressor): trained on the S0 dataset's
# slices, whose SBR the simulator knows, and used by evaluate_s0 to read the binding ratios of
# the predicted slices (S0's "binding-ratio match").
#
# Needs from common.smk: OUT, dataset_shards. Harness settings (device, threads, GPUs, memory,
# run time, seed, progress bar) come from `training:` and `compute:` as for train_model.
from spectsynth.experiments import TRAINING_DEFAULTS
from spectsynth.studies.s0 import STUDY as S0_STUDY

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
            caption="../report/sbr_regressor.rst",
            category=S0_STUDY.report_category,
            subcategory="SBR regression CNN",
            labels={"figure": "SBR regression CNN learning curve"},
        ),
    log:
        f"{OUT}/logs/train_sbr_regressor/sbr_regressor.log",
    benchmark:
        f"{OUT}/benchmarks/train_sbr_regressor/sbr_regressor.tsv"
    conda:
        "../../envs/torch.yaml"
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
        "../scripts/train_sbr_regressor.py"
