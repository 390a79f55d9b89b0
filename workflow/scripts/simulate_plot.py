"""Montage of one subject's simulated slices next to its T1w (spectsynth.simulate.run_montage)."""

from spectsynth.logs import rule_log
from spectsynth.simulate.run import run_montage


def main(smk):
    with rule_log(smk):
        run_montage(dict(smk.input), smk.output[0], smk.wildcards.subject)


main(snakemake)  # noqa: F821
