"""S3: SSIM of the prediction and its baselines vs target, atlas ROI means, regressions,
the published values and scatter plots (spectsynth.evaluate)."""

from spectsynth.evaluate import evaluate_s3
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs


def main(smk):
    with rule_log(smk):
        labels = dict(zip(smk.params.subjects, smk.input.labels, strict=True))
        evaluate_s3(smk.wildcards.experiment, {"h5": smk.input.h5, "tsv": smk.input.tsv},
                    smk.params.spec, dict(smk.output.items()), cfg=smk.params.cfg,
                    scale_label=smk.params.scale_label, labels=labels,
                    train={"h5": smk.input.train, "index": smk.input.index})
        stamp_outputs(smk, "slice_metrics")


main(snakemake)  # noqa: F821
