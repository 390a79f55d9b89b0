"""Rule tabulate_registration_quality: one table of every subject's registration numbers."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.qc import write_registration_table


def main(snakemake):
    with rule_log(snakemake):
        write_registration_table(list(snakemake.input), snakemake.output[0])


main(snakemake)  # noqa: F821
