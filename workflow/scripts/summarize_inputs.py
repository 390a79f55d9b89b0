"""Table of every validated input image."""

from spectsynth.inputs.validate import summarize
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        summarize(list(smk.input.records), smk.output[0], skipped=list(smk.params.skipped))


main(snakemake)  # noqa: F821
