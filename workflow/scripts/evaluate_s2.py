"""S2: per-slice metrics of the runs and their baselines, paired t-tests, Table 4 with the
published values, violin plots (spectsynth.evaluate)."""

from spectsynth.evaluate import evaluate_s2
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs


def main(smk):
    with rule_log(smk):
        files = {e: {"h5": smk.input[f"{e}_h5"], "tsv": smk.input[f"{e}_tsv"]}
                 for e in smk.params.experiments}
        train = {d: {"h5": smk.input[f"{d}_train"], "index": smk.input[f"{d}_index"]}
                 for d in smk.params.datasets}
        evaluate_s2(files, smk.params.specs, dict(smk.output.items()), cfg=smk.params.cfg,
                    scale_label=smk.params.scale_label, train=train)
        stamp_outputs(smk, "slice_metrics")


main(snakemake)  # noqa: F821
