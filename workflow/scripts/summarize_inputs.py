"""Table of every validated input image."""

from spectsynth.inputs.validate import summarize
from spectsynth.logs import setup_logging


def main(smk):
    setup_logging(smk.log[0])
    summarize(list(smk.input.records), smk.output[0], skipped=list(smk.params.skipped))


main(snakemake)  # noqa: F821
