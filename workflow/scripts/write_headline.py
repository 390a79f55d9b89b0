"""The run's headline table and its Markdown (see spectsynth.headline)."""

from spectsynth.headline import collect, render
from spectsynth.io import write_table, write_text
from spectsynth.logs import rule_log


def main(smk):
    with rule_log(smk):
        table = collect(smk.input.verdicts, smk.params.experiments)
        write_table(table, smk.output.table, what="headline (every study's verdict rows)")
        title = (f"Headline, {smk.params.scale_label}, {smk.params.n_subjects} subjects "
                 "(each row's n says what it counts)")
        write_text(render(table, title=title, reasons=True), smk.output.markdown)


main(snakemake)  # noqa: F821
