"""Simulate one subject's FDG-PET and PET-CBF / SPECT-CBF pair (spectsynth.simulate.run_pet)."""

from spectsynth.logs import rule_log
from spectsynth.simulate.run import run_pet


def main(smk):
    with rule_log(smk):
        run_pet(dict(smk.input), dict(smk.output), smk.params.cfg, smk.wildcards.subject, threads=smk.threads,
                age=smk.params.get("age"))


main(snakemake)  # noqa: F821
