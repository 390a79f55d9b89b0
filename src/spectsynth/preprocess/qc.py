"""QC figures of the preprocessing/anatomy stages and the registration-quality table.

Figures are drawn with matplotlib from RAS+ arrays: axial and coronal views are shown in
neurological convention (the subject's left on the left of the panel, marked ``L``/``R``),
sagittal views with anterior to the right.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from ..io import save_figure, write_table  # noqa: E402
from ..labels import STRIATUM, TERRITORIES  # noqa: E402
from .register import Grid, resample, template_image  # noqa: E402

_VIEWS = ("sagittal", "coronal", "axial")


def _slice(data: np.ndarray, view: str, index: int) -> np.ndarray:
    if view == "sagittal":
        return data[index, :, :].T
    if view == "coronal":
        return data[:, index, :].T
    return data[:, :, index].T


def _centre(mask: np.ndarray) -> tuple[int, int, int]:
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(s // 2 for s in mask.shape)
    return tuple(int(v) for v in np.round(idx.mean(0)))


def _window(data: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    vals = data[mask] if mask is not None and mask.any() else data[data > 0]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _decorate(ax, view: str) -> None:
    """Neurological convention: RAS x grows to the right, so the subject's left is on the left."""
    ax.set_axis_off()
    if view in ("coronal", "axial"):
        ax.text(0.02, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=9, va="center")
        ax.text(0.98, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=9, va="center",
                ha="right")
    else:
        ax.text(0.98, 0.5, "A", transform=ax.transAxes, color="yellow", fontsize=9, va="center",
                ha="right")


def _show(ax, img: np.ndarray, vmin: float, vmax: float) -> None:
    ax.imshow(img, cmap="gray", origin="lower", vmin=vmin, vmax=vmax, interpolation="nearest")


def plot_template_outline(t1_template: nib.Nifti1Image, out_png: str | Path, *, subject: str,
                          template: nib.Nifti1Image | None = None) -> Path:
    """The registered T1w in template space with the template's brain and WM outlines on top."""
    template = template if template is not None else template_image()
    t = np.asanyarray(t1_template.dataobj).astype(np.float32)
    if template.shape[:3] != t.shape[:3] or not np.allclose(template.affine, t1_template.affine):
        template = resample(template, Grid.of(t1_template), [], interpolation="linear")
    tmpl = np.asanyarray(template.dataobj).astype(np.float32)
    brain = tmpl > 0
    wm_level = float(np.percentile(tmpl[brain], 70)) if brain.any() else 0.5
    centre = _centre(brain)
    vmin, vmax = _window(t, brain)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), facecolor="black")
    for ax, view, idx in zip(axes, _VIEWS, centre):
        _show(ax, _slice(t, view, idx), vmin, vmax)
        ax.contour(_slice(brain.astype(float), view, idx), levels=[0.5], colors="red", linewidths=0.8)
        ax.contour(_slice(tmpl, view, idx), levels=[wm_level], colors="cyan", linewidths=0.5)
        _decorate(ax, view)
        ax.set_title(view, color="white", fontsize=9)
    fig.suptitle(f"sub-{subject}: T1w in MNI152 space; template brain (red) and white-matter (cyan) "
                 "outlines", color="white", fontsize=10)
    return _save(fig, out_png)


def plot_brain_mask(t1: nib.Nifti1Image, mask: nib.Nifti1Image, out_png: str | Path, *, subject: str) -> Path:
    """The T1w with the brain-mask outline, three orthogonal views through the mask centre."""
    t = np.asanyarray(t1.dataobj).astype(np.float32)
    m = np.asanyarray(mask.dataobj) > 0
    centre = _centre(m)
    vmin, vmax = _window(t)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), facecolor="black")
    for ax, view, idx in zip(axes, _VIEWS, centre):
        _show(ax, _slice(t, view, idx), vmin, vmax)
        ax.contour(_slice(m.astype(float), view, idx), levels=[0.5], colors="lime", linewidths=0.9)
        _decorate(ax, view)
        ax.set_title(view, color="white", fontsize=9)
    vol = m.sum() * float(np.prod(mask.header.get_zooms()[:3])) / 1000
    fig.suptitle(f"sub-{subject}: brain mask ({vol:.0f} mL)", color="white", fontsize=10)
    return _save(fig, out_png)


_STRIATUM_COLOURS = ["#00000000", "#1f77b4", "#17becf", "#d62728", "#ff7f0e", "#2ca02c", "#98df8a"]
_TERRITORY_COLOURS = ["#00000000", "#e377c2", "#f7b6d2", "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78"]


def plot_labels(t1: nib.Nifti1Image, striatum: nib.Nifti1Image, territories: nib.Nifti1Image,
                reference: nib.Nifti1Image, out_png: str | Path, *, subject: str,
                levels: pd.DataFrame | None = None) -> Path:
    """Label overlays on the native T1w: striatum (axial + coronal), territories, reference regions."""
    t = np.asanyarray(t1.dataobj).astype(np.float32)
    s = np.asanyarray(striatum.dataobj).astype(int)
    ter = np.asanyarray(territories.dataobj).astype(int)
    ref = np.asanyarray(reference.dataobj).astype(int)
    cs = _centre(s > 0)
    vmin, vmax = _window(t, ter > 0)
    z_cor = cs[2] + 25
    if levels is not None and "COR" in set(levels["level"]):
        row = levels[levels["level"] == "COR"].iloc[0]
        z_cor = int((row["z_start"] + row["z_stop"] - 1) // 2)
    z_cer = _centre(ref == 2)[2]
    panels = [
        ("striatum, axial", "axial", cs[2], s, _STRIATUM_COLOURS),
        ("striatum, coronal", "coronal", cs[1], s, _STRIATUM_COLOURS),
        ("territories, basal ganglia level", "axial", cs[2], ter, _TERRITORY_COLOURS),
        ("territories, cortex level", "axial", min(z_cor, t.shape[2] - 1), ter, _TERRITORY_COLOURS),
        ("reference: occipital (pink), cerebellum (green)", "axial", z_cer, ref,
         ["#00000000", "#e377c2", "#2ca02c"]),
        ("reference, sagittal", "sagittal", _centre(ref > 0)[0], ref, ["#00000000", "#e377c2", "#2ca02c"]),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.5), facecolor="black")
    for ax, (title, view, idx, lab, colours) in zip(axes.ravel(), panels):
        _show(ax, _slice(t, view, idx), vmin, vmax)
        sl = _slice(lab, view, idx).astype(float)
        ax.imshow(np.ma.masked_where(sl == 0, sl), cmap=ListedColormap(colours), vmin=0,
                  vmax=len(colours) - 1, alpha=0.55, origin="lower", interpolation="nearest")
        _decorate(ax, view)
        ax.set_title(title, color="white", fontsize=9)
    names = ", ".join(f"{k}={v}" for k, v in STRIATUM.items())
    terr = ", ".join(f"{k}={v}" for k, v in TERRITORIES.items())
    fig.suptitle(f"sub-{subject}: anatomy in native space\nstriatum {names}\nterritories {terr}",
                 color="white", fontsize=8)
    return _save(fig, out_png)


def _save(fig, out_png: str | Path) -> Path:
    out = save_figure(fig, out_png, dpi=90, facecolor=fig.get_facecolor(), bbox_inches="tight")
    plt.close(fig)
    return out


def registration_table(json_files: Iterable[str | Path]) -> pd.DataFrame:
    """One row per registration from the QC JSON files of the registration and anatomy steps.

    Columns: subject, step, backend, dof, mask_dice (template step), signal_in_brain (PET/SPECT
    steps), metric, iterations, converged, seconds, and for the local striatal affines the
    striatum shift in mm and whether it was accepted.
    """
    rows = []
    for f in json_files:
        d = json.loads(Path(f).read_text())
        subject = d.get("subject")
        if "step" in d:
            rows.append({k: d.get(k) for k in ("subject", "step", "backend", "dof", "mask_dice",
                                               "signal_in_brain", "metric", "iterations", "converged",
                                               "seconds")})
        if "atlas_global" in d:
            g = d["atlas_global"]
            rows.append({"subject": subject, "step": "T1w->atlas", "backend": g.get("backend"), "dof": 12,
                         "metric": g.get("metric"), "iterations": g.get("iterations"),
                         "converged": g.get("converged"), "seconds": g.get("seconds")})
            for side, loc in (d.get("atlas_local") or {}).items():
                rows.append({"subject": subject, "step": f"T1w->atlas striatum {side}",
                             "backend": loc.get("backend"), "dof": 12, "metric": loc.get("metric"),
                             "iterations": loc.get("iterations"), "converged": loc.get("converged"),
                             "seconds": loc.get("seconds"), "striatum_shift_mm": loc.get("shift_mm"),
                             "accepted": loc.get("accepted")})
    cols = ["subject", "step", "backend", "dof", "mask_dice", "signal_in_brain", "metric", "iterations",
            "converged", "seconds", "striatum_shift_mm", "accepted"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("metric", "seconds", "mask_dice", "signal_in_brain"):
        df[c] = pd.to_numeric(df[c], errors="coerce").round(4)
    return df.sort_values(["subject", "step"], kind="stable").reset_index(drop=True)


def write_registration_table(json_files: Iterable[str | Path], out_tsv: str | Path) -> pd.DataFrame:
    """Write :func:`registration_table` as a TSV."""
    df = registration_table(json_files)
    write_table(df, out_tsv, what="registration quality table", na_rep="n/a")
    return df
