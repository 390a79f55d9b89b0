"""S0: Anatomy Shape Precision, Dice, slice SBR error and Bland-Altman (spectsynth.evaluate)."""

from spectsynth.evaluate import evaluate_s0
from spectsynth.logs import setup_logging


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        evaluate_s0(smk.wildcards.experiment, {"h5": smk.input.h5, "tsv": smk.input.tsv},
                    smk.params.spec, dict(smk.output.items()), cfg=smk.params.cfg,
                    scale_label=smk.params.scale_label)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
