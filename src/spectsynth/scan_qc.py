"""Do the simulated scans behave as real data?  Registration error, field of view, similarity.

* :func:`scan_error_table`: per scan (subject x scan), the error of register_modality's
  transform against the true pose (:func:`registration_error`), the size of the pose
  it had to undo, and the share of the brain inside the scanner's field of view.
* :func:`similarity_table`: per slice, the input-vs-target SSIM of each paired study (its
  ``input_similarity``: S2 MRI vs SPECT, PET vs SPECT; S3 SPECT-CBF vs PET-CBF), on exactly the slices, grids and normalisation the
  datasets feed the networks (:func:`spectsynth.datasets.extract_slices` of the registered
  images), with the study's published value where it reports one.
* :func:`qc_summary`: one row per modality/scan kind and one per similarity: mean, SD, range,
  and the published value next to it, so a reader sees whether the synthetic task is as hard
  as the real one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .errors import InputDataError, context
from .io import save_figure, write_table
from .simulate.frames import pose_magnitude, read_truth

log = logging.getLogger(__name__)


def similarity_pairs() -> dict[str, tuple[str, list]]:
    """Dataset -> (study, [:class:`~spectsynth.studies.base.Similarity`]): the input-vs-target
    pairs each paired study measures on its first dataset, with the value the study reports."""
    from .studies import REGISTRY

    return {st.similarity_dataset: (st.name, list(st.input_similarity))
            for st in REGISTRY.values() if st.input_similarity}


def _pair(study: str, a: str, b: str):
    for name, pairs in similarity_pairs().values():
        for pair in pairs:
            if (name, pair.input, pair.target) == (study, a, b):
                return pair
    return None


def registration_error(true_t1w_to_scanner: np.ndarray, estimated_xfm: str | Path, brain_mask: str | Path,
                       n_points: int = 4000) -> dict:
    """Error (mm) of an estimated ``from-<modality>_to-T1w`` transform against the true pose.

    For points ``q`` spread over the T1w brain mask, the estimated transform says that the
    anatomy at ``q`` lies at scan point ``est(q)``; the truth puts that scan point back at
    ``P^-1(est(q))`` in the T1w.  The error is ``|P^-1(est(q)) - q|``: how far the registered
    scan's anatomy lies from where the T1w has it.
    """
    import SimpleITK as sitk

    est = sitk.ReadTransform(str(estimated_xfm))
    mask = nib.load(str(brain_mask))
    idx = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    if len(idx) == 0:
        raise InputDataError("brain mask is empty", path=brain_mask,
                             hint="Check this subject's brain extraction")
    idx = idx[:: max(1, len(idx) // n_points)]
    ras = nib.affines.apply_affine(mask.affine, idx)
    flip = np.array([-1.0, -1.0, 1.0])
    moved = np.array([est.TransformPoint(tuple(p)) for p in ras * flip]) * flip
    back = nib.affines.apply_affine(np.linalg.inv(np.asarray(true_t1w_to_scanner, float)), moved)
    err = np.linalg.norm(back - ras, axis=1)
    return {"n_points": int(len(err)), "mean_mm": round(float(err.mean()), 3),
            "median_mm": round(float(np.median(err)), 3), "p95_mm": round(float(np.percentile(err, 95)), 3),
            "max_mm": round(float(err.max()), 3)}


def scan_error_table(scans: Sequence[Mapping[str, str]], out_tsv: str | Path | None = None) -> pd.DataFrame:
    """Registration error of every scan against its true pose.

    ``scans``: one mapping per scan with ``subject``, ``scan`` (name), ``label``
    (e.g. ``pet_trc-FDG``), ``modality``, ``xfm`` (estimated from-<modality>_to-T1w),
    ``frame_json`` (scanner-frame sidecar with the true pose) and ``mask`` (the subject's T1w
    brain mask on any grid of its world space).
    """
    rows = []
    for sc in scans:
        truth = read_truth(sc["frame_json"])
        pose = truth["pose"]
        err = registration_error(np.asarray(pose["t1w_to_scanner"], float), sc["xfm"], sc["mask"])
        rows.append({"subject": sc["subject"], "scan": sc["scan"], "label": sc["label"],
                     "modality": sc["modality"],
                     "true_rotation_deg": ";".join(f"{v:.2f}" for v in pose["rotation_deg"]),
                     "true_shift_mm": ";".join(f"{v:.2f}" for v in pose["shift_mm"]),
                     "pose_displacement_mm": pose_magnitude(pose, sc["mask"]), **err,
                     **truth["field_of_view"]})
    df = pd.DataFrame(rows)
    if out_tsv is not None:
        write_table(df, out_tsv, what="scan registration errors", na_rep="n/a")
    if len(df):
        log.info("scan registration error over %d scans: mean %.2f mm, worst p95 %.2f mm", len(df),
                 df["mean_mm"].mean(), df["p95_mm"].max())
    return df


def similarity_table(dataset_files: Mapping[str, Mapping[str, Mapping[str, str]]], datasets_cfg: Mapping, *,
                     data_range: float = 2.0, win_size: int | None = None) -> pd.DataFrame:
    """Per-slice input-vs-target SSIM of S2 (native) and S3, on the datasets' own slices.

    ``dataset_files``: dataset name (``s2_native``, ``s3``) -> subject -> role -> path (what
    build_dataset reads).  Slices are those :func:`spectsynth.datasets.extract_slices` cuts
    (normalised to (-1, 1), so ``data_range`` 2 as in the evaluation).
    """
    from . import metrics
    from .datasets import records_from_files
    from .studies import dataset_entries, dataset_spec, extract_slices, get

    rows = []
    pairs_of = similarity_pairs()
    for name, subject_files in dataset_files.items():
        if name not in pairs_of or not subject_files:
            continue
        study, pairs = pairs_of[name]
        spec = dataset_spec({"datasets": dict(datasets_cfg or {})}, name)
        images, meta = extract_slices(study, records_from_files(dataset_entries(name, subject_files)), spec)
        channels = get(study).channels
        for i, m in enumerate(meta):
            with context(experiment=f"qc {name}", subject=m["subject"]):
                for a, b in ((p.input, p.target) for p in pairs):
                    x, y = images[i, channels.index(a)], images[i, channels.index(b)]
                    rows.append({"study": study, "dataset": name, "subject": m["subject"],
                                 "slice_index": m.get("slice_index"), "input": a, "target": b,
                                 "ssim": metrics.ssim(x, y, data_range=data_range, win_size=win_size)})
    return pd.DataFrame(rows, columns=["study", "dataset", "subject", "slice_index", "input", "target", "ssim"])


def _stats(values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return {"n": int(len(v)), "mean": round(float(v.mean()), 4) if len(v) else None,
            "sd": round(float(v.std(ddof=0)), 4) if len(v) else None,
            "min": round(float(v.min()), 4) if len(v) else None, "max": round(float(v.max()), 4) if len(v) else None}


def qc_summary(errors: pd.DataFrame, similarity: pd.DataFrame, out_tsv: str | Path | None = None) -> pd.DataFrame:
    """The benchmark-style QC table: one row per (scan kind, measure), published value beside it."""
    rows = []
    for (scan, modality), g in errors.groupby(["scan", "modality"], sort=True):
        for measure, col, note in (
                ("registration error (mm, mean over the brain)", "mean_mm",
                 "register_modality vs the true pose; rigid MI registration of real PET/SPECT to MRI is "
                 "accurate to about 2-3 mm"),
                ("registration error (mm, 95th percentile)", "p95_mm", ""),
                ("pose to undo (mm, mean brain displacement)", "pose_displacement_mm",
                 "the simulated head pose (rotation + shift) the registration removed"),
                ("share of the brain inside the field of view", "brain_in_fov",
                 "real axial FOVs occasionally clip the vertex or the cerebellum")):
            rows.append({"scan": scan, "modality": modality, "measure": measure, **_stats(g[col]),
                         "published": None, "note": note})
    for (study, a, b), g in similarity.groupby(["study", "input", "target"], sort=False):
        pair = _pair(study, a, b)
        published, note = (pair.published, pair.note) if pair else (None, "")
        st = _stats(g["ssim"])
        diff = round(st["mean"] - published, 4) if published is not None and st["mean"] is not None else None
        rows.append({"scan": f"{study} {a} vs {b}", "modality": "", "measure": "input-vs-target SSIM (slices)",
                     **st, "published": published, "difference": diff, "note": note})
    df = pd.DataFrame(rows, columns=["scan", "modality", "measure", "n", "mean", "sd", "min", "max", "published",
                                     "difference", "note"])
    if out_tsv is not None:
        write_table(df, out_tsv, what="scan similarity against the published values", na_rep="n/a")
    return df


def plot_errors(errors: pd.DataFrame, similarity: pd.DataFrame, out_png: str | Path) -> Path:
    """Registration error per scan kind (with the pose it undid) and the brain share in the FOV."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    kinds = sorted(errors["scan"].unique()) if len(errors) else []
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    rng = np.random.default_rng(0)
    for i, k in enumerate(kinds):
        g = errors[errors["scan"] == k]
        jitter = rng.uniform(-0.15, 0.15, len(g))
        axes[0].scatter(i + jitter, g["mean_mm"], s=18, label="mean" if i == 0 else None, color="C0")
        axes[0].scatter(i + jitter, g["p95_mm"], s=18, marker="^", label="95th pct" if i == 0 else None,
                        color="C3")
        axes[1].scatter(g["pose_displacement_mm"], g["mean_mm"], s=18, label=k)
        axes[2].scatter(i + jitter, g["brain_in_fov"], s=18, color="C2")
    for ax in (axes[0], axes[2]):
        ax.set_xticks(range(len(kinds)))
        ax.set_xticklabels(kinds, rotation=20)
    axes[0].set_ylabel("registration error (mm)")
    axes[0].set_title("register_modality vs true pose")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("pose to undo (mm)")
    axes[1].set_ylabel("error after registration (mm)")
    axes[1].legend(fontsize=7)
    axes[1].set_title("error vs misalignment")
    axes[2].set_ylabel("share of the brain in the FOV")
    axes[2].set_ylim(min(0.8, float(errors["brain_in_fov"].min()) - 0.02) if len(errors) else 0.8, 1.005)
    title = "scanner-frame PET/SPECT"
    if len(similarity):
        for study, pairs in similarity_pairs().values():
            for pair in pairs:
                sel = similarity[(similarity["study"] == study) & (similarity["input"] == pair.input)
                                 & (similarity["target"] == pair.target)]["ssim"]
                if len(sel) and pair.published is not None:
                    title += f"; {study} {pair.label} SSIM {sel.mean():.2f} (paper {pair.published:.2f})"
    fig.suptitle(title)
    fig.tight_layout()
    out = save_figure(fig, out_png, dpi=90, format="png")
    plt.close(fig)
    return out


def run_scan_qc(scans: Sequence[Mapping[str, str]], dataset_files: Mapping, datasets_cfg: Mapping,
                outputs: Mapping[str, str], *, data_range: float = 2.0, win_size: int | None = None) -> None:
    """The workflow's rule: ``outputs`` ``errors`` (TSV), ``qc`` (TSV), ``figure`` (PNG)."""
    errors = scan_error_table(scans, outputs["errors"])
    sim = similarity_table(dataset_files, datasets_cfg, data_range=data_range, win_size=win_size)
    qc_summary(errors, sim, outputs["qc"])
    plot_errors(errors, sim, outputs["figure"])
