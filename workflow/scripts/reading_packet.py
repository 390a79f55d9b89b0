"""Blinded reading packet of one experiment, as its study reads it
(spectsynth.studies.<key>: Study.reading_packet; spectsynth.reading)."""

from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs
from spectsynth.studies import get


def main(smk):
    log = setup_logging(smk.log[0])
    cfg = smk.params.cfg
    try:
        get(smk.params.study).reading_packet(
            smk.wildcards.experiment, dict(smk.input.items()), out_dir=smk.output.packet, key_path=smk.output.key,
            cfg=cfg["reading_packet"], seed=int(smk.params.seed), convention=cfg["display_convention"])
        stamp_outputs(smk, "key")
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
