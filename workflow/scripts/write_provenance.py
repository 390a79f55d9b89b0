"""Resolved config, package versions and git commit of this run."""

from spectsynth.logs import setup_logging
from spectsynth.provenance import write_provenance


def main(smk):
    setup_logging(smk.log[0])
    write_provenance(dict(smk.params.config), smk.params.repo, smk.output.config,
                     smk.output.versions, smk.output.info)


main(snakemake)  # noqa: F821
