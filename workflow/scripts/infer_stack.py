"""Stack one experiment's predicted slices into NIfTI volumes on each subject's grid
(spectsynth.infer.stack_volumes)."""

from spectsynth.infer import stack_volumes
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        stack_volumes(smk.input.h5, smk.input.tsv, smk.output.volumes,
                      experiment=smk.wildcards.experiment, train_index=smk.input.index)


main(snakemake)  # noqa: F821
