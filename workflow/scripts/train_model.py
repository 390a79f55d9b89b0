"""Train (or resume) one experiment and write its best checkpoint and logs (spectsynth.train)."""

from spectsynth.logs import setup_logging
from spectsynth.train import train_experiment


def main(smk):
    log = setup_logging(smk.log[0])
    try:
        train_experiment(smk.params.spec, {"train": smk.input.train, "val": smk.input.val},
                         smk.params.out_dir, datasets_cfg=smk.params.datasets, threads=smk.threads)
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
