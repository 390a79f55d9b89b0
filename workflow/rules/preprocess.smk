# Preprocessing: brain extraction, T1w->MNI152 affine, native grid, PET/SPECT rigid + one-resampling
# outputs, QC figures and the registration-quality table.  Logic lives in spectsynth.preprocess.
#
# Grids: *_desc-ras* / *_desc-rasbrain* files lie on the input's own (RAS-reoriented) grid; files
# without a space entity lie on S2's native grid (256 x 256 x 192, 1 mm, the subject's T1w world
# space; the anatomy stage and the simulation read these); space-MNI152 files on the template grid.
#
# Needs from common.smk: OUT, SUBJECTS, has_modality(subject, mod), sub_log(rule), sub_bench(rule).

from spectsynth.preprocess import paths as pp_paths
from spectsynth.simulate import paths as sim_paths
from spectsynth.simulate.scan_qc import similarity_pairs

PP_CFG = config.get("preprocess", {}) or {}
PP_SUB = f"{OUT}/sub-{{subject}}"
PP_ANAT = f"{PP_SUB}/anat/sub-{{subject}}"
PP_XFM = f"{PP_SUB}/xfm/sub-{{subject}}"
PP_FIG = f"{PP_SUB}/figures/sub-{{subject}}"


rule extract_brain:
    input:
        t1w=f"{PP_ANAT}_desc-ras_T1w.nii.gz",
    output:
        brain=f"{PP_ANAT}_desc-rasbrain_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-rasbrain_mask.nii.gz",
        qc=f"{PP_ANAT}_desc-rasbrain_qc.json",
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
        t1w=f"{PP_ANAT}_desc-ras_T1w.nii.gz",
        brain=f"{PP_ANAT}_desc-rasbrain_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-rasbrain_mask.nii.gz",
    output:
        xfm=f"{PP_XFM}_from-T1w_to-MNI152_mode-image_xfm.tfm",
        xfm_inverse=f"{PP_XFM}_from-MNI152_to-T1w_mode-image_xfm.tfm",
        t1w=f"{PP_ANAT}_space-MNI152_desc-preproc_T1w.nii.gz",
        brain=f"{PP_ANAT}_space-MNI152_desc-brain_T1w.nii.gz",
        mask=f"{PP_ANAT}_space-MNI152_desc-brain_mask.nii.gz",
        qc=f"{PP_ANAT}_space-MNI152_desc-registration_qc.json",
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
        t1w=f"{PP_ANAT}_desc-ras_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-rasbrain_mask.nii.gz",
    output:
        t1w=f"{PP_ANAT}_desc-preproc_T1w.nii.gz",
        brain=f"{PP_ANAT}_desc-brain_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-brain_mask.nii.gz",
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
            else f"{OUT}/sub-{wc.subject}/{wc.modality}/sub-{wc.subject}_desc-ras_{wc.modality}.nii.gz"
        ),
        brain=f"{PP_ANAT}_desc-rasbrain_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-rasbrain_mask.nii.gz",
        native=f"{PP_ANAT}_desc-brain_mask.nii.gz",
        xfm_template=f"{PP_XFM}_from-T1w_to-MNI152_mode-image_xfm.tfm",
    output:
        xfm=f"{PP_XFM}{{trc}}{{desc}}_from-{{modality}}_to-T1w_mode-image_xfm.tfm",
        xfm_inverse=f"{PP_XFM}{{trc}}{{desc}}_from-T1w_to-{{modality}}_mode-image_xfm.tfm",
        native=f"{PP_SUB}/{{modality}}/sub-{{subject}}{{trc}}_space-T1w{{desc}}_{{modality}}.nii.gz",
        template=f"{PP_SUB}/{{modality}}/sub-{{subject}}{{trc}}_space-MNI152{{desc}}_{{modality}}.nii.gz",
        qc=f"{PP_SUB}/{{modality}}/sub-{{subject}}{{trc}}_space-T1w{{desc}}_{{modality}}.json",
    log:
        f"{OUT}/logs/register_modality/sub-{{subject}}{{trc}}{{desc}}_{{modality}}.log",
    benchmark:
        f"{OUT}/benchmarks/register_modality/sub-{{subject}}{{trc}}{{desc}}_{{modality}}.tsv"
    wildcard_constraints:
        modality="pet|spect",
        trc="(_trc-[A-Za-z0-9]+)?",
        desc="(_desc-[A-Za-z0-9]+)?",
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


rule plot_preprocess_qc:
    input:
        t1w=f"{PP_ANAT}_desc-ras_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-rasbrain_mask.nii.gz",
        t1w_template=f"{PP_ANAT}_space-MNI152_desc-preproc_T1w.nii.gz",
        t1w_native=f"{PP_ANAT}_desc-preproc_T1w.nii.gz",
        striatum=f"{PP_ANAT}_desc-striatum_dseg.nii.gz",
        territories=f"{PP_ANAT}_desc-territories_dseg.nii.gz",
        reference=f"{PP_ANAT}_desc-reference_dseg.nii.gz",
        levels=f"{PP_ANAT}_levels.tsv",
    output:
        outline=report(
            f"{PP_FIG}_desc-templateoutline_qc.png",
            caption="../report/preprocess_outline.rst",
            category="2. Preprocessing",
            subcategory="Registration to MNI152",
            labels={"subject": "{subject}", "figure": "template outline"},
        ),
        labels=report(
            f"{PP_FIG}_desc-labels_qc.png",
            caption="../report/preprocess_labels.rst",
            category="2. Preprocessing",
            subcategory="Anatomy labels",
            labels={"subject": "{subject}", "figure": "label overlay"},
        ),
        mask=report(
            f"{PP_FIG}_desc-brainmask_qc.png",
            caption="../report/preprocess_mask.rst",
            category="2. Preprocessing",
            subcategory="Brain extraction",
            labels={"subject": "{subject}", "figure": "brain mask"},
        ),
    log:
        sub_log("plot_preprocess_qc"),
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
        xfms=expand(
            f"{OUT}/sub-{{subject}}/xfm/sub-{{subject}}_from-T1w_to-MNI152_mode-image_xfm.tfm",
            subject=SUBJECTS,
        ),
        masks=expand(
            f"{OUT}/sub-{{subject}}/anat/sub-{{subject}}_space-MNI152_desc-brain_mask.nii.gz",
            subject=SUBJECTS,
        ),
        truth=expand(
            f"{OUT}/demo-bids/derivatives/groundtruth/sub-{{subject}}/xfm/sub-{{subject}}_from-T1w_to-MNI152_desc-pose_xfm.tfm",
            subject=SUBJECTS,
        ),
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
                if d in DATASETS
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
    conda:
        "../../envs/preproc.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        scans=lambda wc: sim_paths.scan_qc_inputs(OUT, SUBJECTS, SIM),
        datasets=lambda wc: {
            d: dataset_subject_files(d) for d in similarity_pairs() if d in DATASETS
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
