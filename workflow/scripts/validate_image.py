"""Validate one input image and write its RAS+ copy (see spectsynth.inputs.validate)."""

from spectsynth.inputs.validate import validate_input
from spectsynth.logs import rule_log


def main(smk):
    missing = list(smk.params.missing)
    with rule_log(smk):
        # (plausibility_check is read from the config, not a param: changing it must not
        # plan the subjects that already passed again)
        validate_input(smk.params.source, smk.output.image, smk.output.record,
                       subject=smk.wildcards.subject, modality=smk.params.modality,
                       missing=[m["modality"] for m in missing], allow_4d=smk.params.allow_4d,
                       plausibility_check=smk.config["inputs"]["plausibility_check"],
                       expected={m["modality"]: m["expected"] for m in missing if m["expected"]})


main(snakemake)  # noqa: F821
