# Inference: predictions of every enabled experiment on its dataset's test split
# (spectsynth.infer.predict_experiment). Paired experiments (Family.paired: pix2pix, VAE)
# predict every test slice; FastGAN experiments draw, per condition, as many samples as the real
# test split has.
# Paired predictions are also stacked back into NIfTI volumes on each test subject's grid, in
# physical units from the input's constants and a training-split calibration (never the target's).
# predict_criterion: S1's generated images from the best checkpoint under a selection criterion
# other than the configured one (best-<criterion>.pt), for the evaluation under both criteria;
# the headline predictions (predictions/<experiment>/predictions.*) stay those of best.pt.
#
# Needs from common.smk: OUT, EXPERIMENTS, EXPERIMENT_FILES, PREDICTION_FILES, prediction_files,
# family_of, dataset_shards, experiment_resource, TARGETS.
CRITERION_PREDICTION_FILES = prediction_files(OUT, criterion="{criterion}")

TARGETS.append(
    lambda: [
        f for e in EXPERIMENTS for f in prediction_files(OUT, e).as_dict().values()
    ]
    + [prediction_files(OUT, e).volumes for e in EXPERIMENTS if family_of(e).paired]
)


rule predict_experiment:
    input:
        best=EXPERIMENT_FILES.best,
        test=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["test"],
        index=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["index"],
    output:
        h5=PREDICTION_FILES.h5,
        tsv=PREDICTION_FILES.tsv,
    log:
        f"{OUT}/logs/predict_experiment/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/predict_experiment/{{experiment}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: experiment_resource("threads")
    resources:
        gpu=experiment_resource("gpu"),
        mem_mb=experiment_resource("mem_mb"),
        runtime=lambda wc: min(60, EXPERIMENTS[wc.experiment]["resources"]["runtime"]),
    params:
        batch_size=config["evaluate"]["batch_size"],
        device=lambda wc: EXPERIMENTS[wc.experiment]["training"]["device"],
        seed=config["seed"],
    script:
        "../scripts/infer_predict.py"


rule stack_predictions:
    input:
        h5=PREDICTION_FILES.h5,
        tsv=PREDICTION_FILES.tsv,
        # the training split's rows: the calibration of the predictions is fitted on them
        index=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["index"],
    output:
        volumes=directory(PREDICTION_FILES.volumes),
    log:
        f"{OUT}/logs/stack_predictions/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/stack_predictions/{{experiment}}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/infer_stack.py"


use rule predict_experiment as predict_criterion with:
    input:
        best=EXPERIMENT_FILES.best_by_criterion("{criterion}"),
        test=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["test"],
        index=lambda wc: dataset_shards(EXPERIMENTS[wc.experiment]["dataset"])["index"],
    output:
        h5=CRITERION_PREDICTION_FILES.h5,
        tsv=CRITERION_PREDICTION_FILES.tsv,
    log:
        f"{OUT}/logs/predict_criterion/{{experiment}}-{{criterion}}.log",
    benchmark:
        f"{OUT}/benchmarks/predict_criterion/{{experiment}}-{{criterion}}.tsv"
