"""Cohort truth tables and the SBR-distribution figure (spectsynth.simulate.run_summary)."""

from spectsynth.logs import rule_log
from spectsynth.simulate.run import run_summary


def main(smk):
    with rule_log(smk):
        run_summary(list(smk.input.dat), dict(smk.output),
                    perfusion_truth=list(smk.input.get("perfusion", [])), pet_truth=list(smk.input.get("pet", [])))


main(snakemake)  # noqa: F821
