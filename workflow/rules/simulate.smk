# Simulation: synthetic DaT, perfusion, FDG and CBF volumes from each subject's anatomy, with
# ground truth (spectsynth.simulate). File names: spectsynth.simulate.paths.
# Needs OUT, SUBJECTS, SIM, sub_log, sub_bench, TARGETS (common.smk).
from spectsynth.inputs.demo import participant_ages, truth_paths as demo_truth_paths
from spectsynth.simulate import paths as sim_paths

SIM_PROJECTION = SIM.get("physics", "image") == "projection"
SIM_THREADS = SIM.get("projection", {}).get("threads", 1) if SIM_PROJECTION else 1
SIM_SUMMARY = sim_paths.summary_files(OUT, SIM)
TARGETS.append(lambda: sim_paths.targets(OUT, SUBJECTS, SIM))
# Each subject's age (participants.tsv) sets the age term of its global uptake level.
SIM_AGES = participant_ages(config, SUBJECTS)


# The demo's resection-cavity mask (ground truth): the simulator gives it no uptake.
sim_physiology_inputs = lambda wc: (
    {"resection": str(demo_truth_paths(f"{OUT}/demo-bids", wc.subject)["resection"])}
    if SOURCE == "demo"
    else {}
)


rule simulate_dat:
    input:
        unpack(sim_physiology_inputs),
        **sim_paths.anatomy_files(OUT),
    output:
        **sim_paths.dat_files(OUT),
    log:
        sub_log("simulate_dat"),
    benchmark:
        sub_bench("simulate_dat")
    group:
        "subject"
    conda:
        "../../envs/simulate.yaml"
    threads: SIM_THREADS
    resources:
        mem_mb=6000,
        runtime=90 if SIM_PROJECTION else 15,
    params:
        cfg=SIM,
        age=lambda wc: SIM_AGES.get(wc.subject),
    script:
        "../scripts/simulate_dat.py"


rule simulate_perfusion:
    input:
        unpack(sim_physiology_inputs),
        **sim_paths.anatomy_files(OUT),
    output:
        **sim_paths.perfusion_files(OUT, cfg=SIM),
    log:
        sub_log("simulate_perfusion"),
    benchmark:
        sub_bench("simulate_perfusion")
    group:
        "subject"
    conda:
        "../../envs/simulate.yaml"
    threads: SIM_THREADS
    resources:
        mem_mb=6000,
        runtime=45 if SIM_PROJECTION else 15,
    params:
        cfg=SIM,
        age=lambda wc: SIM_AGES.get(wc.subject),
    script:
        "../scripts/simulate_perfusion.py"


rule simulate_pet:
    input:
        unpack(sim_physiology_inputs),
        **sim_paths.anatomy_files(OUT),
    output:
        **sim_paths.pet_files(OUT, cfg=SIM),
    log:
        sub_log("simulate_pet"),
    benchmark:
        sub_bench("simulate_pet")
    group:
        "subject"
    conda:
        "../../envs/simulate.yaml"
    threads: SIM_THREADS
    resources:
        mem_mb=8000,
        runtime=30 if SIM_PROJECTION else 15,
    params:
        cfg=SIM,
        age=lambda wc: SIM_AGES.get(wc.subject),
    script:
        "../scripts/simulate_pet.py"


rule plot_simulation:
    input:
        **sim_paths.montage_inputs(OUT, "{subject}", SIM),
    output:
        report(
            sim_paths.montage_file(OUT),
            caption="../report/simulate_montage.rst",
            category="3. Simulation",
            subcategory="Montages",
            labels={"subject": "{subject}", "figure": "simulated slices"},
        ),
    log:
        sub_log("plot_simulation"),
    benchmark:
        sub_bench("plot_simulation")
    group:
        "subject"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=5,
    script:
        "../scripts/simulate_plot.py"


rule summarize_simulation:
    input:
        unpack(lambda wc: sim_paths.summary_inputs(OUT, SUBJECTS, SIM)),
    output:
        **{k: v for k, v in SIM_SUMMARY.items() if k in ("perfusion", "pet")},
        dat=report(
            SIM_SUMMARY["dat"],
            caption="../report/simulate_truth.rst",
            category="3. Simulation",
            subcategory="Ground truth",
            labels={"table": "DaT truth (cohort)"},
        ),
        summary=SIM_SUMMARY["summary"],
        figure=report(
            SIM_SUMMARY["figure"],
            caption="../report/simulate_sbr.rst",
            category="3. Simulation",
            subcategory="SBR distribution",
            labels={"figure": "measured SBR vs published bands"},
        ),
    log:
        f"{OUT}/logs/summarize_simulation/summarize_simulation.log",
    benchmark:
        f"{OUT}/benchmarks/summarize_simulation/summarize_simulation.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/simulate_summary.py"


# Realism: every measured property of the simulated data beside its target band and source
# (spectsynth.realism): resolution, noise, grey/white contrast, extracerebral signal and
# registration error per scan kind; the paired studies' input-vs-target SSIM and S3's ROI line on
# the built datasets; the DaT normal SBR spread.
rule realism:
    input:
        unpack(realism_inputs),
    output:
        table=report(
            f"{OUT}/qc/realism.tsv",
            caption="../report/realism.rst",
            category="3. Simulation",
            subcategory="Realism",
            labels={
                "table": "simulated data vs patients' scans: properties and target bands"
            },
        ),
        figure=report(
            f"{OUT}/figures/realism.png",
            caption="../report/realism.rst",
            category="3. Simulation",
            subcategory="Realism",
            labels={
                "figure": "simulated data vs patients' scans: position in each band"
            },
        ),
    log:
        f"{OUT}/logs/realism/realism.log",
    benchmark:
        f"{OUT}/benchmarks/realism/realism.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        shards=lambda wc: realism_shards(),
        territories=lambda wc: realism_labels(),
        normal_sbr=REALISM_NORMAL_SBR,
        data_range=EVAL_CFG.get("data_range", 2.0),
        win_size=EVAL_CFG.get("ssim_win_size", 7),
        subtitle=f"{SCALE_LABEL}, {len(SUBJECTS)} subjects",
    script:
        "../scripts/realism.py"


TARGETS.append(lambda: [f"{OUT}/qc/realism.tsv"] if SUBJECTS else [])
