"""S0 clinical outputs: deficit maps, regional deficits, normal databases and z-scores
(spectsynth.studies.s0.clinical.s0_clinical_outputs)."""

from spectsynth.logs import setup_logging
from spectsynth.provenance import stamp_outputs
from spectsynth.studies.s0.clinical import s0_clinical_outputs

OUTPUTS = ("deficit_maps", "deficit_figure", "regional_deficits", "deficit_summary", "normal_database",
           "zscores", "database_agreement", "zscore_figure", "not_computed")


def main(smk):
    log = setup_logging(smk.log[0])
    cfg = smk.params.cfg
    try:
        s0_clinical_outputs(
            smk.wildcards.experiment, predictions={"h5": smk.input.h5, "tsv": smk.input.tsv},
            best_pt=smk.input.best,
            normal_shards={"train": smk.input.train, "val": smk.input.val, "index": smk.input.index},
            subject_files=smk.params.subject_files, out={k: smk.output[k] for k in OUTPUTS},
            cfg=cfg["clinical"], seg_cfg=cfg["bg_segmentation"], spec=smk.params.spec,
            scale_label=smk.params.scale_label, convention=cfg["display_convention"],
            dpi=int(cfg["figure_dpi"]), seed=int(smk.params.seed), batch_size=int(cfg["batch_size"]),
            device=smk.params.spec["training"]["device"])
        stamp_outputs(smk, "regional_deficits")
    except Exception as exc:
        log.error("%s", exc)
        raise


main(snakemake)  # noqa: F821
