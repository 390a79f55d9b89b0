"""Demo cohort: error of the estimated T1w->MNI152 registrations against the true transforms."""

from spectsynth.inputs.demo import registration_error_table
from spectsynth.logs import setup_logging


def main(smk):
    setup_logging(smk.log[0])
    registration_error_table(smk.params.bids_root, list(smk.params.subjects), list(smk.input.xfms),
                             list(smk.input.masks), smk.output[0])


main(snakemake)  # noqa: F821
