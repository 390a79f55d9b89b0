"""Build one slice dataset: shards per split and the index table (spectsynth.datasets)."""

from spectsynth.datasets import build_dataset, records_from_files
from spectsynth.logs import setup_logging


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        build_dataset(smk.wildcards.dataset, records_from_files(smk.params.records),
                      {"datasets": smk.params.datasets}, smk.params.out_dir)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
