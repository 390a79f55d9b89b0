"""Build one demo subject (see spectsynth.inputs.demo.build_subject)."""

from spectsynth.inputs.demo import build_subject
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        build_subject(smk.params.index, smk.params.demo, smk.params.bids_root, label=smk.wildcards.subject,
                      resected=smk.params.resected)


main(snakemake)  # noqa: F821
