"""Rule register_template: T1w -> MNI152 affine, transforms and template-space images."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.steps import run_register_template


def main(snakemake):
    with rule_log(snakemake):
        cfg = dict(snakemake.params.cfg)
        cfg["registration"] = {**(cfg.get("registration") or {}), "threads": snakemake.threads}
        run_register_template(snakemake.input.t1w, snakemake.input.brain, snakemake.input.mask,
                              dict(snakemake.output.items()), subject=snakemake.wildcards.subject,
                              config=cfg)


main(snakemake)  # noqa: F821
