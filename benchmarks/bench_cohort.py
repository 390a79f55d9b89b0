"""How much the demo cohort's anatomy varies, next to published norms and three real subjects.

For ``--n`` demo subjects (the default demo config: seed 42, ages 45-80, both sexes) this
builds each T1w, runs the pipeline's own per-subject chain on it in one process (brain
extraction, T1w->MNI152 affine, native grid, anatomy stage; as the workflow does rule by
rule) and measures regional volumes from the pipeline's labels:

* ``brain_mask``: the brain mask (deepbet); ``gm``/``wm``/``csf``: sums of the tissue
  probability maps (``label-*_probseg``) inside it;
* ``ventricles``: CSF probability > 0.5 in a central box around the midline and the
  striatum (lateral and third ventricles), a proxy the pipeline has no label for;
* ``striatum_L``/``_R``: caudate + putamen of ``desc-striatum_dseg``;
* ``lr_asymmetry``: (L - R) / mean of the grey+white matter of the left and right vascular
  territories (``desc-territories_dseg``: the hemispheres as the pipeline labels them), in %.

It prints, for every measure, the cohort's mean, SD, CV and max/min ratio, the demo's own
ground truth (template maps carried by each subject's true transform), published norms and
the three IXI subjects' DLMUSE reference labels (``../shared/data/ixi-sample``).

Published norms quoted (healthy adults):

* ICV 1289 +- 111 mL (women) and 1469 +- 102 mL (men), brain 88.6 % of ICV, intracranial
  CSF 11.4 %: Matsumae et al. 1996, J Neurosurg 84:982-991 (49 adults, 24-80 years).
* Brain volume CV about 10 % between controls: Whitwell et al. 2001, AJNR 22:1483-1489.
* Ventricular CSF grows by about 0.3 mL a year, cortical CSF by 0.6 mL a year (healthy men
  21-70 years): Pfefferbaum et al. 1994, Arch Neurol 51:874-887; lateral ventricles are the
  least correlated and most variable of the brain's regions (Allen et al. 2002, Am J Phys
  Anthropol 118:341-358).
* Striatum (both sides): caudate 8.4 +- 0.9 mL, putamen 8.9 +- 0.9 mL, shrinking 0.5 % a year,
  left larger than right (100 adults 18-70; J Zhejiang Univ Med Sci 2007); caudate CV 12 %,
  putamen CV 9 % (Raz et al. 2003, AJNR 24:1849-1856).

Usage::

    python benchmarks/bench_cohort.py [--n 12] [--voxel 1.5] [--ixi ../shared/data/ixi-sample]
        [--out benchmarks/out/cohort.tsv] [--truth-only]

``--truth-only`` skips the pipeline chain (seconds instead of minutes per subject).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from spectsynth.inputs import demo
from spectsynth.logs import setup_logging

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IXI = REPO.parent / "shared" / "data" / "ixi-sample"
MEASURES = ("icv", "brain_tissue", "csf", "ventricles", "striatum_L", "striatum_R", "lr_asymmetry")
# Published reference values (mean, SD or range as text) and their source.
NORMS = {
    "icv": ("F 1289 +- 111, M 1469 +- 102 mL (CV ~8 % within sex, ~10 % overall)", "Matsumae 1996"),
    "brain_tissue": ("88.6 % of ICV; CV ~10 %", "Matsumae 1996; Whitwell 2001"),
    "csf": ("11.4 % of ICV, growing with age (IXI: DLMUSE labels ventricles only)", "Matsumae 1996"),
    "ventricles": ("+0.3 mL/year; most variable region (several-fold)", "Pfefferbaum 1994; Allen 2002"),
    "striatum_L": ("caudate + putamen ~8.7 mL per side, CV 9-12 %, -0.5 %/year", "Zhejiang 2007; Raz 2003"),
    "striatum_R": ("as left, slightly smaller (leftward asymmetry)", "Zhejiang 2007"),
    "lr_asymmetry": ("hemispheres within ~1-2 % (not profound)", "Allen 2002"),
}
# DLMUSE (Neuromorphometrics numbering) labels of the IXI references.
VENTRICLE_LABELS = (4, 11, 49, 50, 51, 52)
CSF_LABELS = (*VENTRICLE_LABELS, 46)
STRIATUM_LABELS = {"L": (37, 58), "R": (36, 57)}


def _world(shape, affine):
    idx = np.indices(shape).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).reshape(3, *shape)


def _asym(tissue: np.ndarray, left: np.ndarray, right: np.ndarray) -> float:
    a, b = float(tissue[left].sum()), float(tissue[right].sum())
    return 100.0 * (a - b) / ((a + b) / 2)


def pipeline_volumes(t1: nib.Nifti1Image, subject: str) -> dict[str, float]:
    """Regional volumes (mL) from the pipeline's own brain mask, tissue maps and striatum labels."""
    from spectsynth.anatomy import build_anatomy
    from spectsynth.labels import STRIATUM, TERRITORIES
    from spectsynth.preprocess.brain import BrainSettings, extract_brain
    from spectsynth.preprocess.steps import native_space, register_to_template

    brain, mask, _ = extract_brain(t1, settings=BrainSettings(), subject=subject)
    tx, _ = register_to_template(brain, mask, subject=subject)
    grid, head_n, mask_n = native_space(t1, mask)
    anat = build_anatomy(head_n, mask_n, tx, subject=subject)
    m = np.asanyarray(mask_n.dataobj) > 0
    ml = float(np.prod(grid.spacing)) / 1000.0
    tis = {k.lower(): np.asarray(v, np.float32) * m for k, v in anat.tissues.items()}
    x, y, z = _world(m.shape, np.asarray(mask_n.affine))
    stri = {side: np.isin(anat.striatum, [k for k, v in STRIATUM.items() if v in (f"caudate_{side}", f"putamen_{side}")])
            for side in ("L", "R")}
    c = [np.array([x[s].mean(), y[s].mean(), z[s].mean()]) for s in stri.values()]
    mid = (c[0] + c[1]) / 2
    box = ((np.abs(x - mid[0]) < 25) & (y > mid[1] - 50) & (y < mid[1] + 25) & (z > mid[2] - 8) & (z < mid[2] + 32))
    gw = tis["gm"] + tis["wm"]
    return {"icv": m.sum() * ml, "brain_tissue": float(gw.sum()) * ml, "csf": float(tis["csf"].sum()) * ml,
            "ventricles": float(((tis["csf"] > 0.5) & box).sum()) * ml,
            "striatum_L": float(stri["L"].sum()) * ml, "striatum_R": float(stri["R"].sum()) * ml,
            "lr_asymmetry": _asym(gw, np.isin(anat.territories, [k for k, v in TERRITORIES.items() if v.endswith("_L")]),
                                  np.isin(anat.territories, [k for k, v in TERRITORIES.items() if v.endswith("_R")]))}


def ixi_volumes(path: Path) -> dict[str, float]:
    """Volumes of a DLMUSE label map (which labels ventricles but not the sulcal CSF)."""
    from spectsynth.simulate.phantom import neuromorphometrics_table

    img = nib.load(str(path))
    lab = np.asanyarray(img.dataobj).astype(int)
    ml = float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0
    brain = lab > 0
    csf = np.isin(lab, CSF_LABELS)
    stri = {s: np.isin(lab, v) for s, v in STRIATUM_LABELS.items()}
    names = neuromorphometrics_table()
    sided = {side: [k for k, n in names.items() if n.startswith(word + "_") and k not in CSF_LABELS]
             for side, word in (("L", "Left"), ("R", "Right"))}
    tissue = (brain & ~csf).astype(np.float32)
    return {"icv": brain.sum() * ml, "brain_tissue": tissue.sum() * ml, "csf": csf.sum() * ml,
            "ventricles": np.isin(lab, VENTRICLE_LABELS).sum() * ml,
            "striatum_L": stri["L"].sum() * ml, "striatum_R": stri["R"].sum() * ml,
            "lr_asymmetry": _asym(tissue, np.isin(lab, sided["L"]), np.isin(lab, sided["R"]))}


def _spread(values) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return "n/a"
    if np.all(v > 0):
        return f"{v.mean():.1f} +- {v.std(ddof=1):.1f} (CV {100 * v.std(ddof=1) / v.mean():.0f} %, max/min {v.max() / v.min():.2f})"
    return f"{v.mean():.2f} +- {v.std(ddof=1):.2f} (range {v.min():.2f}..{v.max():.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="demo subjects (default 12, the demo cohort)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--voxel", type=float, default=1.5, help="demo T1w voxel size (mm) for the benchmark")
    ap.add_argument("--ixi", type=Path, default=DEFAULT_IXI)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "cohort.tsv")
    ap.add_argument("--truth-only", action="store_true", help="ground-truth volumes only (no pipeline)")
    args = ap.parse_args(argv)
    setup_logging(None)
    p = demo.DemoParams.from_config({"n_subjects": args.n, "seed": args.seed, "voxel_mm": [args.voxel] * 3,
                                    "n_resected": args.n // 6})
    resected = demo.resected_subjects(p)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, label in enumerate(demo.subject_labels(args.n)):
            t0 = time.perf_counter()
            s = demo.make_subject(i, p, resected=label in resected)
            v = s.truth["volumes_ml"]
            truth = {k: v[k] for k in MEASURES if k in v}
            truth["lr_asymmetry"] = 100 * (v["hemisphere_L"] - v["hemisphere_R"]) / ((v["hemisphere_L"] + v["hemisphere_R"]) / 2)
            row = {"subject": label, "age": s.age, "sex": s.sex, "resected": label in resected}
            row |= {f"true_{k}": round(val, 2) for k, val in truth.items()}
            if not args.truth_only:
                path = Path(tmp) / f"sub-{label}_T1w.nii.gz"
                nib.save(s.image, str(path))
                row |= {f"pipe_{k}": round(val, 2) for k, val in pipeline_volumes(nib.load(str(path)), label).items()}
            rows.append(row)
            print(f"sub-{label}: age {s.age} {s.sex}, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    table = pd.DataFrame(rows)
    ixi = {}
    for f in sorted((args.ixi / "dlmuse").glob("*_DLMUSE.nii.gz")) if args.ixi.exists() else []:
        ixi[f.name.split("-T1")[0]] = ixi_volumes(f)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False)
    young = table["age"] < table["age"].median()
    print(f"\nDemo cohort: {args.n} subjects, ages {table['age'].min():.0f}-{table['age'].max():.0f}, "
          f"{(table['sex'] == 'F').sum()} F / {(table['sex'] == 'M').sum()} M, resected: {sorted(resected)}")
    header = ["measure (mL; asymmetry %)", "demo, pipeline labels", "demo, ground truth", "published norm",
              *ixi.keys()]
    lines = ["\t".join(header)]
    for k in MEASURES:
        cells = [k, _spread(table[f"pipe_{k}"]) if f"pipe_{k}" in table else "not run",
                 _spread(table[f"true_{k}"]) if f"true_{k}" in table else "n/a", f"{NORMS[k][0]} [{NORMS[k][1]}]"]
        cells += [f"{ixi[s][k]:.1f}" for s in ixi]
        lines.append("\t".join(cells))
    print("\n".join(lines))
    col = "pipe_ventricles" if "pipe_ventricles" in table else "true_ventricles"
    print(f"\nventricles (older half / younger half): {table.loc[~young, col].mean() / table.loc[young, col].mean():.2f}"
          f"; ICV men / women: {table.loc[table.sex == 'M', 'true_icv'].mean() / table.loc[table.sex == 'F', 'true_icv'].mean():.2f}")
    print(f"per-subject table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
