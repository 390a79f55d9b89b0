# Preprocessing: brain extraction, T1w->MNI152 affine, native grid, PET/SPECT rigid + one-resampling
# outputs, QC figures and the registration-quality table.  Logic lives in spectsynth.preprocess.
#
# Grids: *_desc-ras* / *_desc-rasbrain* files lie on the input's own (RAS-reoriented) grid; files
# without a space entity lie on S2's native grid (preprocess.native: 256 x 256 x 192 at 1 mm, the
# demo's 128 x 128 x 96 at 2 mm; the subject's T1w world space; the anatomy stage and the
# simulation read these); space-MNI152 files on the template grid.
#
# Needs from common.smk: OUT, SUBJECTS, has_modality(subject, mod), sub_log(rule), sub_bench(rule),
# the path builders pp_anat, pp_xfm, pp_scan, ras_image and demo_truth_paths.

from spectsynth.preprocess import paths as pp_paths
from spectsynth.simulate import paths as sim_paths
from spectsynth.scan_qc import similarity_pairs


rule extract_brain:
    input:
        t1w=pp_anat(desc="ras", suffix="T1w"),
    output:
        brain=pp_anat(desc="rasbrain", suffix="T1w"),
        mask=pp_anat(desc="rasbrain", suffix="mask"),
        qc=pp_anat(desc="rasbrain", suffix="qc", extension=".json"),
    log:
        sub_log("extract_brain"),
    benchmark:
        sub_bench("extract_brain")
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        cfg=PP_CFG,
    script:
        "../scripts/preprocess_extract_brain.py"


rule register_template:
    input:
        t1w=pp_anat(desc="ras", suffix="T1w"),
        brain=pp_anat(desc="rasbrain", suffix="T1w"),
        mask=pp_anat(desc="rasbrain", suffix="mask"),
    output:
        xfm=pp_xfm(from_="T1w", to="MNI152"),
        xfm_inverse=pp_xfm(from_="MNI152", to="T1w"),
        t1w=pp_anat(space="MNI152", desc="preproc", suffix="T1w"),
        brain=pp_anat(space="MNI152", desc="brain", suffix="T1w"),
        mask=pp_anat(space="MNI152", desc="brain", suffix="mask"),
        qc=pp_anat(space="MNI152", desc="registration", suffix="qc", extension=".json"),
    log:
        sub_log("register_template"),
    benchmark:
        sub_bench("register_template")
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    # one thread: the optimisation runs on one anyway (bit-identical reruns), so two
    # subjects' jobs share 2 cores instead of one leaving a core idle
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        cfg=PP_CFG,
    script:
        "../scripts/preprocess_register_template.py"


rule register_native:
    input:
        t1w=pp_anat(desc="ras", suffix="T1w"),
        mask=pp_anat(desc="rasbrain", suffix="mask"),
    output:
        t1w=pp_anat(desc="preproc", suffix="T1w"),
        brain=pp_anat(desc="brain", suffix="T1w"),
        mask=pp_anat(desc="brain", suffix="mask"),
    log:
        sub_log("register_native"),
    benchmark:
        sub_bench("register_native")
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    # one thread: a few seconds of resampling; two subjects' jobs share 2 cores
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        cfg=PP_CFG,
    script:
        "../scripts/preprocess_register_native.py"


# PET/SPECT rigid to the T1w. A real scan has no trc/desc wildcards and comes from the input
# stage (desc-ras); a simulated scan (e.g. trc-FDG, trc-H2O + desc-cbf) comes from the simulation
# in its own scanner frame (space-scanner). Both are registered the same way.
rule register_modality:
    input:
        image=lambda wc: (
            sim_paths.scan_file(
                OUT, wc.subject, wc.modality, wc.trc, wc.desc, "scanner"
            )
            if wc.trc
            else ras_image(wc.subject, wc.modality)
        ),
        brain=pp_anat(desc="rasbrain", suffix="T1w"),
        mask=pp_anat(desc="rasbrain", suffix="mask"),
        native=pp_anat(desc="brain", suffix="mask"),
        xfm_template=pp_xfm(from_="T1w", to="MNI152"),
    output:
        xfm=pp_xfm(
            trc=entity_wildcard("{trc}"),
            desc=entity_wildcard("{desc}"),
            from_="{modality}",
            to="T1w",
        ),
        xfm_inverse=pp_xfm(
            trc=entity_wildcard("{trc}"),
            desc=entity_wildcard("{desc}"),
            from_="T1w",
            to="{modality}",
        ),
        native=pp_scan("T1w"),
        template=pp_scan("MNI152"),
        qc=pp_scan("T1w", ".json"),
    log:
        f"{OUT}/logs/register_modality/sub-{{subject}}{{trc}}{{desc}}_{{modality}}.log",
    benchmark:
        f"{OUT}/benchmarks/register_modality/sub-{{subject}}{{trc}}{{desc}}_{{modality}}.tsv"
    wildcard_constraints:
        modality="pet|spect",
        trc="(_trc-[A-Za-z0-9]+)?",
        # not a desc ending in "brain": those are extract_scan_brain's outputs
        desc="(_desc-[A-Za-z0-9]+(?<!brain))?",
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    # one thread: the optimisation runs on one anyway (bit-identical reruns), so two
    # subjects' jobs share 2 cores instead of one leaving a core idle
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        cfg=PP_CFG,
        scan=lambda wc: f"{wc.modality}{wc.trc}{wc.desc}" if wc.trc else None,
    script:
        "../scripts/preprocess_register_modality.py"


# S2 extracted the brain of each modality by its own method (BET on the MRI and the PET, a
# histogram threshold on the SPECT): each registered scan a study reads, brain-extracted on both
# grids (spectsynth.preprocess.scan_brain). {bdesc} is the scan's desc followed by "brain"
# (desc-brain, desc-cbfbrain), as desc-ras gives desc-rasbrain for the T1w.
rule extract_scan_brain:
    input:
        native=lambda wc: registered_scan(wc, "T1w"),
        template=lambda wc: registered_scan(wc, "MNI152"),
    output:
        native_brain=pp_scan_brain("T1w", "{modality}"),
        native_mask=pp_scan_brain("T1w", "mask"),
        template_brain=pp_scan_brain("MNI152", "{modality}"),
        template_mask=pp_scan_brain("MNI152", "mask"),
        qc=pp_scan_brain(None, "qc", ".json"),
    log:
        f"{OUT}/logs/extract_scan_brain/sub-{{subject}}{{trc}}_desc-{{bdesc}}_{{modality}}.log",
    benchmark:
        f"{OUT}/benchmarks/extract_scan_brain/sub-{{subject}}{{trc}}_desc-{{bdesc}}_{{modality}}.tsv"
    wildcard_constraints:
        modality="pet|spect",
        trc="(_trc-[A-Za-z0-9]+)?",
        bdesc="[A-Za-z0-9]*brain",
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    # one thread: smoothing, a threshold and distance maps, a few seconds per grid
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        cfg=PP_CFG,
    script:
        "../scripts/preprocess_extract_scan_brain.py"


rule plot_preprocess_qc:
    input:
        t1w=pp_anat(desc="ras", suffix="T1w"),
        mask=pp_anat(desc="rasbrain", suffix="mask"),
        t1w_template=pp_anat(space="MNI152", desc="preproc", suffix="T1w"),
        t1w_native=pp_anat(desc="preproc", suffix="T1w"),
        striatum=pp_anat(desc="striatum", suffix="dseg"),
        territories=pp_anat(desc="territories", suffix="dseg"),
        reference=pp_anat(desc="reference", suffix="dseg"),
        levels=pp_anat(suffix="levels", extension=".tsv"),
    output:
        outline=report(
            pp_paths.figure(OUT, "{subject}", "templateoutline"),
            caption="../report/preprocess_outline.rst",
            category="2. Preprocessing",
            subcategory="Registration to MNI152",
            labels={"subject": "{subject}", "figure": "template outline"},
        ),
        labels=report(
            pp_paths.figure(OUT, "{subject}", "labels"),
            caption="../report/preprocess_labels.rst",
            category="2. Preprocessing",
            subcategory="Anatomy labels",
            labels={"subject": "{subject}", "figure": "label overlay"},
        ),
        mask=report(
            pp_paths.figure(OUT, "{subject}", "brainmask"),
            caption="../report/preprocess_mask.rst",
            category="2. Preprocessing",
            subcategory="Brain extraction",
            labels={"subject": "{subject}", "figure": "brain mask"},
        ),
    log:
        sub_log("plot_preprocess_qc"),
    benchmark:
        sub_bench("plot_preprocess_qc")
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=5,
    script:
        "../scripts/preprocess_plot_qc.py"


rule tabulate_registration_quality:
    input:
        lambda wc: pp_paths.registration_qc_files(OUT, SUBJECTS, has_modality)
        + [sc["qc"] for s in SUBJECTS for sc in sim_paths.scans(OUT, s, SIM).values()],
    output:
        report(
            f"{OUT}/qc/registration_quality.tsv",
            caption="../report/preprocess_quality.rst",
            category="2. Preprocessing",
            subcategory="Registration quality",
            labels={"table": "registration quality"},
        ),
    log:
        f"{OUT}/logs/tabulate_registration_quality/all.log",
    conda:
        "../../envs/preproc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/preprocess_tabulate_quality.py"


rule measure_registration_error:
    input:
        xfms=expand(pp_xfm(from_="T1w", to="MNI152"), subject=SUBJECTS),
        masks=expand(
            pp_anat(space="MNI152", desc="brain", suffix="mask"), subject=SUBJECTS
        ),
        truth=[str(demo_truth_paths(f"{OUT}/demo-bids", s)["pose"]) for s in SUBJECTS],
    output:
        report(
            f"{OUT}/qc/demo_registration_error.tsv",
            caption="../report/demo_registration_error.rst",
            category="2. Preprocessing",
            subcategory="Registration quality",
            labels={"table": "registration error on the demo cohort (mm)"},
        ),
    log:
        f"{OUT}/logs/measure_registration_error/all.log",
    benchmark:
        f"{OUT}/benchmarks/measure_registration_error/all.tsv"
    conda:
        "../../envs/preproc.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        bids_root=lambda wc, input: str(Path(input.truth[0]).parents[4]),
    script:
        "../scripts/measure_registration_error.py"


# Simulated PET/SPECT: register_modality's transforms against each scan's true pose (in its
# scanner-frame sidecar), the share of the brain in each field of view, and the input-vs-target
# SSIM of each paired study (Study.input_similarity) on the datasets' own slices next to the
# published value.
rule measure_scan_registration_error:
    input:
        lambda wc: sorted(
            {
                sc[k]
                for sc in sim_paths.scan_qc_inputs(OUT, SUBJECTS, SIM)
                for k in ("xfm", "frame_json", "mask")
            }
            | {
                f
                for d in similarity_pairs()
                if d in used_datasets()
                for fs in dataset_subject_files(d).values()
                for f in fs.values()
            }
        ),
    output:
        errors=report(
            f"{OUT}/qc/scan_registration_error.tsv",
            caption="../report/scan_registration_error.rst",
            category="2. Preprocessing",
            subcategory="Registration quality",
            labels={"table": "registration error of the simulated PET/SPECT (mm)"},
        ),
        qc=report(
            f"{OUT}/qc/scan_qc.tsv",
            caption="../report/scan_qc.rst",
            category="2. Preprocessing",
            subcategory="Registration quality",
            labels={"table": "simulated PET/SPECT vs real data (QC)"},
        ),
        figure=report(
            f"{OUT}/figures/scan_registration_error.png",
            caption="../report/scan_registration_error.rst",
            category="2. Preprocessing",
            subcategory="Registration quality",
            labels={"figure": "registration error of the simulated PET/SPECT"},
        ),
    log:
        f"{OUT}/logs/measure_scan_registration_error/all.log",
    benchmark:
        f"{OUT}/benchmarks/measure_scan_registration_error/all.tsv"
    conda:
        "../../envs/preproc.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        scans=lambda wc: sim_paths.scan_qc_inputs(OUT, SUBJECTS, SIM),
        datasets=lambda wc: {
            d: dataset_subject_files(d)
            for d in similarity_pairs()
            if d in used_datasets()
        },
        datasets_cfg=config.get("datasets", {}),
        data_range=(config.get("evaluate") or {}).get("data_range", 2.0),
        win_size=(config.get("evaluate") or {}).get("ssim_win_size", 7),
    script:
        "../scripts/measure_scan_registration_error.py"


# Per-subject preprocessing outputs for `rule all` (PET/SPECT only where present); on the demo
# cohort also the registration error against the true transforms.
TARGETS.append(
    lambda: pp_paths.preprocess_targets(OUT, SUBJECTS, has_modality)
    + ([f"{OUT}/qc/demo_registration_error.tsv"] if SOURCE == "demo" else [])
    + (
        [f"{OUT}/qc/scan_registration_error.tsv"]
        if SUBJECTS and sim_paths.scans(OUT, SUBJECTS[0], SIM)
        else []
    )
)
