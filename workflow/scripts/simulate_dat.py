"""Simulate one subject's DaT SPECT stack and its ground truth (spectsynth.simulate.run_dat)."""

from spectsynth.logs import rule_log
from spectsynth.simulate.run import run_dat


def main(smk):
    with rule_log(smk):
        run_dat(dict(smk.input), dict(smk.output), smk.params.cfg, smk.wildcards.subject, threads=smk.threads,
                age=smk.params.get("age"))


main(snakemake)  # noqa: F821
