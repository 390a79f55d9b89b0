# Training: one job per experiment (spectsynth.train.train_experiment).
#
# checkpoints/ and tensorboard/ under each experiment folder are deliberately NOT declared
# outputs: Snakemake deletes a job's declared outputs before it starts, which would throw
# away the state a rerun after a kill resumes from. A rerun of train_model continues from
# checkpoints/last.pt (use --rerun-incomplete, set in the profiles).
#
# Experiments whose model family has selection criteria (Family.selection_criteria: FastGAN, S1)
# run in train_fastgan, the same job with one more output: the best checkpoint under each
# selection criterion (best-<criterion>.pt; best.pt is the configured one), so S1's finding can
# be evaluated under each (infer.smk: predict_criterion). One rule declares the checkpoints of
# them all, so the families with criteria share one set, SELECTION_CRITERIA (checked by
# tests/test_workflow_static.py).
#
# Needs from common.smk: OUT, EXPERIMENTS, EXPERIMENT_FILES, SELECTION_CRITERIA, family_of,
# experiment_shards, experiment_resource.
BY_CRITERION = [e for e in EXPERIMENTS if family_of(e).selection_criteria]
one_of = lambda names: "|".join(names) if names else "NOEXPERIMENT"


wildcard_constraints:
    experiment=one_of(list(EXPERIMENTS)),
    criterion=one_of(list(SELECTION_CRITERIA)),


rule train_model:
    input:
        unpack(experiment_shards),
    output:
        best=EXPERIMENT_FILES.best,
        selection=EXPERIMENT_FILES.selection,
        history=EXPERIMENT_FILES.history,
        config=EXPERIMENT_FILES.config,
        curve=report(
            EXPERIMENT_FILES.loss_curve,
            caption="../report/train_loss_curve.rst",
            category="4. Training",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "loss curves"},
        ),
    log:
        f"{OUT}/logs/train_model/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_model/{{experiment}}.tsv"
    wildcard_constraints:
        experiment=one_of([e for e in EXPERIMENTS if e not in BY_CRITERION]),
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


use rule train_model as train_fastgan with:
    output:
        best=EXPERIMENT_FILES.best,
        selection=EXPERIMENT_FILES.selection,
        history=EXPERIMENT_FILES.history,
        config=EXPERIMENT_FILES.config,
        curve=report(
            EXPERIMENT_FILES.loss_curve,
            caption="../report/train_loss_curve.rst",
            category="4. Training",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "figure": "loss curves"},
        ),
        by_criterion=[EXPERIMENT_FILES.best_by_criterion(c) for c in SELECTION_CRITERIA],
    wildcard_constraints:
        experiment=one_of(BY_CRITERION),
