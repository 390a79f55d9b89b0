"""Input QC figure: three orthogonal mid-slices of one subject's T1w."""

from spectsynth.logs import rule_log
from spectsynth.qc import plot_orthogonal


def main(smk):
    with rule_log(smk):
        plot_orthogonal(smk.input.image, smk.output[0], f"sub-{smk.wildcards.subject} T1w",
                        subtitle=f"{smk.params.source} input, {smk.params.label}")


main(snakemake)  # noqa: F821
