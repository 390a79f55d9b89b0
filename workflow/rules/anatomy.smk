# Anatomy in each subject's native space: striatum (refined), reference regions, vascular
# territories, GM/WM/CSF probability maps and S1's slice levels.  Logic: spectsynth.anatomy.
#
# Needs from common.smk: OUT, SUBJECTS, sub_log(rule), sub_bench(rule); from preprocess.smk:
# PP_ANAT, PP_XFM, PP_CFG, pp_paths.


rule propagate_labels:
    input:
        t1w=f"{PP_ANAT}_desc-preproc_T1w.nii.gz",
        mask=f"{PP_ANAT}_desc-brain_mask.nii.gz",
        xfm_template=f"{PP_XFM}_from-T1w_to-MNI152_mode-image_xfm.tfm",
    output:
        striatum=f"{PP_ANAT}_desc-striatum_dseg.nii.gz",
        striatum_tsv=f"{PP_ANAT}_desc-striatum_dseg.tsv",
        reference=f"{PP_ANAT}_desc-reference_dseg.nii.gz",
        reference_tsv=f"{PP_ANAT}_desc-reference_dseg.tsv",
        territories=f"{PP_ANAT}_desc-territories_dseg.nii.gz",
        territories_tsv=f"{PP_ANAT}_desc-territories_dseg.tsv",
        gm=f"{PP_ANAT}_label-GM_probseg.nii.gz",
        wm=f"{PP_ANAT}_label-WM_probseg.nii.gz",
        csf=f"{PP_ANAT}_label-CSF_probseg.nii.gz",
        levels=f"{PP_ANAT}_levels.tsv",
        xfm_atlas=f"{PP_XFM}_from-T1w_to-atlas_mode-image_xfm.tfm",
        xfm_atlas_inverse=f"{PP_XFM}_from-atlas_to-T1w_mode-image_xfm.tfm",
        xfm_striatum_L=f"{PP_XFM}_from-T1w_to-atlas_desc-striatumL_mode-image_xfm.tfm",
        xfm_striatum_L_inverse=f"{PP_XFM}_from-atlas_to-T1w_desc-striatumL_mode-image_xfm.tfm",
        xfm_striatum_R=f"{PP_XFM}_from-T1w_to-atlas_desc-striatumR_mode-image_xfm.tfm",
        xfm_striatum_R_inverse=f"{PP_XFM}_from-atlas_to-T1w_desc-striatumR_mode-image_xfm.tfm",
        qc=f"{PP_ANAT}_desc-anatomy_qc.json",
    log:
        sub_log("propagate_labels"),
    benchmark:
        sub_bench("propagate_labels")
    group:
        "subject"
    conda:
        "../../envs/preproc.yaml"
    # one thread: its registrations optimise on one anyway (bit-identical reruns), so two
    # subjects' jobs share 2 cores instead of one leaving a core idle
    threads: 1
    resources:
        mem_mb=6000,
        runtime=15,
    params:
        anatomy=config.get("anatomy", {}) or {},
        registration=PP_CFG.get("registration", {}) or {},
    script:
        "../scripts/anatomy_propagate_labels.py"


# Per-subject anatomy outputs for `rule all`.
TARGETS.append(lambda: pp_paths.anatomy_targets(OUT, SUBJECTS))
