# Slice datasets: one HDF5 shard per split and one index table per dataset
# (spectsynth.datasets). Dataset names: the studies' (spectsynth.studies: DATASETS in common.smk).
#
# Needs from common.smk: OUT, DATASETS and dataset_subject_files(dataset) -> {subject: {key: path}}
# (the simulator's and preprocessing's files each study reads; the study (spectsynth.studies)
# turns them and the simulator's truth tables into dataset entries). S2 and S3 read their
# PET/SPECT as register_modality leaves them (space-T1w, or space-MNI152 through the composed
# transform), never the simulator's own frames. What each dataset holds per split is
# spectsynth.design's (also printed by `spectsynth plan`); S0's and S1's designs read the
# simulation design, so simulate: is a param.
from spectsynth.datasets import INDEX_VERSION


wildcard_constraints:
    dataset="|".join(DATASETS),


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
        subject_files=lambda wc: dataset_subject_files(wc.dataset),
        datasets=config["datasets"],
        simulate=config.get("simulate", {}),
        # the cohort's post-surgical subjects (spectsynth.studies.cohort_resected) are read from it
        inputs=config["inputs"],
        out_dir=lambda wc, output: str(Path(output.index).parent),
        index_version=INDEX_VERSION,
    script:
        "../scripts/dataset_build.py"
