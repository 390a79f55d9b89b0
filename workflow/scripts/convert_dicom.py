"""Convert one subject's DICOM folder to BIDS with dcm2niix."""

from spectsynth.inputs.dicom import convert_subject
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        convert_subject(smk.params.dicom_dir, smk.wildcards.subject, smk.params.bids_root,
                        smk.params.series, smk.params.required)


main(snakemake)  # noqa: F821
