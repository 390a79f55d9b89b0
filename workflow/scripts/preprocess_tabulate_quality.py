"""Rule tabulate_registration_quality: one table of every subject's registration numbers."""

from spectsynth.logs import setup_logging
from spectsynth.preprocess.qc import write_registration_table


def main(snakemake):
    setup_logging(snakemake.log[0])
    write_registration_table(list(snakemake.input), snakemake.output[0])


main(snakemake)  # noqa: F821
