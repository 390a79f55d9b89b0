"""Build one slice dataset: shards per split and the index table (spectsynth.datasets)."""

from spectsynth.datasets import build_dataset, records_from_files
from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs
from spectsynth.studies import dataset_entries


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        entries = dataset_entries(smk.wildcards.dataset, smk.params.subject_files)
        build_dataset(smk.wildcards.dataset, records_from_files(entries),
                      {"datasets": smk.params.datasets, "simulate": smk.params.simulate}, smk.params.out_dir)
        stamp_outputs(smk, "index")
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
