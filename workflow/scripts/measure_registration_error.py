"""Demo cohort: error of the estimated T1w->MNI152 registrations against the true transforms."""

from spectsynth.inputs.demo import registration_error_table
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        registration_error_table(smk.params.bids_root, list(smk.params.subjects), list(smk.input.xfms),
                                 list(smk.input.masks), smk.output[0])


main(snakemake)  # noqa: F821
