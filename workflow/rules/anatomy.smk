# Anatomy in each subject's native space: striatum (refined), reference regions, vascular
# territories, GM/WM/CSF probability maps and S1's slice levels.  Logic: spectsynth.anatomy.
#
# Needs from common.smk: OUT, SUBJECTS, sub_log(rule), sub_bench(rule), pp_anat, pp_xfm,
# PP_CFG, pp_paths, TARGETS.


rule propagate_labels:
    input:
        t1w=pp_anat(desc="preproc", suffix="T1w"),
        mask=pp_anat(desc="brain", suffix="mask"),
        xfm_template=pp_xfm(from_="T1w", to="MNI152"),
    output:
        striatum=pp_anat(desc="striatum", suffix="dseg"),
        striatum_tsv=pp_anat(desc="striatum", suffix="dseg", extension=".tsv"),
        reference=pp_anat(desc="reference", suffix="dseg"),
        reference_tsv=pp_anat(desc="reference", suffix="dseg", extension=".tsv"),
        territories=pp_anat(desc="territories", suffix="dseg"),
        territories_tsv=pp_anat(desc="territories", suffix="dseg", extension=".tsv"),
        gm=pp_anat(label="GM", suffix="probseg"),
        wm=pp_anat(label="WM", suffix="probseg"),
        csf=pp_anat(label="CSF", suffix="probseg"),
        levels=pp_anat(suffix="levels", extension=".tsv"),
        xfm_atlas=pp_xfm(from_="T1w", to="atlas"),
        xfm_atlas_inverse=pp_xfm(from_="atlas", to="T1w"),
        xfm_striatum_L=pp_xfm(from_="T1w", to="atlas", desc="striatumL"),
        xfm_striatum_L_inverse=pp_xfm(from_="atlas", to="T1w", desc="striatumL"),
        xfm_striatum_R=pp_xfm(from_="T1w", to="atlas", desc="striatumR"),
        xfm_striatum_R_inverse=pp_xfm(from_="atlas", to="T1w", desc="striatumR"),
        qc=pp_anat(desc="anatomy", suffix="qc", extension=".json"),
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
