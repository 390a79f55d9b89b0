"""Figures of the simulation: a montage per subject and the cohort's SBR distribution.

Axial slices are shown in radiological convention (the subject's right on the left of the
image, marked "R"), anterior up.  Simulated volumes are sampled on the T1w's slice through
the world coordinates of both grids, so the panels show what a viewer overlaying the files
would show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..io import save_figure
from .truth import PUBLISHED_RANGES


@dataclass
class Panel:
    """One row of the montage: a simulated volume, the world z of the slice to show and the colour
    map of the volume (its tracer's, :attr:`.registry.Tracer.colormap`)."""

    title: str
    volume: np.ndarray
    affine: np.ndarray
    z_mm: float
    cmap: str = "viridis"


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def slice_on_grid(volume: np.ndarray, affine: np.ndarray, ref_shape: Sequence[int], ref_affine: np.ndarray,
                  k: int) -> np.ndarray:
    """Axial slice ``k`` of a reference grid, sampled from ``volume`` (linear interpolation)."""
    nx, ny = int(ref_shape[0]), int(ref_shape[1])
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    vox = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)])
    src = np.linalg.inv(np.asarray(affine, float)) @ np.asarray(ref_affine, float) @ vox
    vals = ndimage.map_coordinates(np.asarray(volume, np.float32), src[:3], order=1, mode="constant", cval=0.0)
    return vals.reshape(nx, ny)


def _show(ax, data: np.ndarray, cmap: str, vmax: float | None = None, title: str | None = None):
    img = np.asarray(data)[::-1, :].T  # radiological: subject's right on the left, anterior up
    im = ax.imshow(img, origin="lower", cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.02, 0.96, "R", transform=ax.transAxes, color="white", fontsize=8, va="top")
    ax.text(0.98, 0.96, "L", transform=ax.transAxes, color="white", fontsize=8, va="top", ha="right")
    if title:
        ax.set_title(title, fontsize=8)
    return im


def montage(t1: np.ndarray, t1_affine: np.ndarray, panels: Sequence[Panel], path: str | Path, *,
            subject: str = "") -> Path:
    """Rows of (T1w, simulated slice, overlay) at each panel's level; writes a PNG."""
    plt = _mpl()
    n = len(panels)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    inv = np.linalg.inv(np.asarray(t1_affine, float))
    t1max = float(np.percentile(t1[t1 > 0], 99.5)) if np.any(t1 > 0) else 1.0
    for row, p in zip(axes, panels):
        centre = (np.asarray(t1.shape) - 1) / 2.0
        world = np.asarray(t1_affine, float) @ np.array([centre[0], centre[1], 0.0, 1.0])
        world[2] = p.z_mm
        k = int(np.clip(np.rint((inv @ world)[2]), 0, t1.shape[2] - 1))
        t1_slice = t1[:, :, k]
        sim = slice_on_grid(p.volume, p.affine, t1.shape, t1_affine, k)
        vmax = float(np.percentile(p.volume, 99.9)) or 1.0
        _show(row[0], t1_slice, "gray", t1max, f"T1w z={p.z_mm:.0f} mm")
        im = _show(row[1], sim, p.cmap, vmax, p.title)
        _show(row[2], t1_slice, "gray", t1max, "overlay")
        row[2].imshow(np.ma.masked_less(sim[::-1, :].T, 0.15 * vmax), origin="lower", cmap="hot", alpha=0.6,
                      vmin=0, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=row[1], fraction=0.046, pad=0.02, label="counts")
    if subject:
        fig.suptitle(f"sub-{subject}: simulated images next to the T1w", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (2.5 * n)))
    path = save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def sbr_distribution(table: pd.DataFrame, path: str | Path) -> Path:
    """Measured SBR of the cohort against the published normal/PD bands; writes a PNG.

    Left: caudate vs putamen SBR (both sides pooled) of every DaT volume, coloured by PBR,
    with the published normal and PD boxes.  Middle: putamen asymmetry of the normal
    images and of the degraded ones with SLR < 1, with the published bands.  Right:
    measured against true SBR (the partial-volume loss the calibration compensates).
    """
    plt = _mpl()
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    normal = table["pattern"] == "normal"
    sc = ax.scatter(table.loc[~normal, "meas_sbr_putamen"], table.loc[~normal, "meas_sbr_caudate"],
                    c=table.loc[~normal, "pbr"], cmap="viridis", s=14, vmin=0, vmax=1, label="degraded")
    ax.scatter(table.loc[normal, "meas_sbr_putamen"], table.loc[normal, "meas_sbr_caudate"], marker="*", s=90,
               c="crimson", edgecolors="k", linewidths=0.4, label="normal (undegraded)")
    for group, colour in (("normal", "crimson"), ("PD", "royalblue")):
        (c0, c1), (p0, p1) = PUBLISHED_RANGES[group]["caudate"], PUBLISHED_RANGES[group]["putamen"]
        ax.add_patch(Rectangle((p0, c0), p1 - p0, c1 - c0, fill=False, ec=colour, lw=2, ls="--",
                               label=f"published {group}"))
    ax.set_xlabel("measured putamen SBR")
    ax.set_ylabel("measured caudate SBR")
    ax.legend(fontsize=7, loc="upper left")
    fig.colorbar(sc, ax=ax, label="PBR")
    ax.set_title("Measured SBR (occipital reference)")
    ax = axes[1]
    groups = [("normal", table.loc[normal, "meas_ai_putamen"]),
              ("SLR < 1", table.loc[~normal & (table["slr"] < 1), "meas_ai_putamen"])]
    bins = np.linspace(0, max(40.0, float(np.nanmax(table["meas_ai_putamen"])) + 1), 30)
    for (label, vals), colour in zip(groups, ("crimson", "royalblue")):
        if len(vals):
            ax.hist(vals, bins=bins, alpha=0.5, color=colour, label=f"{label} (n={len(vals)})")
    for group, colour in (("normal", "crimson"), ("PD", "royalblue")):
        lo, hi = PUBLISHED_RANGES[group]["ai_putamen"]
        ax.axvspan(lo, hi, color=colour, alpha=0.15, label=f"published {group}")
    ax.set_xlabel("putamen asymmetry index (%)")
    ax.set_ylabel("volumes")
    ax.legend(fontsize=7)
    ax.set_title("Putamen asymmetry")
    ax = axes[2]
    for region, colour in (("caudate", "darkorange"), ("putamen", "teal")):
        for side in ("L", "R"):
            ax.scatter(table[f"true_sbr_{region}_{side}"], table[f"meas_sbr_{region}_{side}"], s=8, color=colour,
                       alpha=0.6, label=region if side == "L" else None)
    lim = float(np.nanmax(table[[c for c in table.columns if c.startswith("true_sbr_")]].to_numpy())) * 1.05
    ax.plot([0, lim], [0, lim], "k:", lw=1, label="identity")
    ax.set_xlabel("true SBR (activity map)")
    ax.set_ylabel("measured SBR (simulated image)")
    ax.legend(fontsize=7)
    ax.set_title("Partial-volume loss")
    n_sub = table["subject"].nunique() if "subject" in table else 0
    fig.suptitle(f"Simulated DaT SPECT: {len(table)} volumes of {n_sub} subjects", fontsize=11)
    fig.tight_layout()
    path = save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
