"""Rule register_native: T1w and brain mask on S2's native 256 x 256 x 192, 1 mm grid."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.steps import run_register_native


def main(snakemake):
    with rule_log(snakemake):
        run_register_native(snakemake.input.t1w, snakemake.input.mask, dict(snakemake.output.items()),
                            subject=snakemake.wildcards.subject, config=dict(snakemake.params.cfg))


main(snakemake)  # noqa: F821
