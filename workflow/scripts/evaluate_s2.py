"""S2: per-slice metrics, paired t-tests, Table 4 and violin plots (spectsynth.evaluate)."""

from spectsynth.evaluate import evaluate_s2
from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        files = {e: {"h5": smk.input[f"{e}_h5"], "tsv": smk.input[f"{e}_tsv"]}
                 for e in smk.params.experiments}
        evaluate_s2(files, smk.params.specs, dict(smk.output.items()), cfg=smk.params.cfg,
                    scale_label=smk.params.scale_label)
        stamp_outputs(smk, "slice_metrics")
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
