"""Predict the test split of one trained experiment (spectsynth.infer.predict_experiment)."""

from spectsynth.infer import predict_experiment
from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        predict_experiment(smk.input.best, smk.input.test, smk.input.index, smk.output.h5,
                           smk.output.tsv, experiment=smk.wildcards.experiment,
                           batch_size=smk.params.batch_size, device=smk.params.device,
                           seed=smk.params.seed)
        stamp_outputs(smk, "h5")
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
