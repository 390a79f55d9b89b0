"""Rule extract_brain: brain-extract the RAS T1w of one subject."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.steps import run_extract_brain


def main(snakemake):
    with rule_log(snakemake):
        cfg = dict(snakemake.params.cfg)
        cfg["brain_extraction"] = {**(cfg.get("brain_extraction") or {}), "threads": snakemake.threads}
        run_extract_brain(snakemake.input.t1w, snakemake.output.brain, snakemake.output.mask,
                          snakemake.output.qc, subject=snakemake.wildcards.subject, config=cfg)


main(snakemake)  # noqa: F821
