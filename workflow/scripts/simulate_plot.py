"""Montage of one subject's simulated slices next to its T1w (spectsynth.simulate.run_montage)."""

from spectsynth.logs import setup_logging
from spectsynth.simulate.run import run_montage


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        run_montage(dict(smk.input), smk.output[0], smk.wildcards.subject)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
