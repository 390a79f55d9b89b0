# Training: one job per experiment (spectsynth.train.train_experiment).
#
# checkpoints/ and tensorboard/ under each experiment folder are deliberately NOT declared
# outputs: Snakemake deletes a job's declared outputs before it starts, which would throw
# away the state a rerun after a kill resumes from. A rerun of train_model continues from
# checkpoints/last.pt (use --rerun-incomplete, set in the profiles).
#
# Needs from common.smk: OUT; from datasets.smk: dataset_shards.
from spectsynth.models import expand_experiments

if "EXPERIMENTS" not in globals():
    EXPERIMENTS = expand_experiments(config)


wildcard_constraints:
    experiment="|".join(EXPERIMENTS) if EXPERIMENTS else "NOEXPERIMENT",


rule train_model:
    input:
        unpack(experiment_shards),
    output:
        best=f"{OUT}/experiments/{{experiment}}/best.pt",
        selection=f"{OUT}/experiments/{{experiment}}/selection.json",
        history=f"{OUT}/experiments/{{experiment}}/history.csv",
        config=f"{OUT}/experiments/{{experiment}}/config.resolved.yaml",
        curve=report(
            f"{OUT}/experiments/{{experiment}}/loss_curve.png",
            caption="../report/train_loss_curve.rst",
            category="4. Training",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "loss curves"},
        ),
    log:
        f"{OUT}/logs/train_model/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_model/{{experiment}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_resource("threads")
    resources:
        gpu=experiment_resource("gpu"),
        mem_mb=experiment_resource("mem_mb"),
        runtime=experiment_resource("runtime"),
    params:
        spec=lambda wc: EXPERIMENTS[wc.experiment],
        datasets=config["datasets"],
        out_dir=lambda wc, output: str(Path(output.best).parent),
    script:
        "../scripts/train_model.py"
