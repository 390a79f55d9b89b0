# Provenance and the pieces of the HTML report that belong to no single stage.


rule write_provenance:
    output:
        config=report(
            f"{OUT}/provenance/config.resolved.yaml",
            caption="../report/provenance.rst",
            category="0. Methods",
            labels={"file": "resolved configuration"},
        ),
        versions=report(
            f"{OUT}/provenance/versions.tsv",
            caption="../report/provenance.rst",
            category="0. Methods",
            labels={"file": "package versions"},
        ),
        info=f"{OUT}/provenance/run.json",
    log:
        f"{OUT}/logs/write_provenance/write_provenance.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=config,
        repo=workflow.basedir,
    script:
        "../scripts/write_provenance.py"


# The results folder is a BIDS-derivatives dataset: its description, and what BIDS tools skip.
rule bids_description:
    output:
        description=f"{OUT}/dataset_description.json",
        bidsignore=f"{OUT}/.bidsignore",
    log:
        f"{OUT}/logs/bids_description/bids_description.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        source=SOURCE,
        bids_root=config["inputs"]["bids"]["root"] if SOURCE == "bids" else None,
    script:
        "../scripts/write_bids_description.py"


# The run's headline: every study's verdict rows in one table (spectsynth.headline); the README
# quotes the demo's through `spectsynth headline`, checked by the test suite.
rule headline:
    input:
        verdicts=lambda wc: list(CTX.verdict_files()),
    output:
        table=report(
            f"{OUT}/headline.tsv",
            caption="../report/headline.rst",
            category="0. Methods",
            labels={"file": "headline: every published finding and its verdict"},
        ),
        markdown=f"{OUT}/headline.md",
    log:
        f"{OUT}/logs/headline/headline.log",
    benchmark:
        f"{OUT}/benchmarks/headline/headline.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        experiments=lambda wc: CTX.verdict_files(),
        scale_label=SCALE_LABEL,
        n_subjects=len(SUBJECTS),
    script:
        "../scripts/write_headline.py"


TARGETS.append(lambda: [f"{OUT}/headline.tsv"] if CTX.verdict_files() else [])
