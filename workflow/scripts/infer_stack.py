"""Stack one experiment's predicted slices into NIfTI volumes on each subject's grid
(spectsynth.infer.stack_volumes)."""

from spectsynth.infer import stack_volumes
from spectsynth.logs import setup_logging


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        stack_volumes(smk.input.h5, smk.input.tsv, smk.output.volumes,
                      experiment=smk.wildcards.experiment, train_index=smk.input.index)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
