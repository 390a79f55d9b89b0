"""Build one demo subject (see spectsynth.inputs.demo)."""

from spectsynth.inputs.demo import build_subject
from spectsynth.logs import setup_logging


def main(smk):
    setup_logging(smk.log[0])
    build_subject(smk.params.index, smk.params.demo, smk.params.bids_root, smk.params.s2_split)


main(snakemake)  # noqa: F821
