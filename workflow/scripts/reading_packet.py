"""Blinded reading packet of one experiment, as its study reads it
(``reading_packet`` of spectsynth.studies.<key>.evaluate; spectsynth.reading)."""

from importlib import import_module

from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs
from spectsynth.studies import get


def main(smk):
    log = setup_logging(smk.log[0])
    cfg = smk.params.cfg
    try:
        evaluation = import_module(f"spectsynth.studies.{get(smk.params.study).key}.evaluate")
        evaluation.reading_packet(
            smk.wildcards.experiment, dict(smk.input.items()), out_dir=smk.output.packet, key_path=smk.output.key,
            cfg=cfg["reading_packet"], seed=int(smk.params.seed), convention=cfg["display_convention"])
        stamp_outputs(smk, "key")
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
