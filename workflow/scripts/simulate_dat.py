"""Simulate one subject's DaT SPECT stack and its ground truth (spectsynth.simulate.run_dat)."""

from spectsynth.logs import setup_logging
from spectsynth.simulate.run import run_dat


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        run_dat(dict(smk.input), dict(smk.output), smk.params.cfg, smk.wildcards.subject, threads=smk.threads,
                age=smk.params.get("age"))
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
