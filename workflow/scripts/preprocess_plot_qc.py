"""Rule plot_preprocess_qc: template outline, label overlay and brain-mask QC figures."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.steps import run_plot_qc


def main(snakemake):
    with rule_log(snakemake):
        i = snakemake.input
        run_plot_qc(t1_path=i.t1w, mask_path=i.mask, t1_template_path=i.t1w_template,
                    t1_native_path=i.t1w_native, striatum_path=i.striatum, territories_path=i.territories,
                    reference_path=i.reference, levels_path=i.levels, outputs=dict(snakemake.output.items()),
                    subject=snakemake.wildcards.subject)


main(snakemake)  # noqa: F821
