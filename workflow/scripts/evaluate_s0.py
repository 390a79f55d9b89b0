"""S0: Anatomy Shape Precision, Dice, slice SBR error, Bland-Altman and the regression CNN's
binding-ratio match (spectsynth.evaluate)."""

from spectsynth.evaluate import evaluate_s0
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs


def main(smk):
    with rule_log(smk):
        evaluate_s0(smk.wildcards.experiment, {"h5": smk.input.h5, "tsv": smk.input.tsv},
                    smk.params.spec, dict(smk.output.items()), cfg=smk.params.cfg,
                    scale_label=smk.params.scale_label, regressor=smk.input.regressor)
        stamp_outputs(smk, "asp")


main(snakemake)  # noqa: F821
