"""Validate one input image and write its RAS+ copy (see spectsynth.inputs.validate)."""

from spectsynth.inputs.validate import validate_input
from spectsynth.logs import setup_logging


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        validate_input(smk.params.source, smk.output.image, smk.output.record,
                       subject=smk.wildcards.subject, modality=smk.params.modality,
                       missing=smk.params.missing, allow_4d=smk.params.allow_4d,
                       plausibility_check=smk.params.plausibility_check,
                       expected=smk.params.expected)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
