"""Resolved config, package versions and git commit of this run."""

from spectsynth.logs import rule_log
from spectsynth.provenance import write_provenance


def main(smk):
    with rule_log(smk):
        write_provenance(dict(smk.params.config), smk.params.repo, smk.output.config,
                         smk.output.versions, smk.output.info)


main(snakemake)  # noqa: F821
