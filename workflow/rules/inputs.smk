# Inputs: the demo cohort or DICOM conversion, then one validation per subject and image.


rule make_demo_subject:
    output:
        **{
            k: str(p)
            for k, p in demo_truth_paths(f"{OUT}/demo-bids", "{subject}").items()
        },
        t1=bids(f"{OUT}/demo-bids", subject="{subject}", datatype="anat", suffix="T1w"),
        sidecar=bids(
            f"{OUT}/demo-bids",
            subject="{subject}",
            datatype="anat",
            suffix="T1w",
            extension=".json",
        ),
    log:
        sub_log("make_demo_subject"),
    benchmark:
        sub_bench("make_demo_subject")
    group:
        "subject"
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        # what the subject's images depend on: a larger cohort leaves the existing subjects alone
        demo=demo_subject_settings(config["inputs"]["demo"]),
        index=lambda wc: SUBJECT_INDEX[wc.subject],
        resected=lambda wc: wc.subject in DEMO_RESECTED,
        bids_root=lambda wc, output: str(Path(output.t1).parents[2]),
    script:
        "../scripts/make_demo_subject.py"


rule make_demo_dataset:
    output:
        description=f"{OUT}/demo-bids/dataset_description.json",
        participants=f"{OUT}/demo-bids/participants.tsv",
        participants_json=f"{OUT}/demo-bids/participants.json",
    log:
        f"{OUT}/logs/make_demo_dataset/make_demo_dataset.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        demo=config["inputs"]["demo"],
        bids_root=lambda wc, output: str(Path(output.description).parent),
    script:
        "../scripts/make_demo_dataset.py"


rule convert_dicom:
    output:
        directory(f"{OUT}/dicom-bids/sub-{{subject}}"),
    log:
        sub_log("convert_dicom"),
    benchmark:
        sub_bench("convert_dicom")
    group:
        "subject"
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dicom_dir=lambda wc: DICOM_DIRS[wc.subject],
        series=lambda wc: config["inputs"]["dicom"]["series"],
        required=REQUIRED,
        bids_root=lambda wc, output: str(Path(output[0]).parent),
    script:
        "../scripts/convert_dicom.py"


rule validate_image:
    input:
        unpack(raw_image),
    output:
        image=bids(
            OUT,
            subject="{subject}",
            datatype="{datatype}",
            desc="ras",
            suffix="{suffix}",
        ),
        record=bids(
            OUT,
            subject="{subject}",
            datatype="{datatype}",
            desc="ras",
            suffix="{suffix}",
            extension=".json",
        ),
    log:
        f"{OUT}/logs/validate_image/sub-{{subject}}_{{datatype}}_{{suffix}}.log",
    benchmark:
        f"{OUT}/benchmarks/validate_image/sub-{{subject}}_{{datatype}}_{{suffix}}.tsv"
    group:
        "subject"
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        source=lambda wc: source_image(wc.subject, modality_of(wc.suffix)),
        modality=lambda wc: modality_of(wc.suffix),
        missing=missing_required,
        allow_4d=config["inputs"]["allow_4d"],
    script:
        "../scripts/validate_image.py"


rule plot_input_qc:
    input:
        image=ras_image("{subject}", "T1w"),
    output:
        report(
            input_qc_figure("{subject}"),
            caption="../report/input_qc.rst",
            category="1. Inputs",
            subcategory="T1w mid-slices",
            labels={
                "subject": "{subject}",
                "figure": "T1w, three orthogonal mid-slices",
            },
        ),
    log:
        sub_log("plot_input_qc"),
    benchmark:
        sub_bench("plot_input_qc")
    group:
        "subject"
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=5,
    params:
        label=config["report"]["scale_label"],
        source=SOURCE,
    script:
        "../scripts/plot_input_qc.py"


rule summarize_inputs:
    input:
        records=lambda wc: input_records(),
    output:
        report(
            f"{OUT}/inputs/inputs.tsv",
            caption="../report/inputs_table.rst",
            category="1. Inputs",
            subcategory="Input images",
            labels={"table": "input images"},
        ),
    log:
        f"{OUT}/logs/summarize_inputs/summarize_inputs.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        skipped=SKIPPED,
    script:
        "../scripts/summarize_inputs.py"
