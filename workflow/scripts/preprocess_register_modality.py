"""Rule register_modality: PET/SPECT rigid to the T1w, one resampling to native and template grids."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.steps import run_register_modality


def main(snakemake):
    with rule_log(snakemake):
        cfg = dict(snakemake.params.cfg)
        cfg["registration"] = {**(cfg.get("registration") or {}), "threads": snakemake.threads}
        run_register_modality(snakemake.input.image, snakemake.input.brain, snakemake.input.mask,
                              snakemake.input.native, snakemake.input.xfm_template,
                              dict(snakemake.output.items()), modality=snakemake.wildcards.modality,
                              subject=snakemake.wildcards.subject, config=cfg,
                              scan=snakemake.params.scan)


main(snakemake)  # noqa: F821
