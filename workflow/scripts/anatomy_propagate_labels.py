"""Rule propagate_labels: striatum, reference regions, territories, tissues and slice levels."""

from spectsynth.anatomy import run_anatomy
from spectsynth.logs import rule_log


def main(snakemake):
    with rule_log(snakemake):
        registration = {**dict(snakemake.params.registration), "threads": snakemake.threads}
        run_anatomy(snakemake.input.t1w, snakemake.input.mask, snakemake.input.xfm_template,
                    dict(snakemake.output.items()), subject=snakemake.wildcards.subject,
                    settings=dict(snakemake.params.anatomy), registration=registration)


main(snakemake)  # noqa: F821
