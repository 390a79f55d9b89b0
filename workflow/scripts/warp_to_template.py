"""Carry a simulated volume from the subject's native grid to MNI152 (one interpolation)."""

from spectsynth.logs import setup_logging
from spectsynth.preprocess.steps import warp_to_template


def main(smk):
    setup_logging(smk.log[0])
    warp_to_template(smk.input.image, smk.input.xfm, smk.output[0],
                     subject=smk.wildcards.subject, resolution_mm=smk.params.resolution_mm)


main(snakemake)  # noqa: F821
