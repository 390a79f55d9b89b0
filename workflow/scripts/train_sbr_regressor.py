"""Train S0's binding-ratio regression CNN on the S0 dataset's slices (spectsynth.studies.s0.sbr_regressor)."""

from spectsynth.logs import rule_log
from spectsynth.provenance import stamp_outputs
from spectsynth.studies.s0.sbr_regressor import regressor_settings, train_sbr_regressor


def main(smk):
    with rule_log(smk):
        settings = regressor_settings(smk.params.settings)
        train_sbr_regressor(smk.input.train, smk.input.val, smk.input.index, smk.params.out_dir,
                            epochs=int(settings["epochs"]), batch_size=int(settings["batch_size"]),
                            base_channels=int(settings["base_channels"]), lr=float(settings["lr"]),
                            seed=int(smk.params.seed), device=smk.params.device, threads=smk.threads,
                            progress=bool(smk.params.progress), scale_label=smk.params.scale_label)
        stamp_outputs(smk, "best")


main(snakemake)  # noqa: F821
