"""Score the filled-in reading sheets of one experiment (spectsynth.reading.score_reading)."""

from pathlib import Path

from spectsynth.logs import rule_log
from spectsynth.reading import score_reading, write_scores
from spectsynth.studies.published import reading_scores


def main(smk):
    with rule_log(smk):
        tables = score_reading(list(smk.input.sheets), smk.input.key, published=reading_scores())
        write_scores(tables, Path(smk.output.summary).parent)


main(snakemake)  # noqa: F821
