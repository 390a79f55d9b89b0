"""Figures: they render, carry their label, orient slices correctly and put marks where the boxes are."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import PathPatch

from spectsynth import plots as P
from spectsynth import stats as S
from spectsynth.metrics import to_display

LABEL = P.data_label("demo", 3, 5)
RNG = np.random.default_rng(0)


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
    return out


def _saved(fig, tmp_path, name):
    path = P.save_figure(fig, tmp_path / name, dpi=60)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_data_label_is_honest():
    assert LABEL == "simulated data · demo scale · 3 subjects · 5 epochs"
    assert P.data_label("paper", 1, None, simulated=False) == "acquired data · paper scale · 1 subject"


def test_no_pyplot_state_and_subtitle_required():
    assert "matplotlib.pyplot" not in sys.modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()
    with pytest.raises(ValueError, match="subtitle"):
        P.bland_altman_plot([1, 2, 3.5], [1.1, 2.0, 3.0], subtitle="  ")


def test_violin_metrics(tmp_path):
    df = pd.DataFrame({"input": np.repeat(["MRI", "PET"], 40), "space": np.tile(["native", "template"], 40),
                       "rmse": RNG.uniform(0.05, 0.2, 80), "ssim": RNG.uniform(0.7, 0.9, 80),
                       "psnr": RNG.uniform(20, 28, 80)})
    marks = pd.DataFrame({"metric": ["ssim"], "x": ["PET"], "mark": ["*"]})
    fig = P.violin_metrics(df, x="input", hue="space", subtitle=LABEL, title="S2", data_range=2.0,
                           marks=marks)
    assert len(fig.axes) == 3
    assert any(LABEL in t and "data range 2" in t for t in _texts(fig))
    assert "*" in _texts(fig)
    _saved(fig, tmp_path, "violin.png")


def test_box_marks_sit_over_the_compared_boxes(tmp_path):
    rows = []
    for pat in ("normal", "unilateral", "bilateral"):
        for src, shift in (("real", 0.0), ("A", 0.02), ("B", 0.5)):
            rows += [{"pattern": pat, "source": src, "mc": v} for v in RNG.normal(1 + shift, 0.1, 12)]
    df = pd.DataFrame(rows)
    comps = []
    for pat in ("normal", "unilateral", "bilateral"):
        sub = df[df.pattern == pat]
        t = S.pairwise_t({s: sub[sub.source == s].mc for s in ("real", "A", "B")},
                         label=pat, reference="real")
        t["x"] = pat
        comps.append(t)
    comps = pd.concat(comps, ignore_index=True)
    fig = P.box_with_significance(df, value="mc", x="pattern", hue="source", comparisons=comps,
                                  subtitle=LABEL, order=["normal", "unilateral", "bilateral"],
                                  hue_order=["real", "A", "B"])
    ax = fig.axes[0]
    centres = sorted((p.get_path().vertices[:, 0].min() + p.get_path().vertices[:, 0].max()) / 2
                     for p in ax.patches if isinstance(p, PathPatch))
    assert np.allclose(centres, sorted(P._dodge_positions(3, 3).ravel()))
    marks = [t for t in ax.texts]
    assert len(marks) == 6
    expected = {S.significance_stars(p) for p in comps["p_corrected"]}
    assert {t.get_text() for t in marks} == expected
    # real vs B (shift 0.5 at sd 0.1) is far beyond p < 1e-4
    assert "****" in {t.get_text() for t in marks}
    _saved(fig, tmp_path, "box.png")
    grid = P.s1_whisker_grid(df.assign(lr=df.mc), values={"mc": "mean counts", "lr": "L/R"},
                             comparisons={"mc": comps}, subtitle=LABEL)
    assert len([a for a in grid.axes if a.get_ylabel()]) == 2
    _saved(grid, tmp_path, "grid.png")


def _left_anterior_slice():
    s = np.zeros((20, 24))
    s[2:6, 18:22] = 1.0  # subject's left (low x), anterior (high y)
    return s


@pytest.mark.parametrize("convention,col_side", [("radiological", "right"), ("neurological", "left")])
def test_slice_panel_orientation_and_side_labels(tmp_path, convention, col_side):
    s = _left_anterior_slice()
    fig = P.slice_panel([P.Panel(s, "test", colorbar_label="counts")], subtitle=LABEL,
                        convention=convention)
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    assert np.array_equal(shown, to_display(s, convention))
    rows, cols = np.nonzero(shown)
    assert rows.max() < shown.shape[0] / 2               # anterior is up
    on_right = cols.min() > shown.shape[1] / 2
    assert on_right == (col_side == "right")             # the subject's left lesion side
    lab = {t.get_text(): t.get_position()[0] for t in ax.texts}
    assert (lab["L"] > lab["R"]) == (convention == "radiological")
    assert len(fig.axes) == 2  # panel + colour bar
    assert any(convention in t for t in _texts(fig))
    _saved(fig, tmp_path, f"{convention}.png")


def test_deficit_figure_and_overlay_threshold(tmp_path):
    t1 = RNG.uniform(size=(20, 24))
    act = np.ones((20, 24))
    pred = np.ones((20, 24)) * 2
    deficit = np.zeros((20, 24))
    deficit[2:6, 18:22] = 50.0
    fig = P.deficit_figure(t1, act, pred, deficit, subtitle=LABEL, overlay_threshold=10)
    axes = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in axes] == ["T1w", "actual", "predicted normal", "deficit on T1w"]
    overlay = axes[3].images[1].get_array()
    assert np.ma.count(overlay) == 16  # only the 4x4 deficit is drawn
    _saved(fig, tmp_path, "deficit.png")


def test_map_grid_scatter_and_bland_altman(tmp_path):
    maps = {(lev, pat): RNG.uniform(size=(16, 16)) for lev in ("CER", "BG", "COR")
            for pat in ("normal", "unilateral")}
    fig = P.map_grid(maps, levels=("CER", "BG", "COR"), patterns=("normal", "unilateral", "bilateral"),
                     subtitle=LABEL, colorbar_label="mean")
    assert "no images" in _texts(fig)
    _saved(fig, tmp_path, "maps.png")
    x = RNG.uniform(20, 60, 30)
    fig = P.scatter_fits([{"x": x, "y": 0.13 + 0.63 * x + RNG.normal(0, 3, 30), "xlabel": "SPECT",
                           "ylabel": "PET", "label": "SPECT vs PET"}], subtitle=LABEL, experiment="s3")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0].startswith("y = ") and "r = " in legend[0]
    _saved(fig, tmp_path, "scatter.png")
    true = RNG.uniform(1, 4, 25)
    fig = P.bland_altman_plot(true + RNG.normal(0.1, 0.3, 25), true, subtitle=LABEL, experiment="s0")
    assert any(t.startswith(" bias") for t in _texts(fig))
    _saved(fig, tmp_path, "ba.png")


def test_deficit_rows_and_normal_database_figures(tmp_path):
    t1 = RNG.uniform(size=(20, 24))
    rows = [P.deficit_panels(t1, np.ones((20, 24)), np.ones((20, 24)) * 2, np.full((20, 24), 50.0),
                             true_deficit=np.full((20, 24), 40.0), label=f"sub-0{i}") for i in (1, 2)]
    fig = P.deficit_rows_figure(rows, subtitle=LABEL)
    titled = [a.get_title() for a in fig.axes if a.get_title()]
    assert titled[:5] == ["sub-01: T1w", "actual", "predicted normal", "deficit on T1w", "deficit vs true normal"]
    assert len(titled) == 10
    _saved(fig, tmp_path, "deficit_rows.png")
    with pytest.raises(ValueError):
        P.deficit_rows_figure([rows[0], rows[1][:3]], subtitle=LABEL)
    db = pd.DataFrame({"source": ["synthetic"] * 6 + ["real"] * 4, "sbr_L": RNG.uniform(1, 3, 10),
                       "sbr_R": RNG.uniform(1, 3, 10)})
    zs = pd.DataFrame({"region": ["sbr_L", "sbr_R"], "synthetic_z": [-2.5, 0.3], "real_z": [-3.0, 1.0],
                       "agree": [True, True]})
    fig = P.normal_database_figure(db, zs, regions=["sbr_L", "sbr_R"], z_limit=2.0, subtitle=LABEL)
    assert "100 %" in fig.axes[1].get_title() and "real: n = 4" in fig.axes[0].get_title()
    _saved(fig, tmp_path, "normal_database.png")
