"""Visual reading: blinded packets (real vs generated, and S3's similarity reading) and the
scorer of filled-in sheets.

:func:`reading_packet` shuffles real and generated images (seeded) into numbered PNGs with a
scoring sheet and a separate, hidden key, for blinded real-or-generated reading (S1).

S3 scored how similar each image was to the patient's PET-CBF on a 5-point scale, once openly
(the reader knows which image is the pix2pix output) and once blind.  :func:`similarity_packet`
writes both readings for a paired experiment: every selected test slice appears twice, its
prediction and its input SPECT, each drawn next to the reference PET of the same slice;

* ``blind/`` holds the panels shuffled (seeded) and numbered, with no source named;
* ``open/`` holds the same panels in slice order, each titled with its source;
* each folder has ``scoring_sheet.csv`` (``reader, reading, image, file, score_1_to_<scale>,
  comment``) and ``scale.txt`` (what each score means);
* the key (``image, file, reading, source, original_id, condition``) is written elsewhere.

:func:`score_reading` reads one or more filled sheets back with the key and returns the
per-source mean scores, the comparison between the sources (Wilcoxon signed-rank on the
per-slice mean scores when the sources show the same slices, as here; Mann-Whitney U
otherwise, as for S1's real-vs-generated packets) and, with two or more readers, the
inter-reader agreement (quadratic-weighted Cohen's kappa per pair of readers and Fleiss'
kappa, statsmodels).  ``spectsynth score-reading SHEET [SHEET ...] KEY -o DIR`` runs it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import EvaluationError
from .io import save_figure, write_text
from .io import write_csv as _write_csv

log = logging.getLogger(__name__)

SCALE_TEXT = {
    5: "5 = indistinguishable from the reference PET in contrast, detail and distribution",
    4: "4 = very similar; small differences in detail or contrast",
    3: "3 = similar overall distribution, clearly less detail or different contrast",
    2: "2 = partly similar; major regions differ in contrast or shape",
    1: "1 = no useful similarity to the reference PET",
}


def scale_text(scale: int) -> str:
    """The written definition of the similarity scale handed to readers."""
    if scale == 5:
        lines = [SCALE_TEXT[k] for k in (5, 4, 3, 2, 1)]
    else:
        lines = [f"{scale} = indistinguishable from the reference PET", "1 = no useful similarity"]
    return ("Score how similar the CANDIDATE image (right) is to the REFERENCE PET-CBF (left) of the "
            f"same slice, on a scale of 1 to {scale}:\n" + "\n".join(lines) + "\n")


def _panel_png(reference: np.ndarray, candidate: np.ndarray, title: str, path: Path, *, convention: str,
               cmap: str, footer: str | None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .metrics import to_display
    from .plots import label_sides

    fig = Figure(figsize=(7.6, 4.2))
    FigureCanvasAgg(fig)
    for k, (img, name) in enumerate(((reference, "reference PET"), (candidate, "candidate"))):
        arr = np.asarray(img, dtype=float)
        lo, hi = float(arr.min()), float(arr.max())
        disp = to_display((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr), convention)
        ax = fig.add_axes((0.01 + 0.5 * k, 0.08, 0.48, 0.78))
        ax.imshow(disp, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=10)
        label_sides(ax, convention, fontsize=10)
    fig.text(0.5, 0.95, title, ha="center", va="center", fontsize=12)
    if footer:
        fig.text(0.5, 0.03, footer, ha="center", va="center", fontsize=7, color="0.4")
    save_figure(fig, path, dpi=90, metadata={"Software": None})


def similarity_packet(reference: Sequence[np.ndarray], candidates: Mapping[str, Sequence[np.ndarray]], *,
                      ids: Sequence[str], out_dir: str | Path, key_path: str | Path, experiment: str,
                      seed: int = 0, n_slices: int | None = None, score_scale: int = 5,
                      convention: str = "radiological", cmap: str = "hot",
                      footer: str | None = None) -> dict[str, Path | int]:
    """Open and blind similarity packets (module docstring): ``candidates`` maps a source name
    (``prediction``, ``spect``) to images aligned with ``reference`` and ``ids``."""

    out_dir, key_path = Path(out_dir), Path(key_path)
    if key_path.resolve().is_relative_to(out_dir.resolve()):
        raise EvaluationError(f"the key {key_path} lies inside the packet folder {out_dir}", experiment=experiment,
                              hint="Write the key to a separate folder so readers never see it")
    n = len(reference)
    if n == 0 or len(candidates) < 2 or any(len(v) != n for v in candidates.values()) or len(ids) != n:
        raise EvaluationError(f"a similarity packet needs one reference per slice and two or more sources of "
                              f"the same length (reference {n}, sources "
                              f"{ {k: len(v) for k, v in candidates.items()} }, ids {len(ids)})",
                              experiment=experiment)
    shapes = {np.asarray(x).shape for x in [*reference, *(c for v in candidates.values() for c in v)]}
    if len(shapes) != 1:
        raise EvaluationError(f"images of different shapes {sorted(shapes)} would unblind the reading",
                              experiment=experiment, hint="Resample the sources to one grid")
    rng = np.random.default_rng(seed)
    k = n if n_slices is None else min(int(n_slices), n)
    if k < 1:
        raise EvaluationError(f"n_per_source {n_slices} must be at least 1", experiment=experiment)
    chosen = sorted(int(i) for i in rng.choice(n, size=k, replace=False))
    items = [(src, i) for i in chosen for src in sorted(candidates)]
    score_col = f"score_1_to_{score_scale}"
    key = []
    for reading, order in (("open", np.arange(len(items))), ("blind", rng.permutation(len(items)))):
        folder = out_dir / reading
        width = max(3, len(str(len(items))))
        sheet = []
        for number, idx in enumerate(order, start=1):
            src, i = items[idx]
            num = f"{number:0{width}d}"
            fname = f"image-{num}.png"
            title = f"image {num}" + (f": {src} ({ids[i]})" if reading == "open" else "")
            _panel_png(reference[i], candidates[src][i], title, folder / fname, convention=convention, cmap=cmap,
                       footer=footer)
            sheet.append({"reader": "", "reading": reading, "image": num, "file": fname, score_col: "",
                          "comment": ""})
            key.append({"image": num, "file": fname, "reading": reading, "source": src, "original_id": ids[i],
                        "condition": ""})
        _write_csv(sheet, folder / "scoring_sheet.csv", ["reader", "reading", "image", "file", score_col, "comment"])
        write_text(scale_text(score_scale), folder / "scale.txt")
    _write_csv(key, key_path, ["image", "file", "reading", "source", "original_id", "condition"])
    log.info("experiment %s: similarity packet of %d panels per reading in %s, key in %s", experiment,
             len(items), out_dir, key_path)
    return {"packet_dir": out_dir, "key": key_path, "n_images": 2 * len(items)}


# ------------------------------------------------------------------------- scoring
def _read_sheet(path: Path) -> pd.DataFrame:
    try:
        sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise EvaluationError(f"cannot read the scoring sheet {path}: {exc}",
                              hint="Pass the scoring_sheet.csv files the readers filled in") from exc
    scores = [c for c in sheet.columns if c.startswith("score_1_to_")]
    if "image" not in sheet.columns or len(scores) != 1:
        raise EvaluationError(f"{path} is not a scoring sheet (needs the columns image and score_1_to_<N>)",
                              hint="Pass the scoring_sheet.csv of a reading packet")
    scale = int(scores[0].rsplit("_", 1)[1])
    sheet = sheet.rename(columns={scores[0]: "score"})
    if "reader" not in sheet.columns:
        sheet["reader"] = ""
    sheet["reader"] = sheet["reader"].str.strip().replace("", path.stem)
    if "reading" not in sheet.columns:
        sheet["reading"] = "blind"
    sheet["reading"] = sheet["reading"].str.strip().replace("", "blind")
    blank = sheet["score"].str.strip() == ""
    if blank.all():
        raise EvaluationError(f"{path}: no image has a score", hint="Fill in the score column, then rerun")
    sheet = sheet[~blank].copy()
    vals = pd.to_numeric(sheet["score"], errors="coerce")
    bad = sheet.loc[vals.isna() | (vals < 1) | (vals > scale) | (vals != vals.round()), "image"].tolist()
    if bad:
        raise EvaluationError(f"{path}: images {bad} have scores outside the integers 1..{scale}",
                              hint=f"Correct those cells to a whole number from 1 to {scale}")
    sheet["score"] = vals.astype(int)
    sheet["scale"] = scale
    sheet["sheet"] = str(path)
    return sheet


def score_reading(sheets: Sequence[str | Path], key: str | Path, *,
                  published: Mapping[tuple[str, str], float] | None = None) -> dict[str, pd.DataFrame]:
    """Filled scoring sheets + key -> ``summary``, ``comparison``, ``agreement`` tables.

    ``published``: the published mean score by (reading, source), written beside ours
    (:func:`spectsynth.studies.published.reading_scores`)."""
    from scipy import stats
    from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

    key_df = pd.read_csv(key, dtype=str, keep_default_na=False)
    if not {"image", "source"} <= set(key_df.columns):
        raise EvaluationError(f"{key} is not a reading key (needs the columns image and source)",
                              hint="Pass the key.csv written beside the packet")
    if "reading" not in key_df.columns:
        key_df["reading"] = "blind"
    parts = [_read_sheet(Path(s)) for s in sheets]
    scores = pd.concat(parts, ignore_index=True)
    if scores["scale"].nunique() != 1:
        raise EvaluationError("the sheets use different score scales", hint="Score all sheets on one scale")
    merged = scores.merge(key_df[["image", "reading", "source", "original_id"]], on=["image", "reading"],
                          how="left", validate="many_to_one")
    unknown = merged.loc[merged["source"].isna(), ["sheet", "image"]]
    if len(unknown):
        raise EvaluationError(f"images not in the key: {unknown.to_dict('records')[:5]}",
                              hint="Use the key that belongs to this packet")
    dup = merged.duplicated(["reader", "reading", "image"])
    if dup.any():
        raise EvaluationError(f"reader/image scored twice: {merged.loc[dup, ['reader', 'image']].to_dict('records')[:5]}",
                              hint="Give each reader's sheet a distinct reader name")

    summary = (merged.groupby(["reading", "source"])["score"]
               .agg(n_scores="size", mean="mean", sd="std", median="median").reset_index())
    summary["sd"] = summary["sd"].fillna(0.0)
    summary["n_readers"] = [merged[(merged["reading"] == r) & (merged["source"] == s)]["reader"].nunique()
                            for r, s in zip(summary["reading"], summary["source"], strict=True)]
    pub = dict(published or {})
    summary["published_mean"] = [pub.get((r, s), np.nan) for r, s in
                                 zip(summary["reading"], summary["source"], strict=True)]
    summary["published_mean"] = summary["published_mean"].astype(object).where(summary["published_mean"].notna(), "")

    comp = []
    for reading, sub in merged.groupby("reading"):
        for a, b in itertools.combinations(sorted(sub["source"].unique()), 2):
            per = sub.groupby(["source", "original_id"])["score"].mean()
            sa, sb = per.get(a), per.get(b)
            common = sa.index.intersection(sb.index) if sa is not None and sb is not None else []
            rec = {"reading": reading, "a": a, "b": b, "mean_a": float(sub.loc[sub["source"] == a, "score"].mean()),
                   "mean_b": float(sub.loc[sub["source"] == b, "score"].mean())}
            if len(common) >= 2 and (sa[common] != sb[common]).any():
                res = stats.wilcoxon(sa[common], sb[common])
                rec |= {"test": "Wilcoxon signed-rank (per-slice mean scores)", "n": len(common),
                        "statistic": float(res.statistic), "p": float(res.pvalue)}
            elif len(common) >= 2:
                rec |= {"test": "Wilcoxon signed-rank (per-slice mean scores)", "n": len(common),
                        "statistic": 0.0, "p": 1.0}
            else:
                xa, xb = sub.loc[sub["source"] == a, "score"], sub.loc[sub["source"] == b, "score"]
                res = stats.mannwhitneyu(xa, xb, alternative="two-sided")
                rec |= {"test": "Mann-Whitney U (all scores)", "n": int(len(xa) + len(xb)),
                        "statistic": float(res.statistic), "p": float(res.pvalue)}
            comp.append(rec)
    comparison = pd.DataFrame(comp, columns=["reading", "a", "b", "mean_a", "mean_b", "test", "n", "statistic", "p"])

    scale = int(scores["scale"].iat[0])
    agree = []
    for reading, sub in merged.groupby("reading"):
        wide = sub.pivot_table(index="image", columns="reader", values="score", aggfunc="first").dropna()
        readers = list(wide.columns)
        if len(readers) < 2 or len(wide) < 2:
            continue
        cats = np.arange(1, scale + 1)
        for r1, r2 in itertools.combinations(readers, 2):
            table = pd.crosstab(pd.Categorical(wide[r1], cats), pd.Categorical(wide[r2], cats), dropna=False).to_numpy()
            kappa = cohens_kappa(table, wt="quadratic", return_results=False)
            agree.append({"reading": reading, "readers": f"{r1} vs {r2}", "statistic": "Cohen's kappa (quadratic)",
                          "n_images": len(wide), "value": float(kappa)})
        counts, _ = aggregate_raters(wide.to_numpy(dtype=int), n_cat=None)
        agree.append({"reading": reading, "readers": ", ".join(map(str, readers)), "statistic": "Fleiss' kappa",
                      "n_images": len(wide), "value": float(fleiss_kappa(counts))})
    agreement = pd.DataFrame(agree, columns=["reading", "readers", "statistic", "n_images", "value"])
    return {"summary": summary, "comparison": comparison, "agreement": agreement}


def write_scores(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """Write the scorer's tables as ``reading_<name>.tsv`` under ``out_dir``."""
    from .io import write_table

    return {name: write_table(table, Path(out_dir) / f"reading_{name}.tsv", what=f"reading {name}")
            for name, table in tables.items()}


__all__ = ["scale_text", "score_reading", "similarity_packet", "write_scores"]


def _packet_png(img: np.ndarray, number: str, path: Path, *, convention: str, cmap: str,
                footer: str | None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .metrics import to_display
    from .plots import label_sides

    arr = np.asarray(img, dtype=float)
    lo, hi = float(arr.min()), float(arr.max())
    disp = to_display((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr), convention)
    fig = Figure(figsize=(4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.08, 0.96, 0.84))
    ax.imshow(disp, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    label_sides(ax, convention, fontsize=11)
    fig.text(0.5, 0.95, f"image {number}", ha="center", va="center", fontsize=12)
    if footer:
        fig.text(0.5, 0.03, footer, ha="center", va="center", fontsize=7, color="0.4")
    save_figure(fig, path, dpi=100, metadata={"Software": None})


def reading_packet(real: Sequence[np.ndarray], generated: Sequence[np.ndarray], *,
                   out_dir: str | Path, key_path: str | Path, experiment: str, seed: int = 0,
                   n_per_source: int | None = None, real_ids: Sequence | None = None,
                   generated_ids: Sequence | None = None, real_conditions: Sequence[str] | None = None,
                   generated_conditions: Sequence[str] | None = None,
                   convention: str = "radiological", cmap: str = "hot", score_scale: int = 5,
                   footer: str | None = None) -> dict[str, Path | int]:
    """Write a blinded reading packet: numbered PNGs, a scoring sheet and a hidden key.

    ``n_per_source`` images are drawn from each source (all when None; the smaller source
    caps it), shuffled with ``seed`` and numbered ``001..``.  Every image is scaled to its
    own range and drawn identically, so nothing but the content tells the sources apart.
    ``out_dir`` receives ``image-NNN.png`` and ``scoring_sheet.csv`` (columns ``image,
    file, score_1_to_<scale>, judged_real_yes_no, comment``); the key (``image, file,
    source, original_id, condition``) goes to ``key_path``, which must lie outside
    ``out_dir`` so the packet can be handed out without it.
    """
    out_dir = Path(out_dir)
    key_path = Path(key_path)
    if key_path.resolve().is_relative_to(out_dir.resolve()):
        raise EvaluationError(f"the key {key_path} lies inside the packet folder {out_dir}",
                              experiment=experiment,
                              hint="Write the key to a separate folder so readers never see it")
    if not real or not generated:
        raise EvaluationError(f"reading packet needs both sources (real {len(real)}, generated "
                              f"{len(generated)})", experiment=experiment)
    shapes = {np.asarray(x).shape for x in [*real, *generated]}
    if len(shapes) != 1:
        raise EvaluationError(f"images of different shapes {sorted(shapes)} would unblind the "
                              "reading", experiment=experiment,
                              hint="Resample generated and real slices to one grid")
    rng = np.random.default_rng(seed)
    k = min(len(real), len(generated)) if n_per_source is None else int(n_per_source)
    if k < 1 or k > min(len(real), len(generated)):
        raise EvaluationError(f"n_per_source {k} must be between 1 and {min(len(real), len(generated))}",
                              experiment=experiment)
    items = []
    for source, imgs, ids, conds in (("real", real, real_ids, real_conditions),
                                     ("generated", generated, generated_ids, generated_conditions)):
        ids = list(range(len(imgs))) if ids is None else list(ids)
        conds = [""] * len(imgs) if conds is None else list(conds)
        for i in sorted(rng.choice(len(imgs), size=k, replace=False)):
            items.append((source, imgs[i], ids[i], conds[i]))
    order = rng.permutation(len(items))
    width = max(3, len(str(len(items))))
    sheet, key = [], []
    for number, idx in enumerate(order, start=1):
        source, img, oid, cond = items[idx]
        num = f"{number:0{width}d}"
        fname = f"image-{num}.png"
        _packet_png(img, num, out_dir / fname, convention=convention, cmap=cmap, footer=footer)
        sheet.append({"image": num, "file": fname, f"score_1_to_{score_scale}": "",
                      "judged_real_yes_no": "", "comment": ""})
        key.append({"image": num, "file": fname, "source": source, "original_id": oid,
                    "condition": cond})
    _write_csv(sheet, out_dir / "scoring_sheet.csv",
               ["image", "file", f"score_1_to_{score_scale}", "judged_real_yes_no", "comment"])
    _write_csv(key, key_path, ["image", "file", "source", "original_id", "condition"])
    log.info("experiment %s: reading packet of %d images in %s, key in %s", experiment, len(items),
             out_dir, key_path)
    return {"packet_dir": out_dir, "scoring_sheet": out_dir / "scoring_sheet.csv", "key": key_path,
            "n_images": len(items)}
