"""Input quality-control figures."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from .io import save_figure


def orthogonal_slices(img: nib.Nifti1Image) -> dict[str, tuple[np.ndarray, tuple[float, float]]]:
    """Mid-slices of a RAS+ image, as (2-D array in display order, (dx, dy) in mm).

    The arrays are ready for ``imshow(origin="lower")`` in neurological convention
    (subject's left on the left of the figure for coronal/axial views, anterior to the
    right for the sagittal view).
    """
    img = nib.as_closest_canonical(img)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    zx, zy, zz = (float(z) for z in img.header.get_zooms()[:3])
    cx, cy, cz = (s // 2 for s in data.shape[:3])
    return {
        "sagittal": (data[cx, :, :].T, (zy, zz)),
        "coronal": (data[:, cy, :].T, (zx, zz)),
        "axial": (data[:, :, cz].T, (zx, zy)),
    }


def plot_orthogonal(path_or_img, out_png: str | Path, title: str, subtitle: str = "") -> Path:
    """Three orthogonal mid-slices with orientation labels and a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = path_or_img if isinstance(path_or_img, nib.Nifti1Image) else nib.load(str(path_or_img))
    views = orthogonal_slices(img)
    vmax = max(float(np.percentile(v[0], 99.5)) for v in views.values()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2), constrained_layout=True)
    # RAS+ arrays shown with origin="lower" are in neurological convention as they are:
    # the first x index is the subject's left.
    labels = {"sagittal": ("P", "A", "I", "S"), "coronal": ("L", "R", "I", "S"),
              "axial": ("L", "R", "P", "A")}
    im = None
    for ax, (name, (arr, (dx, dy))) in zip(axes, views.items()):
        im = ax.imshow(arr, cmap="gray", origin="lower", vmin=0, vmax=vmax,
                       aspect=dy / dx, interpolation="nearest")
        left, right, bottom, top = labels[name]
        ax.set_title(f"{name} (neurological: L on the left)" if name != "sagittal" else name)
        ax.set_xticks([])
        ax.set_yticks([])
        for txt, (x, y) in ((left, (0.02, 0.5)), (right, (0.98, 0.5)), (bottom, (0.5, 0.02)),
                            (top, (0.5, 0.98))):
            ax.text(x, y, txt, transform=ax.transAxes, color="yellow", ha="center", va="center",
                    fontsize=11, fontweight="bold")
    fig.colorbar(im, ax=axes, shrink=0.8, label="intensity (a.u.)")
    zooms = "x".join(f"{z:.2g}" for z in img.header.get_zooms()[:3])
    codes = "".join(nib.aff2axcodes(img.affine))
    fig.suptitle(f"{title}\nshape {img.shape[:3]}, voxel {zooms} mm, stored {codes}"
                 + (f" - {subtitle}" if subtitle else ""), fontsize=10)
    out_png = save_figure(fig, out_png, dpi=90)
    plt.close(fig)
    return out_png
