"""One study's evaluation: its metrics, statistics, figures and published values
(``run`` of spectsynth.studies.<key>.evaluate)."""

from importlib import import_module

from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs
from spectsynth.studies import get


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        study = get(smk.params.study)
        params = {k: smk.params[k] for k in (*study.evaluation_param_names, "cfg", "scale_label")}
        evaluation = import_module(f"spectsynth.studies.{study.key}.evaluate")
        evaluation.run(dict(smk.input.items()), dict(smk.output.items()), params, dict(smk.wildcards.items()))
        stamp_outputs(smk, study.stamp)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
