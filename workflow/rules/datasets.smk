# Slice datasets: one HDF5 shard per split and one index table per dataset
# (spectsynth.datasets). Dataset names: s0, s1, s2_native, s2_template, s3.
#
# Needs from common.smk: OUT and dataset_records(dataset) -> list of entries
# {subject, files: {role: NIfTI path}, levels: _levels.tsv path or None, pattern, params,
# space} (roles per study in spectsynth.datasets.STUDY_ROLES), built from the simulator's
# outputs and its truth tables.
from spectsynth.datasets import dataset_names

DATASETS = dataset_names(config)


wildcard_constraints:
    dataset="|".join(DATASETS),


def dataset_files(wildcards):
    """Every image and levels table the records of one dataset read."""
    files = []
    for entry in dataset_records(wildcards.dataset):
        files += [str(p) for p in entry["files"].values()]
        if isinstance(entry.get("levels"), str):
            files.append(entry["levels"])
    return sorted(set(files))


def dataset_shards(dataset):
    """Paths of one dataset's outputs (train/val/test shards and the index table)."""
    d = f"{OUT}/datasets/{dataset}"
    return {s: f"{d}/{s}.h5" for s in ("train", "val", "test")} | {
        "index": f"{d}/index.tsv"
    }


rule build_dataset:
    input:
        dataset_files,
    output:
        train=f"{OUT}/datasets/{{dataset}}/train.h5",
        val=f"{OUT}/datasets/{{dataset}}/val.h5",
        test=f"{OUT}/datasets/{{dataset}}/test.h5",
        index=f"{OUT}/datasets/{{dataset}}/index.tsv",
    log:
        f"{OUT}/logs/build_dataset/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/build_dataset/{{dataset}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        records=lambda wc: dataset_records(wc.dataset),
        datasets=config["datasets"],
        out_dir=lambda wc, output: str(Path(output.index).parent),
    script:
        "../scripts/dataset_build.py"
