"""Write the dataset-level files of the demo BIDS dataset."""

from spectsynth.inputs.demo import build_dataset_files
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        build_dataset_files(smk.params.demo, smk.params.bids_root)


main(snakemake)  # noqa: F821
