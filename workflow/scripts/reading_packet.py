"""Blinded reading packet of one S1/S3 experiment (spectsynth.clinical.experiment_reading_packet)."""

from spectsynth.clinical import experiment_reading_packet
from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs


def main(smk):
    cfg = smk.params.cfg
    with rule_log(smk):
        experiment_reading_packet(
            smk.wildcards.experiment, predictions={"h5": smk.input.h5, "tsv": smk.input.tsv},
            out_dir=smk.output.packet, key_path=smk.output.key, cfg=cfg["reading_packet"],
            seed=int(smk.params.seed), real_shard=smk.input.get("real_test"),
            real_index=smk.input.get("real_index"), convention=cfg["display_convention"])
        stamp_outputs(smk, "key")


main(snakemake)  # noqa: F821
