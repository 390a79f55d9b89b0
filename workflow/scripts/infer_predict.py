"""Predict the test split of one trained experiment (spectsynth.infer.predict_experiment)."""

from spectsynth.infer import predict_experiment
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs


def main(smk):
    with rule_log(smk):
        predict_experiment(smk.input.best, smk.input.test, smk.input.index, smk.output.h5,
                           smk.output.tsv, experiment=smk.wildcards.experiment,
                           batch_size=smk.params.batch_size, device=smk.params.device,
                           seed=smk.params.seed)
        stamp_outputs(smk, "h5")


main(snakemake)  # noqa: F821
