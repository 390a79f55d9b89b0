"""S2: pix2pix MRI / FDG-PET / both -> perfusion SPECT (Shokraei Fard et al., Front Neurol 2024).

The experiment grid is inputs (mri, pet, mri+pet) x spaces (native, template) x losses
(l1, l1+ssim): 12 runs from one compact entry; one dataset per space (``s2_native``,
``s2_template``); the evaluation compares the whole grid at once (Table 4, paired t-tests,
violin plots, verdicts) with two baselines (input as SPECT, per-pixel linear map of the training
split) and two floors (all background, the blurred brain outline), whole slice as S2 computed it
and inside the brain (the T1w brain mask, channel ``brain`` of the shards).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from ...paths import bids
from ..base import Context, Output, Similarity, Study, as_list, fail
from .published import PUBLISHED

INPUTS = {"mri": ["mri"], "pet": ["pet"], "mri+pet": ["mri", "pet"]}
SPACES = ("native", "template")
# loss token -> default lambda_ssim.  S2 publishes the loss formula, not its weights.  With
# lambda_L1 = 100 the two pixel terms start at about 100 x 0.7 (L1 of an untrained generator on
# (-1, 1) slices) and lambda_SSIM x 1 (1 - SSIM): lambda_SSIM = 50 gives the SSIM term about 40 %
# of the generator loss at the start, so the SSIM arm can matter.  The shares are measured in
# every run's history.csv (G_share_*).  Preset paper_weights is the pix2pix default weights with
# lambda_SSIM = 1, not a published value.
SSIM_WEIGHT = 50.0
LOSSES = {"l1": 0.0, "l1+ssim": SSIM_WEIGHT}
# lambda_SSIM of the l1+ssim runs under a preset (the l1 runs always have 0); paper_weights: the
# pix2pix default weights with lambda_SSIM = 1 (not a value S2 publishes)
PRESET_SSIM_WEIGHT: dict[str, float] = {"paper_weights": 1.0}
TOKEN = {"mri+pet": "mripet", "l1+ssim": "l1ssim"}

_T = ("table",)
_F = ("figure",)


# S2 Table 4's native-space SSIMs of its models (every input and loss)
_NATIVE_SSIM = [r["mean"] for r in PUBLISHED["table4"] if r["space"] == "native" and r["metric"] == "ssim"]


class S2(Study):
    name = "S2"
    key = "s2"
    families = ("pix2pix",)
    # S2: batch 8, lr 1e-4, 1000 epochs; beta1 0.5 and lambda_L1 100 kept from the pix2pix
    # reference S2 says it started from (S2 reports only the changed batch size and rate).
    training_defaults = {"epochs": 1000, "batch_size": 8, "lr": 1e-4, "betas": [0.5, 0.999],
                         "selection_metric": "ssim"}
    # "brain": the T1w brain mask of the space; it chooses the slices and masks the in-brain
    # metrics, never a model input (spectsynth.datasets.BRAIN_CHANNEL)
    channels = ("mri", "pet", "spect", "brain")
    roles = ("mri", "pet", "spect", "brain")
    condition_columns = ()
    report_category = "7. Results S2"
    per_experiment = False
    stamp = "slice_metrics"
    resected_split = "test"               # S2's unseen patients include post-surgical brains
    similarity_dataset = "s2_native"
    # realism band: the input alone clearly below S2's native-space models (Table 4 SSIM 0.86-0.88)
    input_similarity = tuple(
        Similarity(a, "spect", label, None, f"S2 reports no input-vs-target SSIM (its {model} model: {ssim:g})",
                   band_high=0.75, band_source="S2 Table 4",
                   band_note=f"clearly below S2's native-space models (SSIM {min(_NATIVE_SSIM):g}-"
                             f"{max(_NATIVE_SSIM):g}); S2 reports no input-vs-target SSIM")
        for a, label, model, ssim in (("mri", "MRI vs SPECT", "MRI->SPECT", 0.87),
                                      ("pet", "PET vs SPECT", "PET->SPECT", 0.88)))
    evaluation_param_names = ("experiments", "datasets", "specs")
    evaluation = {
        "slice_metrics": Output("slice_metrics.tsv", "evaluate_s2.rst", "Tables", ("table", "per-slice RMSE, SSIM, PSNR")),
        "ttests": Output("ttests.tsv", "evaluate_s2.rst", "Statistics", ("table", "paired t-tests")),
        "table4": Output("table4.tsv", "evaluate_s2.rst", "Tables",
                         ("table", "Table 4 (mean, CV) with baselines and published rows")),
        "published": Output("published.tsv", "evaluate_s2.rst", "Tables", ("table", "ours next to the published values")),
        "verdicts": Output("verdicts.tsv", "evaluate_s2.rst", "Statistics",
                           ("table", "verdicts on the published findings")),
        "violin": Output("violin_metrics.png", "evaluate_s2.rst", "Figures",
                         ("figure", "violin plots per metric, with baselines")),
        "not_computed": Output("not_computed.tsv", "evaluate_not_computed.rst", "Statistics",
                               ("table", "statistics not computed")),
    }

    # 30 / 6 / 12 of S2's 48 patients (spectsynth.design checks it at paper scale)

    def expand(self, name: str, model: str, entry: Mapping, cfg: Mapping) -> list[tuple[str, dict]]:
        size = self.size(cfg, name)
        inputs = as_list(entry.get("inputs"), list(INPUTS))
        spaces = as_list(entry.get("spaces"), list(SPACES))
        losses = as_list(entry.get("losses"), list(LOSSES))
        for values, allowed, key in ((inputs, INPUTS, "inputs"), (spaces, SPACES, "spaces"),
                                     (losses, LOSSES, "losses")):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise fail(name, f"unknown {key} {bad}", f"Use values from {', '.join(allowed)}")
        runs = []
        for inp, space, loss in itertools.product(inputs, spaces, losses):
            tok = "_".join(TOKEN.get(t, t) for t in (inp, space, loss))
            extra = {"dataset": f"{self.key}_{space}", "size": size, "input_channels": INPUTS[inp],
                     "target_channels": ["spect"], "input": inp, "space": space, "loss": loss}
            if entry.get("lambda_ssim") is None:
                preset_ssim = PRESET_SSIM_WEIGHT.get(entry.get("preset") or "study")
                extra["lambda_ssim"] = LOSSES[loss] if loss == "l1" or preset_ssim is None else preset_ssim
            elif loss == "l1":
                extra["lambda_ssim"] = 0.0
            runs.append((f"{name}_{tok}", extra))
        return runs

    # ------------------------------------------------------------------ datasets
    def dataset_names(self, spec: Mapping) -> list[str]:
        return [f"{self.key}_{sp}" for sp in spec["spaces"]]

    def resolve_dataset(self, spec: dict, name: str) -> None:
        spec["space"] = name.split("_", 1)[1] if "_" in name else None
        if spec["space"] not in spec["spaces"]:
            raise ConfigError(f"dataset {name}: space {spec['space']!r} is not in datasets.{self.key}.spaces "
                              f"{spec['spaces']}")

    def subject_files(self, dataset: str, out: str, subject: str, sim: Mapping) -> dict[str, str]:
        from ...simulate import paths as sim_paths

        space = dataset.split("_", 1)[1]
        scans = sim_paths.scans(out, subject, sim)   # registered by register_modality
        # S2 extracted each modality's brain by its own method: FSL BET on the MRI and the PET, a
        # histogram threshold on the SPECT. The MRI is the brain-extracted T1w; the PET and SPECT
        # are extract_scan_brain's outputs; "brain" stays the T1w brain mask.
        grid = None if space == "native" else "MNI152"

        def brain(suffix: str) -> str:
            return bids(out, subject=subject, datatype="anat", space=grid, desc="brain", suffix=suffix)

        return {"mri": brain("T1w"), "pet": scans["fdg"][f"{space}_brain"],
                "spect": scans["perfusion"][f"{space}_brain"], "brain": brain("mask")}

    def keeps_record(self, rec: Mapping, spec: Mapping) -> bool:
        return rec.get("space") in (None, spec.get("space"))

    # ------------------------------------------------------------------ evaluation
    def evaluation_inputs(self, ctx: Context, wildcards) -> dict[str, Any]:
        files: dict[str, Any] = {}
        exps = ctx.experiments_of(self.name)
        for e in exps:
            files |= {f"{e}_{k}": v for k, v in ctx.predictions(e).items()}
        # the training split of each dataset: the per-pixel linear map is fitted on it
        for d in sorted({ctx.experiments[e]["dataset"] for e in exps}):
            sh = ctx.shards(d)
            files |= {f"{d}_train": sh["train"], f"{d}_index": sh["index"]}
        return files

    def evaluation_params(self, ctx: Context, wildcards) -> dict[str, Any]:
        exps = ctx.experiments_of(self.name)
        return {"experiments": exps, "datasets": sorted({ctx.experiments[e]["dataset"] for e in exps}),
                "specs": {e: ctx.experiments[e] for e in exps}}

STUDY = S2()
