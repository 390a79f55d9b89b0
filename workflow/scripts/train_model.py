"""Train (or resume) one experiment and write its best checkpoint and logs (spectsynth.train)."""

from spectsynth.logs import rule_log
from spectsynth.studies import dataset_spec
from spectsynth.train import train_experiment


def main(smk):
    with rule_log(smk):
        train_experiment(smk.params.spec, {"train": smk.input.train, "val": smk.input.val},
                         smk.params.out_dir,
                         # torch's threads, within the CPUs the scheduler gave the job (its threads
                         # also hold the DataLoader workers: spectsynth.experiments)
                         threads=min(smk.params.spec["resources"]["torch_threads"], smk.threads),
                         dataset=dataset_spec({"datasets": smk.params.datasets}, smk.params.spec["dataset"]))


main(snakemake)  # noqa: F821
