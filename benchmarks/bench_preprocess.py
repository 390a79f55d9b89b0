"""Accuracy and speed of the preprocessing + anatomy stages on real T1w MRIs.

For each IXI subject of ``../shared/data/ixi-sample`` (real 2 mm sagittal T1s with DLMUSE
reference labels) this runs the whole per-subject chain in one process, as the workflow does
rule by rule: brain extraction, T1w->MNI152 affine, native-grid resampling, template-space
resampling and the anatomy stage, writing every output to a temporary folder.  It prints

* brain-mask Dice against the non-zero reference labels (target >= 0.97);
* caudate/putamen Dice (mean of the four structures, target >= 0.85) after each stage of the
  label propagation: atlas through the MNI152 affine, global affine to the atlas image, local
  striatal affine, intensity refinement (the pipeline's result);
* the time per subject (target <= 15 s) and its ratio to ANTsPy (``antspyx``, affine
  registration + label propagation) run on the same subjects, when ANTsPy is installed;
* the registration error (mean displacement over the brain, mm) on demo-like subjects made
  from the MNI152 template with known random poses (+-15 degrees, +-10 mm, +-8 % scaling),
  noise and a bias field.

Usage::

    python benchmarks/bench_preprocess.py [--data ../shared/data/ixi-sample] [--no-ants]
        [--poses 3] [--out benchmarks/out/preprocess.tsv]

ANTsPy is a benchmark-only dependency (``pip install --no-deps antspyx``); without it the
ANTs column is skipped with a message.
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
import SimpleITK as sitk

from spectsynth.anatomy import ANATOMY_OUTPUTS, atlas_labels, build_anatomy, write_anatomy
from spectsynth.io import load_image, save_image
from spectsynth.logs import setup_logging
from spectsynth.preprocess.brain import BrainSettings, extract_brain
from spectsynth.preprocess.register import (
    Grid,
    resample,
    resample_mask,
    save_transform_pair,
    to_sitk,
)
from spectsynth.preprocess.steps import native_space, register_to_template, template_grid, template_image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ixi-sample"
# reference numbering (MUSE = Neuromorphometrics) of caudate L/R, putamen L/R
REF_STRUCTURES = {"caudate_L": 37, "caudate_R": 36, "putamen_L": 58, "putamen_R": 57}
OURS = {"caudate_L": 1, "caudate_R": 2, "putamen_L": 3, "putamen_R": 4}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def labels_on(ref: nib.Nifti1Image, labels: nib.Nifti1Image, values: list[int],
              transforms=()) -> np.ndarray:
    """Majority-vote resampling of ``labels`` onto ``ref``'s grid (per-label linear + argmax)."""
    grid = Grid.of(ref)
    data = np.asanyarray(labels.dataobj)
    probs = [np.asanyarray(resample(nib.Nifti1Image((data == v).astype(np.float32), labels.affine), grid,
                                    transforms, interpolation="linear").dataobj) for v in values]
    probs = np.stack([np.full(grid.shape, 0.5, np.float32)] + probs, -1)
    best = np.argmax(probs, -1)
    return np.concatenate([[0], values])[best]


def striatum_dice(ours: np.ndarray, ref: np.ndarray, ours_codes: dict[str, int]) -> dict[str, float]:
    return {k: dice(ours == ours_codes[k], ref == v) for k, v in REF_STRUCTURES.items()}


def run_subject(t1_path: Path, ref_path: Path, subject: str, out: Path) -> dict:
    timings = {}
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    t1 = load_image(t1_path, subject=subject)
    brain, mask, _ = extract_brain(t1, settings=BrainSettings(), subject=subject)
    timings["brain"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tx, reg_qc = register_to_template(brain, mask, subject=subject)
    timings["register"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid, head_n, mask_n = native_space(t1, mask)
    tgrid = template_grid(1.0)
    head_t = resample(t1, tgrid, [tx], interpolation="bspline")
    mask_t = resample_mask(mask, tgrid, [tx])
    timings["resample"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    anatomy = build_anatomy(head_n, mask_n, tx, subject=subject)
    timings["anatomy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    save_image(brain, out / "brain.nii.gz")
    save_image(mask, out / "mask.nii.gz")
    save_image(head_n, out / "native_T1w.nii.gz")
    save_image(mask_n, out / "native_mask.nii.gz")
    save_image(head_t, out / "mni_T1w.nii.gz")
    save_image(mask_t, out / "mni_mask.nii.gz")
    save_transform_pair(tx, out / "xfm.tfm", out / "xfm_inv.tfm")
    ext = {"qc": ".json"}
    for n in ANATOMY_OUTPUTS:
        if n.endswith("tsv") or n == "levels":
            ext[n] = ".tsv"
        elif n.startswith("xfm"):
            ext[n] = ".tfm"
    write_anatomy(anatomy, {n: out / f"{n}{ext.get(n, '.nii.gz')}" for n in ANATOMY_OUTPUTS})
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    ref = load_image(ref_path, subject=subject)
    ref_data = np.asanyarray(ref.dataobj).astype(int)
    row = {"subject": subject, "mask_dice": dice(np.asanyarray(mask.dataobj) > 0, ref_data > 0),
           "template_mask_dice": reg_qc["mask_dice"]}
    # stages of the label propagation, all evaluated on the reference grid
    atlas, _ = atlas_labels()
    values = list(REF_STRUCTURES.values())
    codes = {k: v for k, v in REF_STRUCTURES.items()}
    stages = {
        "mni_affine": {"L": [tx.GetInverse()], "R": [tx.GetInverse()]},
        "atlas_affine": {"L": [anatomy.atlas_global.GetInverse()], "R": [anatomy.atlas_global.GetInverse()]},
        "atlas_local": {side: [anatomy.atlas_local[side].GetInverse()] for side in ("L", "R")},
    }
    for name, txs in stages.items():
        per = {}
        for side in ("L", "R"):
            lab = labels_on(ref, atlas, values, txs[side])
            per.update({k: v for k, v in striatum_dice(lab, ref_data, codes).items() if k.endswith(side)})
        row[f"dice_{name}"] = float(np.mean(list(per.values())))
    ours = labels_on(ref, nib.Nifti1Image(anatomy.striatum, anatomy.grid.affine), list(OURS.values()))
    per = striatum_dice(ours, ref_data, OURS)
    row.update({f"dice_{k}": v for k, v in per.items()})
    row["dice_striatum"] = float(np.mean(list(per.values())))
    row.update({f"t_{k}": round(v, 2) for k, v in timings.items()})
    return row


def run_ants(brain_path: Path, ref_path: Path, subject: str) -> dict | None:
    """ANTsPy affine registration of the same brain-extracted T1w + atlas label propagation."""
    try:
        import ants
    except ImportError:
        return None
    from spectsynth.resources import resource_path

    t0 = time.perf_counter()
    fixed = ants.image_read(str(resource_path("mni152_t1")))
    moving = ants.image_read(str(brain_path))
    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="Affine", random_seed=42)
    atlas = ants.image_read(str(resource_path("atlas_neuromorphometrics")))
    lab = ants.apply_transforms(fixed=moving, moving=atlas, transformlist=reg["fwdtransforms"],
                                interpolator="genericLabel", whichtoinvert=[True])
    seconds = time.perf_counter() - t0
    ref = np.asanyarray(load_image(ref_path, subject=subject).dataobj).astype(int)
    lab = lab.numpy().astype(int)
    if lab.shape != ref.shape:
        raise RuntimeError(f"{subject}: ANTs labels {lab.shape} and reference {ref.shape} differ in shape")
    per = [dice(lab == v, ref == v) for v in REF_STRUCTURES.values()]
    return {"ants_seconds": seconds, "ants_dice_striatum": float(np.mean(per))}


def demo_poses(n: int, seed: int = 0) -> list[dict]:
    """Registration error on template-made subjects with known affine poses."""
    rng = np.random.default_rng(seed)
    tmpl = template_image()
    tdata = np.asanyarray(tmpl.dataobj).astype(np.float32)
    brain_mask = tdata > 0
    rows = []
    for i in range(n):
        angles = np.deg2rad(rng.uniform(-15, 15, 3))
        shift = rng.uniform(-10, 10, 3)
        scale = rng.uniform(0.92, 1.08, 3)
        truth = sitk.AffineTransform(3)
        rot = sitk.Euler3DTransform((0, 0, 0), *angles.tolist())
        m = np.asarray(rot.GetMatrix()).reshape(3, 3) @ np.diag(scale)
        centre = np.asarray(to_sitk(tmpl).TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2 for s in tmpl.shape]))
        truth.SetCenter(centre.tolist())
        truth.SetMatrix(m.ravel().tolist())
        truth.SetTranslation(shift.tolist())
        # the subject = template seen through the inverse pose, on a 2 mm grid, noise + bias
        grid = Grid(tuple(int(s) for s in np.ceil(np.asarray(tmpl.shape) / 2).astype(int) + 10),
                    np.diag([2.0, 2.0, 2.0, 1.0]) @ np.eye(4))
        grid = Grid(grid.shape, np.array([[2, 0, 0, -108], [0, 2, 0, -144], [0, 0, 2, -82], [0, 0, 0, 1.0]]))
        subj = resample(tmpl, grid, [truth.GetInverse()], interpolation="linear")
        d = np.asanyarray(subj.dataobj)
        xx = np.linspace(-1, 1, d.shape[0])[:, None, None]
        bias = 1 + 0.15 * xx + 0.1 * np.linspace(-1, 1, d.shape[2])[None, None, :]
        d = d * bias + rng.normal(0, 4, d.shape) * (d > 0)
        subj = nib.Nifti1Image(np.clip(d, 0, None).astype(np.float32), subj.affine)
        mask = nib.Nifti1Image((np.asanyarray(resample(nib.Nifti1Image(brain_mask.astype(np.float32), tmpl.affine),
                                                       grid, [truth.GetInverse()], "linear").dataobj) > 0.5)
                               .astype(np.uint8), subj.affine)
        t0 = time.perf_counter()
        tx, _ = register_to_template(subj, mask, subject=f"pose{i}")
        secs = time.perf_counter() - t0
        # error: template brain points mapped by the estimate vs by the truth
        pts = np.argwhere(brain_mask)[::200]
        world = (tmpl.affine @ np.c_[pts, np.ones(len(pts))].T).T[:, :3] * np.array([-1, -1, 1.0])
        est = np.array([tx.TransformPoint(tuple(p)) for p in world])
        tru = np.array([truth.TransformPoint(tuple(p)) for p in world])
        err = np.linalg.norm(est - tru, axis=1)
        rows.append({"pose": i, "rot_deg": np.round(np.rad2deg(angles), 1).tolist(),
                     "shift_mm": np.round(shift, 1).tolist(), "mean_error_mm": float(err.mean()),
                     "max_error_mm": float(err.max()), "seconds": secs})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--no-ants", action="store_true", help="skip the ANTsPy peer")
    ap.add_argument("--poses", type=int, default=3, help="number of known-pose demo subjects")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "preprocess.tsv")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.verbose:
        setup_logging()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    t1s = sorted((args.data / "nifti").glob("*_ds.nii.gz"))
    if not t1s:
        print(f"no IXI T1s under {args.data}/nifti; pass --data", file=sys.stderr)
        return 2
    rows = []
    have_ants = not args.no_ants
    if have_ants:
        try:
            import ants  # noqa: F401
        except ImportError:
            have_ants = False
            print("ANTsPy (antspyx) is not installed: the ANTs column is skipped "
                  "(pip install --no-deps antspyx to compare)")
    for t1_path in t1s:
        subject = t1_path.name.replace("-T1_ds.nii.gz", "")
        ref_path = args.data / "dlmuse" / t1_path.name.replace(".nii.gz", "_DLMUSE.nii.gz")
        with tempfile.TemporaryDirectory() as tmp:
            row = run_subject(t1_path, ref_path, subject, Path(tmp))
            if have_ants:
                res = run_ants(Path(tmp) / "brain.nii.gz", ref_path, subject)
                if res:
                    row.update(res)
                    row["time_ratio_vs_ants"] = row["t_total"] / res["ants_seconds"]
        rows.append(row)
        print(f"{subject}: mask {row['mask_dice']:.3f}  striatum {row['dice_striatum']:.3f}  "
              f"{row['t_total']:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    cols = ["subject", "mask_dice", "dice_mni_affine", "dice_atlas_affine", "dice_atlas_local",
            "dice_striatum", "dice_caudate_L", "dice_caudate_R", "dice_putamen_L", "dice_putamen_R",
            "t_brain", "t_register", "t_resample", "t_anatomy", "t_write", "t_total"]
    if "ants_seconds" in df:
        cols += ["ants_dice_striatum", "ants_seconds", "time_ratio_vs_ants"]
    print("\nReal IXI T1s vs DLMUSE (Dice), seconds per subject")
    print(df[cols].round(3).to_string(index=False))
    mean = df[cols[1:]].mean(numeric_only=True)
    print("\nmean:", ", ".join(f"{k}={v:.3f}" for k, v in mean.items()))
    print(f"\ntargets: mask Dice >= 0.97 -> {mean['mask_dice']:.3f}; striatum Dice >= 0.85 -> "
          f"{mean['dice_striatum']:.3f}; time <= 15 s -> {mean['t_total']:.1f} s")
    if "ants_seconds" in df:
        print(f"time ratio spectsynth / ANTsPy affine: {mean['t_total'] / mean['ants_seconds']:.2f} "
              f"({mean['t_total']:.1f} s vs {mean['ants_seconds']:.1f} s)")
    if args.poses:
        poses = pd.DataFrame(demo_poses(args.poses))
        print("\nKnown-pose demo-like subjects (MNI152 template, +-15 deg, +-10 mm, +-8 % scale, "
              "noise, bias): registration error")
        print(poses.round(2).to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, sep="\t", index=False)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
