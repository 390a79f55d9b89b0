"""Write the dataset-level files of the demo BIDS dataset."""

from spectsynth.inputs.demo import build_dataset_files
from spectsynth.logs import setup_logging


def main(smk):
    setup_logging(smk.log[0])
    build_dataset_files(smk.params.demo, smk.params.bids_root)


main(snakemake)  # noqa: F821
