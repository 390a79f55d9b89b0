# Blinded reading packets (spectsynth.reading) of every study that has a visual reading
# (S0's clinical outputs are S0's own rules: src/spectsynth/studies/s0/rules.smk).
# reading_packet: for every experiment of a study with a reading (Study.reading; S1: real and generated slices
# shuffled into numbered PNGs with a scoring sheet; S3: the open and blind similarity packets);
# the key is written to a separate folder (reading/<experiment>/key), so the packet folder can
# be handed out as is.
#
# Needs from common.smk: OUT, CTX, EXPERIMENTS, STUDIES, EVAL_CFG, TARGETS.
READING = {
    "packet": f"{OUT}/reading/{{experiment}}/packet",
    "key": f"{OUT}/reading/{{experiment}}/key/key.csv",
}
READING_SCORES = {
    name: f"{OUT}/reading/{{experiment}}/scores/reading_{name}.tsv"
    for name in ("summary", "comparison", "agreement")
}
FILLED_SHEETS = config["reading_scores"]
READING_STUDIES = [s for s in STUDIES.values() if s.reading]
reading_experiments = lambda: [
    e for s in READING_STUDIES for e in CTX.experiments_of(s.name)
]
TARGETS.append(
    lambda: [
        p.format(experiment=e) for e in reading_experiments() for p in READING.values()
    ]
    + [
        p.format(experiment=e)
        for e in reading_experiments()
        if e in FILLED_SHEETS
        for p in READING_SCORES.values()
    ]
)
# The predictions, and what the study reads them against (S1: the real test slices).
reading_inputs = lambda wc: STUDIES[EXPERIMENTS[wc.experiment]["study"]].reading_inputs(
    CTX, wc
)


rule reading_packet:
    input:
        unpack(reading_inputs),
    output:
        packet=directory(READING["packet"]),
        key=READING["key"],
    log:
        f"{OUT}/logs/reading_packet/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/reading_packet/{{experiment}}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        study=lambda wc: EXPERIMENTS[wc.experiment]["study"],
        cfg=EVAL_CFG,
        seed=config["seed"],
    script:
        "../scripts/reading_packet.py"


rule score_reading:
    input:
        sheets=lambda wc: FILLED_SHEETS[wc.experiment],
        key=READING["key"],
    output:
        **{
            name: report(
                path,
                caption="../report/reading_scores.rst",
                category="9. Visual reading",
                subcategory="{experiment}",
                labels={"experiment": "{experiment}", "table": name},
            )
            for name, path in READING_SCORES.items()
        },
    log:
        f"{OUT}/logs/score_reading/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/score_reading/{{experiment}}.tsv"
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/score_reading.py"
