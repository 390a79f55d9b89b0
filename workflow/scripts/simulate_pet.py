"""Simulate one subject's FDG-PET and PET-CBF / SPECT-CBF pair (spectsynth.simulate.run_pet)."""

from spectsynth.logs import setup_logging
from spectsynth.simulate.run import run_pet


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        run_pet(dict(smk.input), dict(smk.output), smk.params.cfg, smk.wildcards.subject, threads=smk.threads,
                age=smk.params.get("age"))
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
