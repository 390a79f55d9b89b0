# spectsynth: synthetic SPECT/PET from real MRI anatomy and the four studies built on it.
# Wiring only: configuration and its validation, the stage files, the final targets.
# The logic lives in the installable package under src/spectsynth.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/anatomy.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/clinical.smk"
include: "workflow/rules/report.smk"


# Each study's own rules, from its package (Study.rules; S0: its clinical outputs and its
# binding-ratio CNN).
for study_rules in STUDY_RULES:

    include: study_rules


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
