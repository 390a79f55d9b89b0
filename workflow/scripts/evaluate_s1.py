"""S1: MC/LR per image, ANOVA (with power) + post-hoc under every selection criterion, the
real-vs-real reference, box plots, mean/SD maps (spectsynth.evaluate)."""

from spectsynth.evaluate import evaluate_s1
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs


def main(smk):
    with rule_log(smk):
        files = {e: {"h5": smk.input[f"{e}_h5"], "tsv": smk.input[f"{e}_tsv"]}
                 for e in smk.params.experiments}
        configured = {smk.params.specs[e]["selection_criterion"] for e in smk.params.experiments}
        headline = configured.pop() if len(configured) == 1 else None
        other = {c: {e: {"h5": smk.input[f"{e}__{c}_h5"], "tsv": smk.input[f"{e}__{c}_tsv"]}
                     for e in smk.params.experiments}
                 for c in smk.params.criteria if c != headline}
        evaluate_s1(files, smk.params.specs, smk.input.real_test, smk.input.real_index,
                    dict(smk.output.items()), cfg=smk.params.cfg,
                    scale_label=smk.params.scale_label, other_predictions=other,
                    headline_criterion=headline or "configured per experiment", seed=smk.params.seed)
        stamp_outputs(smk, "images")


main(snakemake)  # noqa: F821
