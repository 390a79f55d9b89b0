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
