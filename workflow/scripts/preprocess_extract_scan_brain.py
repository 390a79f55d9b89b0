"""Rule extract_scan_brain: brain-extract one registered PET/SPECT (native and template grids)."""

from spectsynth.logs import rule_log
from spectsynth.preprocess.steps import run_extract_scan_brain


def main(snakemake):
    with rule_log(snakemake):
        run_extract_scan_brain({"native": snakemake.input.native, "template": snakemake.input.template},
                               dict(snakemake.output.items()), modality=snakemake.wildcards.modality,
                               subject=snakemake.wildcards.subject, config=dict(snakemake.params.cfg))


main(snakemake)  # noqa: F821
