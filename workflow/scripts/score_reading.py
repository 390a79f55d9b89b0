"""Score the filled-in reading sheets of one experiment (spectsynth.reading.score_reading)."""

from pathlib import Path

from spectsynth.logs import setup_logging
from spectsynth.reading import score_reading, write_scores


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        tables = score_reading(list(smk.input.sheets), smk.input.key)
        write_scores(tables, Path(smk.output.summary).parent)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
