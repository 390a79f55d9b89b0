"""Build one slice dataset: shards per split and the index table (spectsynth.datasets)."""

from spectsynth.datasets import records_from_files
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs
from spectsynth.studies import build_dataset, dataset_entries


def main(smk):
    with rule_log(smk):
        entries = dataset_entries(smk.wildcards.dataset, smk.params.subject_files)
        build_dataset(smk.wildcards.dataset, records_from_files(entries),
                      {"datasets": smk.params.datasets, "simulate": smk.params.simulate, "inputs": smk.params.inputs}, smk.params.out_dir)
        stamp_outputs(smk, "index")


main(snakemake)  # noqa: F821
