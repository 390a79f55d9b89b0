"""The results folder's dataset_description.json and .bidsignore (spectsynth.derivatives)."""

from spectsynth.derivatives import write_dataset_files
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        write_dataset_files(smk.output.description, smk.output.bidsignore, source=smk.params.source,
                            bids_root=smk.params.bids_root)


main(snakemake)  # noqa: F821
