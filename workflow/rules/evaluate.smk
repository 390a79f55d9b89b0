# Evaluation: one rule per study of the registry (spectsynth.studies), evaluate_<key>: the
# study's metrics, statistics and figures from the prediction files. A study is evaluated only
# when at least one of its experiments is enabled; per experiment (S0, S3: {experiment}) or once
# for all of them (S1, S2), as the study says. Its outputs, report captions, inputs and params
# are the study's (Study.evaluation, evaluation_inputs, evaluation_params); the script calls
# Study.evaluate. Statistics that the data cannot support (too few samples, an empty group) are
# listed with the reason in not_computed.tsv, never written as NaN.
#
# Needs from common.smk: OUT, CTX, EVAL_CFG, SCALE_LABEL, STUDIES, TARGETS, evaluation_inputs,
# evaluation_params, evaluation_epochs, study_outputs.


for study in STUDIES.values():

    rule:
        name:
            f"evaluate_{study.key}"
        input:
            unpack(evaluation_inputs(study)),
        output:
            **study_outputs(study, study.evaluation),
        log:
            study.evaluation_log(OUT),
        benchmark:
            study.evaluation_benchmark(OUT)
        conda:
            "../../envs/stats.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            **evaluation_params(study),
            study=study.name,
            epochs=evaluation_epochs(study),
            n_cohort=len(SUBJECTS),
            cfg=EVAL_CFG,
            scale_label=SCALE_LABEL,
        script:
            "../scripts/evaluate_study.py"

    TARGETS.append(lambda study=study: study.evaluation_targets(CTX))
