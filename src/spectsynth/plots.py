"""Result figures: seaborn/matplotlib functions that return a Figure (and can save it).

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas attached inside
each function, so nothing here touches pyplot's global state or needs a display, and the
backend is chosen at call time, not at import.

Every function takes ``subtitle``: callers stamp what the figure shows (e.g. from
:func:`data_label`: "simulated data · demo scale · 3 subjects · 5 epochs"), printed under
the figure so the label travels with the PNG.

Brain slices: inputs are axial RAS slices (``volume[:, :, k]``, shape ``(x, y)``); they
are shown with anterior up, in the radiological (subject's left on the image's right) or
neurological convention, and the sides are labelled ``L``/``R`` on the figure.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import context
from .io import save_figure  # noqa: F401  (the shared figure writer, re-exported)
from .metrics import CONVENTIONS, to_display
from .stats import bland_altman, linear_regression, significance_stars


def _figure(width: float, height: float):
    """A Figure on an Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _stamp(fig, title: str | None, subtitle: str) -> None:
    if not subtitle or not str(subtitle).strip():
        raise ValueError("every figure needs a subtitle saying what the data are "
                         "(e.g. data_label('demo', n_subjects, epochs))")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.text(0.01, 0.0, subtitle, fontsize=8, color="0.35", ha="left", va="bottom")
    fig.get_layout_engine().set(rect=(0, 0.035, 1, 0.965))


def data_label(scale: str, n_subjects: int, epochs: int | None = None, *, simulated: bool = True,
               extra: str | None = None) -> str:
    """The honest label of a figure: data origin, demo/paper scale, subjects, epochs."""
    parts = ["simulated data" if simulated else "acquired data", f"{scale} scale",
             f"{n_subjects} subject{'s' if n_subjects != 1 else ''}"]
    if epochs is not None:
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    if extra:
        parts.append(extra)
    return " · ".join(parts)


def _dodge_positions(n_x: int, n_hue: int, width: float = 0.8) -> np.ndarray:
    """Centre of each (x, hue) box as seaborn 0.13 places them with ``dodge=True``."""
    step = width / n_hue
    return np.array([[i - width / 2 + step * (j + 0.5) for j in range(n_hue)] for i in range(n_x)])


# ------------------------------------------------------------------------------ S2
def violin_metrics(data: pd.DataFrame, *, metrics: Sequence[str] = ("rmse", "ssim", "psnr"),
                   x: str, hue: str | None = None, subtitle: str, title: str | None = None,
                   order: Sequence[str] | None = None, hue_order: Sequence[str] | None = None,
                   data_range: float | None = None, marks: pd.DataFrame | None = None):
    """One violin panel per metric (S2's Figures 6-7), grouped by ``x`` and split by ``hue``.

    ``marks`` (optional): rows with ``metric``, ``x``, ``mark`` (e.g. ``'*'`` where the
    paired t-test of that group is significant) written above the group's violins.
    """
    import seaborn as sns

    fig = _figure(4.2 * len(metrics), 4.0)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    order = list(order) if order is not None else list(pd.unique(data[x]))
    for ax, metric in zip(axes, metrics, strict=True):
        sns.violinplot(data=data, x=x, y=metric, hue=hue, order=order, hue_order=hue_order,
                       ax=ax, cut=0, inner="quartile", density_norm="width", linewidth=0.8)
        name = {"rmse": "RMSE", "ssim": "SSIM", "psnr": "PSNR (dB)"}.get(metric, metric)
        ax.set_ylabel(name)
        ax.set_title(name)
        if marks is not None and len(marks):
            top = float(data[metric].max())
            span = float(data[metric].max() - data[metric].min()) or 1.0
            for _, row in marks[marks["metric"] == metric].iterrows():
                if row["x"] in order:
                    ax.text(order.index(row["x"]), top + 0.04 * span, str(row["mark"]),
                            ha="center", va="bottom", fontsize=12)
            ax.set_ylim(top=top + 0.15 * span)
        if hue is not None and ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    if data_range is not None:
        subtitle = f"{subtitle} · SSIM/PSNR data range {data_range:g}"
    _stamp(fig, title, subtitle)
    return fig


# ------------------------------------------------------------------------------ S1
def box_with_significance(data: pd.DataFrame, *, value: str, x: str, hue: str, subtitle: str,
                          comparisons: pd.DataFrame | None = None, title: str | None = None,
                          ylabel: str | None = None, order: Sequence[str] | None = None,
                          hue_order: Sequence[str] | None = None, ax=None):
    """Box-and-whisker plot of ``value`` per ``x`` (pattern) and ``hue`` (source), as S1's Fig. 5.

    ``comparisons``: rows with ``x``, ``group1``, ``group2`` and ``p`` (or ``p_corrected``);
    a bracket with S1's marks (``*`` .. ``****``, ``ns``) is drawn between the two boxes.
    """
    import seaborn as sns

    own = ax is None
    if own:
        fig = _figure(6.5, 4.2)
        ax = fig.subplots()
    else:
        fig = ax.figure
    order = list(order) if order is not None else list(pd.unique(data[x]))
    hue_order = list(hue_order) if hue_order is not None else list(pd.unique(data[hue]))
    with warnings.catch_warnings():
        # seaborn 0.13.2 passes matplotlib's deprecated ``vert`` to bxp (matplotlib >= 3.11)
        warnings.filterwarnings("ignore", message=".*vert: bool was deprecated", category=DeprecationWarning)
        sns.boxplot(data=data, x=x, y=value, hue=hue, order=order, hue_order=hue_order, ax=ax,
                    dodge=True, width=0.8, gap=0, fliersize=2, linewidth=0.8)
    ax.set_ylabel(ylabel or value)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if comparisons is not None and len(comparisons):
        pos = _dodge_positions(len(order), len(hue_order))
        lo, hi = float(data[value].min()), float(data[value].max())
        span = (hi - lo) or 1.0
        level: dict[str, int] = {}
        pcol = "p_corrected" if "p_corrected" in comparisons.columns else "p"
        for _, row in comparisons.iterrows():
            if row["x"] not in order or row["group1"] not in hue_order or row["group2"] not in hue_order:
                continue
            i = order.index(row["x"])
            a = pos[i, hue_order.index(row["group1"])]
            b = pos[i, hue_order.index(row["group2"])]
            k = level.get(row["x"], 0)
            level[row["x"]] = k + 1
            y = hi + span * (0.06 + 0.1 * k)
            ax.plot([a, a, b, b], [y, y + 0.02 * span, y + 0.02 * span, y], color="k", lw=0.8)
            ax.text((a + b) / 2, y + 0.025 * span, significance_stars(float(row[pcol])),
                    ha="center", va="bottom", fontsize=9)
        ax.set_ylim(top=hi + span * (0.15 + 0.1 * max(level.values(), default=0)))
    if own:
        _stamp(fig, title, subtitle)
    return fig


def s1_whisker_grid(data: pd.DataFrame, *, values: Mapping[str, str], x: str = "pattern",
                    hue: str = "source", subtitle: str, comparisons: Mapping[str, pd.DataFrame] | None = None,
                    title: str | None = None, order: Sequence[str] | None = None,
                    hue_order: Sequence[str] | None = None):
    """S1's Figure 5: one box panel per value (``{column: axis label}``, e.g. MC and LR)."""
    fig = _figure(6.0 * len(values), 4.2)
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    for ax, (col, lab) in zip(axes, values.items(), strict=True):
        box_with_significance(data, value=col, x=x, hue=hue, subtitle=subtitle, ax=ax,
                              comparisons=None if comparisons is None else comparisons.get(col),
                              ylabel=lab, order=order, hue_order=hue_order)
        ax.set_title(lab)
        if ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    _stamp(fig, title, subtitle)
    return fig


def _oriented(ax, slice_ras, convention: str, **kw):
    img = to_display(slice_ras, convention)
    return ax.imshow(img, origin="upper", interpolation="nearest", **kw)


def label_sides(ax, convention: str, fontsize: int = 9, color: str = "w") -> None:
    """Write the subject's sides ('L', 'R') at the left and right edges of a slice's axes."""
    left_text, right_text = ("R", "L") if convention == "radiological" else ("L", "R")
    box = dict(facecolor="k", alpha=0.45, pad=1, lw=0)
    ax.text(0.02, 0.5, left_text, transform=ax.transAxes, ha="left", va="center",
            fontsize=fontsize, color=color, fontweight="bold", bbox=box)
    ax.text(0.98, 0.5, right_text, transform=ax.transAxes, ha="right", va="center",
            fontsize=fontsize, color=color, fontweight="bold", bbox=box)


def map_grid(maps: Mapping[tuple[str, str], np.ndarray], *, levels: Sequence[str],
             patterns: Sequence[str], subtitle: str, title: str | None = None, cmap: str = "hot",
             convention: str = "radiological", colorbar_label: str = "", vmin: float | None = None,
             vmax: float | None = None):
    """Grid of maps, rows = levels, columns = patterns (S1's pixel-wise mean / SD maps).

    ``maps[(level, pattern)]`` is an axial RAS slice; all panels share one colour scale.
    A missing cell is drawn empty and marked "no images".
    """
    _check_convention(convention)
    present = [np.asarray(m, dtype=float) for m in maps.values()]
    if not present:
        raise ValueError("map_grid needs at least one map")
    lo = float(min(m.min() for m in present)) if vmin is None else vmin
    hi = float(max(m.max() for m in present)) if vmax is None else vmax
    fig = _figure(2.4 * len(patterns) + 0.8, 2.4 * len(levels) + 0.4)
    axes = fig.subplots(len(levels), len(patterns), squeeze=False)
    im = None
    for i, lev in enumerate(levels):
        for j, pat in enumerate(patterns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (lev, pat) in maps:
                im = _oriented(ax, maps[(lev, pat)], convention, cmap=cmap, vmin=lo, vmax=hi)
                label_sides(ax, convention, fontsize=7)
            else:
                ax.text(0.5, 0.5, "no images", ha="center", va="center", transform=ax.transAxes)
            if i == 0:
                ax.set_title(pat)
            if j == 0:
                ax.set_ylabel(lev)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label=colorbar_label)
    _stamp(fig, title, f"{subtitle} · {convention} view")
    return fig


# ------------------------------------------------------------------------------ S3
def scatter_fits(pairs: Sequence[Mapping], *, subtitle: str, title: str | None = None,
                 experiment: str = "", identity: bool = True):
    """Scatter plots with least-squares lines (S3's ROI regressions), one panel per pair.

    ``pairs``: mappings with ``x``, ``y`` (arrays), ``xlabel``, ``ylabel`` and ``label``.
    Each panel shows the fitted line, its equation, r and n (:func:`stats.linear_regression`).
    """
    fig = _figure(4.2 * len(pairs), 4.2)
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, pair in zip(axes, pairs, strict=True):
        x = np.asarray(pair["x"], dtype=float)
        y = np.asarray(pair["y"], dtype=float)
        with context(experiment=experiment or None):
            rec = linear_regression(x, y, label=pair.get("label", ""))
        d = rec.details
        ax.scatter(x, y, s=12, alpha=0.7, edgecolor="none")
        xs = np.linspace(float(x.min()), float(x.max()), 50)
        ax.plot(xs, d["intercept"] + d["slope"] * xs, color="C3", lw=1.5,
                label=f"{d['equation']}, r = {rec.statistic:.2f}")
        if identity:
            lo = float(min(x.min(), y.min()))
            hi = float(max(x.max(), y.max()))
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--", label="identity")
        ax.set_xlabel(pair.get("xlabel", "x"))
        ax.set_ylabel(pair.get("ylabel", "y"))
        ax.set_title(f"{pair.get('label', '')} (n = {rec.n})")
        ax.legend(fontsize=8, loc="upper left")
    _stamp(fig, title, subtitle)
    return fig


# ------------------------------------------------------------------------------ S0
def bland_altman_plot(measured, reference, *, subtitle: str, title: str | None = None,
                      experiment: str = "", label: str = "predicted vs true SBR",
                      xlabel: str = "mean of predicted and true SBR",
                      ylabel: str = "predicted - true SBR", loa_z: float = 1.96):
    """Bland-Altman plot (difference vs mean) with bias and limits of agreement lines."""
    m = np.asarray(measured, dtype=float)
    r = np.asarray(reference, dtype=float)
    with context(experiment=experiment or None):
        rec = bland_altman(m, r, label=label, loa_z=loa_z)
    d = rec.details
    fig = _figure(5.5, 4.2)
    ax = fig.subplots()
    ax.scatter((m + r) / 2, m - r, s=14, alpha=0.7, edgecolor="none")
    for yv, style, text in ((d["bias"], "-", f"bias {d['bias']:.3f}"),
                            (d["loa_low"], "--", f"-{loa_z:g} SD {d['loa_low']:.3f}"),
                            (d["loa_high"], "--", f"+{loa_z:g} SD {d['loa_high']:.3f}")):
        ax.axhline(yv, color="C3", ls=style, lw=1)
        ax.text(1.0, yv, f" {text}", transform=ax.get_yaxis_transform(), va="center",
                ha="left", fontsize=8, color="C3", clip_on=False)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{label} (n = {rec.n})")
    _stamp(fig, title, subtitle)
    return fig


# ----------------------------------------------------------------------- brain slices
def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


@dataclass
class Panel:
    """One brain-slice panel: an axial RAS slice, optionally with an overlay.

    ``overlay_threshold``: overlay pixels with ``|value|`` below it are transparent.
    """

    image: np.ndarray
    title: str = ""
    cmap: str = "gray"
    vmin: float | None = None
    vmax: float | None = None
    colorbar_label: str = ""
    overlay: np.ndarray | None = None
    overlay_cmap: str = "RdBu_r"
    overlay_vmin: float | None = None
    overlay_vmax: float | None = None
    overlay_threshold: float = 0.0
    overlay_alpha: float = 0.8
    overlay_label: str = ""


def slice_panel(panels: Sequence[Panel], *, subtitle: str, title: str | None = None,
                convention: str = "radiological", colorbar: bool = True, ncols: int | None = None):
    """A row (or grid) of axial brain slices with L/R labels and a colour bar per panel.

    Slices are RAS ``(x, y)`` arrays shown anterior-up in the chosen ``convention``
    (``radiological``: subject's left on the image's right; ``neurological``: on the left).
    When a panel has an overlay, its colour bar is the overlay's.
    """
    _check_convention(convention)
    if not panels:
        raise ValueError("slice_panel needs at least one panel")
    ncols = ncols or len(panels)
    nrows = int(np.ceil(len(panels) / ncols))
    fig = _figure(3.3 * ncols, 3.3 * nrows + 0.3)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, p in zip(axes, panels, strict=False):
        base = np.asarray(p.image, dtype=float)
        im = _oriented(ax, base, convention, cmap=p.cmap, vmin=p.vmin, vmax=p.vmax)
        bar, bar_label = im, p.colorbar_label
        if p.overlay is not None:
            ov = np.asarray(p.overlay, dtype=float)
            if ov.shape != base.shape:
                raise ValueError(f"overlay shape {ov.shape} differs from image shape {base.shape}")
            shown = np.ma.masked_where(np.abs(ov) < p.overlay_threshold, ov) if p.overlay_threshold > 0 else ov
            disp = to_display(np.ma.getdata(shown), convention)
            mask = to_display(np.ma.getmaskarray(shown), convention)
            bar = ax.imshow(np.ma.masked_array(disp, mask), origin="upper", interpolation="nearest",
                            cmap=p.overlay_cmap, vmin=p.overlay_vmin, vmax=p.overlay_vmax,
                            alpha=p.overlay_alpha)
            bar_label = p.overlay_label or bar_label
        label_sides(ax, convention)
        ax.set_title(p.title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if colorbar:
            fig.colorbar(bar, ax=ax, shrink=0.75, label=bar_label)
    _stamp(fig, title, f"{subtitle} · {convention} view, anterior up")
    return fig


def deficit_panels(t1, actual, predicted_normal, deficit, *, label: str = "", true_deficit=None,
                   deficit_limit: float = 100.0, overlay_threshold: float = 10.0) -> list[Panel]:
    """One patient's row of :func:`deficit_figure`: T1w, actual, predicted normal, deficit overlay
    (and, when ``true_deficit`` is given, the deficit against the known true normal)."""
    act = np.asarray(actual, dtype=float)
    pred = np.asarray(predicted_normal, dtype=float)
    hi = float(max(act.max(), pred.max()))
    over = dict(cmap="gray", overlay_cmap="RdBu_r", overlay_vmin=-deficit_limit, overlay_vmax=deficit_limit,
                overlay_threshold=overlay_threshold, overlay_label="% loss")
    head = f"{label}: " if label else ""
    panels = [
        Panel(t1, f"{head}T1w", cmap="gray"),
        Panel(act, "actual", cmap="hot", vmin=0, vmax=hi, colorbar_label="counts"),
        Panel(pred, "predicted normal", cmap="hot", vmin=0, vmax=hi, colorbar_label="counts"),
        Panel(t1, "deficit on T1w", overlay=deficit, **over),
    ]
    if true_deficit is not None:
        panels.append(Panel(t1, "deficit vs true normal", overlay=true_deficit, **over))
    return panels


def deficit_figure(t1, actual, predicted_normal, deficit, *, subtitle: str, title: str | None = None,
                   convention: str = "radiological", deficit_limit: float = 100.0,
                   overlay_threshold: float = 10.0, true_deficit=None, label: str = ""):
    """The per-patient deficit report figure: T1w, actual, predicted normal, deficit overlay.

    All are axial RAS slices on the same grid; actual and predicted share one colour
    scale; the deficit (percent loss, positive = less uptake than expected) is overlaid on
    the T1w where ``|deficit| >= overlay_threshold``.  For several patients, one row each,
    use :func:`deficit_rows_figure`.
    """
    panels = deficit_panels(t1, actual, predicted_normal, deficit, label=label, true_deficit=true_deficit,
                            deficit_limit=deficit_limit, overlay_threshold=overlay_threshold)
    return slice_panel(panels, subtitle=subtitle, title=title, convention=convention)


def deficit_rows_figure(rows: Sequence[list[Panel]], *, subtitle: str, title: str | None = None,
                        convention: str = "radiological"):
    """Several patients' :func:`deficit_panels`, one row each (rows must have equal length)."""
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError("deficit_rows_figure needs rows of equal, non-zero length")
    return slice_panel([p for r in rows for p in r], subtitle=subtitle, title=title, convention=convention,
                       ncols=len(rows[0]))


def normal_database_figure(databases: pd.DataFrame, zscores: pd.DataFrame, *, regions: Sequence[str],
                           z_limit: float, subtitle: str, title: str | None = None):
    """Synthetic vs real normal database (left) and patients' z-scores against each (right).

    ``databases``: one row per normal image with a ``source`` column and the ``regions``
    columns; ``zscores``: :func:`spectsynth.studies.s0.clinical.zscore_comparison` rows of the patients.
    """
    import seaborn as sns

    fig = _figure(10.5, 4.4)
    ax_db, ax_z = fig.subplots(1, 2)
    long = databases.melt(id_vars=["source"], value_vars=list(regions), var_name="region", value_name="value")
    sns.violinplot(data=long, x="region", y="value", hue="source", split=False, inner="quart", cut=0,
                   ax=ax_db, density_norm="width")
    counts = databases["source"].value_counts()
    ax_db.set_title("normal databases (" + ", ".join(f"{k}: n = {v}" for k, v in counts.items()) + ")")
    ax_db.set_xlabel("")
    ax_db.set_ylabel("slice binding ratio")
    if len(zscores):
        sns.scatterplot(data=zscores, x="real_z", y="synthetic_z", hue="region", ax=ax_z, s=28)
        lo = float(np.nanmin(zscores[["real_z", "synthetic_z"]].to_numpy())) - 0.5
        hi = float(np.nanmax(zscores[["real_z", "synthetic_z"]].to_numpy())) + 0.5
        ax_z.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--", label="identity")
        for v in (-z_limit, z_limit):
            ax_z.axhline(v, color="C3", lw=0.7, ls=":")
            ax_z.axvline(v, color="C3", lw=0.7, ls=":")
        agree = float(zscores["agree"].mean()) * 100
        ax_z.set_title(f"patients' z-scores (n = {len(zscores)} records x sides); same flag at |z| > {z_limit:g}: "
                       f"{agree:.0f} %", fontsize=10)
    else:
        ax_z.text(0.5, 0.5, "no z-scores computed (see not_computed.tsv)", ha="center", va="center",
                  transform=ax_z.transAxes)
    ax_z.set_xlabel("z against the real (simulated) normal cohort")
    ax_z.set_ylabel("z against the synthetic normal database")
    _stamp(fig, title, subtitle)
    return fig
