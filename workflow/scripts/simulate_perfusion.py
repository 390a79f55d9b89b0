"""Simulate one subject's perfusion SPECT stack and its ground truth (spectsynth.simulate.run_perfusion)."""

from spectsynth.logs import rule_log
from spectsynth.simulate.run import run_perfusion


def main(smk):
    with rule_log(smk):
        run_perfusion(dict(smk.input), dict(smk.output), smk.params.cfg, smk.wildcards.subject, threads=smk.threads,
                age=smk.params.get("age"))


main(snakemake)  # noqa: F821
