"""Cohort truth tables and the SBR-distribution figure (spectsynth.simulate.run_summary)."""

from spectsynth.logs import setup_logging
from spectsynth.simulate.run import run_summary


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        run_summary(list(smk.input.dat), dict(smk.output),
                    perfusion_truth=list(smk.input.get("perfusion", [])), pet_truth=list(smk.input.get("pet", [])))
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
