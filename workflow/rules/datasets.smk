# Slice datasets: one HDF5 shard per split and one index table per dataset
# (spectsynth.datasets). Dataset names: s0, s1, s2_native, s2_template, s3.
#
# Needs from common.smk: OUT and dataset_subject_files(dataset) -> {subject: {key: path}}
# (the simulator's and preprocessing's files each study reads; see spectsynth.study_data,
# which turns them and the simulator's truth tables into dataset entries). What each dataset
# holds per split is spectsynth.design's (also printed by `spectsynth plan`); S0's and S1's
# designs read the simulation design, so simulate: is a param.
from spectsynth.datasets import INDEX_VERSION, dataset_names

DATASETS = dataset_names(config)


wildcard_constraints:
    dataset="|".join(DATASETS),


rule warp_to_template:
    input:
        image=f"{OUT}/sub-{{subject}}/{{datatype}}/sub-{{subject}}_{{entities}}_space-T1w_{{desc}}{{suffix}}.nii.gz",
        xfm=f"{OUT}/sub-{{subject}}/xfm/sub-{{subject}}_from-T1w_to-MNI152_mode-image_xfm.tfm",
    output:
        f"{OUT}/sub-{{subject}}/{{datatype}}/sub-{{subject}}_{{entities}}_space-MNI152_{{desc}}{{suffix}}.nii.gz",
    log:
        f"{OUT}/logs/warp_to_template/sub-{{subject}}_{{datatype}}_{{entities}}_{{desc}}{{suffix}}.log",
    wildcard_constraints:
        entities="trc-[A-Za-z0-9]+",
        desc="(desc-[A-Za-z0-9]+_)?",
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        resolution_mm=(config.get("preprocess", {}).get("template") or {}).get(
            "resolution_mm", 1.0
        ),
    script:
        "../scripts/warp_to_template.py"


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
        out_dir=lambda wc, output: str(Path(output.index).parent),
        index_version=INDEX_VERSION,
    script:
        "../scripts/dataset_build.py"
