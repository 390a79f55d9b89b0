"""Accuracy and speed of the preprocessing + anatomy stages on real T1w MRIs.

For each IXI subject of ``../shared/data/ixi-sample`` (real 2 mm sagittal T1s with DLMUSE
reference labels) this runs the whole per-subject chain in one process, as the workflow does
rule by rule: brain extraction, T1w->MNI152 affine, native-grid resampling, template-space
resampling and the anatomy stage, writing every output to a temporary folder.  On the same
T1 and preprocessed inputs, in the same process, it also runs brain extraction and the anatomy
stage with the settings they had before (:data:`PEER_BRAIN`, :data:`PEER_SETTINGS`: the peer),
alternating which goes first from subject to subject.  It prints

* brain-mask Dice against the non-zero reference labels (target >= 0.97);
* caudate/putamen Dice per subject and structure (mean of the four structures: target >= 0.88,
  and >= 0.82 on every subject; caudate as good as putamen) after each stage of the label
  propagation: atlas through the MNI152 affine, global affine to the atlas image, local
  striatal affine, intensity refinement (the pipeline's result), and the peer's result;
* wall and CPU seconds per stage and per subject (target <= 10 s) and the ratio to the peer;
* the numbers measured before this benchmark's last round of changes (:data:`BEFORE`);
* a leave-one-out check of the one tuned setting (``anatomy.partial_volume_weight``, and the
  partial-volume classes on/off): chosen on two subjects, Dice reported on the third;
* ANTsPy (``antspyx``, affine registration + label propagation) on the same subjects, when it
  is installed;
* the registration error (mean displacement over the brain, mm) on demo-like subjects made
  from the MNI152 template with known random poses (+-15 degrees, +-10 mm, +-8 % scaling),
  noise and a bias field.

Usage::

    python benchmarks/bench_preprocess.py [--data ../shared/data/ixi-sample] [--no-ants]
        [--no-peer] [--no-loo] [--poses 3] [--out benchmarks/out/preprocess.tsv] [--record docs/benchmarks]

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

from spectsynth import benchrecords
from spectsynth.anatomy import (
    ANATOMY_OUTPUTS,
    AnatomySettings,
    atlas_labels,
    build_anatomy,
    segment_striatum,
    write_anatomy,
)
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


# the anatomy settings before the caudate/CSF partial-volume refinement and the lighter local
# affines (the peer measured in the same run)
PEER_SETTINGS = {"partial_volume": False, "local_levels": 2, "local_sampling_fraction": 0.5,
                 "em_iterations": 15}
PEER_BRAIN = {"deepbet_shape": 256}  # deepbet's own working grid, the default before
# measured before those changes on a fresh clone (issue 12), for the table's "before" row
BEFORE = {"dice_mean": 0.850, "dice_worst": 0.756, "caudate": 0.81, "putamen": 0.89,
          "seconds": "13-25", "anatomy_s": 7.2, "brain_s": 3.9}
# candidates of the leave-one-out check: the partial-volume classes off, and their prior weight
LOO_CANDIDATES = [{"partial_volume": False}] + [{"partial_volume_weight": w} for w in (0.5, 1.0, 2.0, 4.0)]
TARGETS = {"dice_mean": 0.88, "dice_every_subject": 0.82, "seconds": 10.0}


class Clock:
    """Wall and CPU (process, all threads) seconds of one block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


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


def volume_dice(ref: nib.Nifti1Image, labels: nib.Nifti1Image, codes: dict[str, int]) -> dict[str, float]:
    """Dice from the volume fraction of each of our labels inside each reference voxel.

    The 1 mm native grid puts 2 x 2 x 2 of its voxels inside each 2 mm reference voxel, so
    linear interpolation gives the fraction ``f`` exactly, and ``2 sum(f r) / (sum f + sum r)``
    is the Dice at 1 mm against the reference's voxels split in eight.  Unlike a majority vote
    it has no ties: with one, a half-covered reference voxel goes to the background (the
    majority vote above) or to the label, which moves small structures' Dice by +-0.02.
    """
    grid = Grid.of(ref)
    ref_data = np.asanyarray(ref.dataobj).astype(int)
    data = np.asanyarray(labels.dataobj)
    out = {}
    for k, v in REF_STRUCTURES.items():
        f = np.asanyarray(resample(nib.Nifti1Image((data == codes[k]).astype(np.float32), labels.affine),
                                   grid, [], interpolation="linear").dataobj)
        r = ref_data == v
        s = float(f.sum() + r.sum())
        out[k] = float(2 * (f * r).sum() / s) if s else float("nan")
    return out


def striatum_dice(ours: np.ndarray, ref: np.ndarray, ours_codes: dict[str, int]) -> dict[str, float]:
    return {k: dice(ours == ours_codes[k], ref == v) for k, v in REF_STRUCTURES.items()}


def run_subject(t1_path: Path, ref_path: Path, subject: str, out: Path, *, peer: bool = True,
                peer_first: bool = False, loo: bool = True) -> tuple[dict, list[dict]]:
    """The chain on one subject; returns its row and the leave-one-out candidates' Dice."""
    wall, cpu = {}, {}

    def note(name: str, c: Clock) -> None:
        wall[name], cpu[name] = c.wall, c.cpu

    t1 = load_image(t1_path, subject=subject)
    bets = [("brain", BrainSettings())] + ([("peer_brain", BrainSettings(**PEER_BRAIN))] if peer else [])
    masks = {}
    for name, settings in (reversed(bets) if peer_first else bets):
        with Clock() as c:
            masks[name] = extract_brain(t1, settings=settings, subject=subject)
        note(name, c)
    brain, mask, _ = masks["brain"]
    peer_mask = masks["peer_brain"][1] if peer else None
    with Clock() as c:
        tx, reg_qc = register_to_template(brain, mask, subject=subject)
    note("register", c)
    with Clock() as c:
        grid, head_n, mask_n = native_space(t1, mask)
        tgrid = template_grid(1.0)
        head_t = resample(t1, tgrid, [tx], interpolation="bspline")
        mask_t = resample_mask(mask, tgrid, [tx])
    note("resample", c)
    runs = [("anatomy", AnatomySettings())] + ([("peer_anatomy", AnatomySettings(**PEER_SETTINGS))] if peer else [])
    results = {}
    for name, settings in (reversed(runs) if peer_first else runs):
        with Clock() as c:
            results[name] = build_anatomy(head_n, mask_n, tx, subject=subject, settings=settings)
        note(name, c)
    anatomy = results["anatomy"]
    with Clock() as c:
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
    note("write", c)
    shared = ("brain", "register", "resample", "write")
    wall["total"] = sum(wall[k] for k in shared) + wall["anatomy"]
    cpu["total"] = sum(cpu[k] for k in shared) + cpu["anatomy"]
    if peer:  # the peer's chain: its own brain extraction and anatomy, the other steps shared
        for d in (wall, cpu):
            d["peer_total"] = d["peer_brain"] + sum(d[k] for k in shared[1:]) + d["peer_anatomy"]

    ref = load_image(ref_path, subject=subject)
    ref_data = np.asanyarray(ref.dataobj).astype(int)
    row = {"subject": subject, "mask_dice": dice(np.asanyarray(mask.dataobj) > 0, ref_data > 0),
           "template_mask_dice": reg_qc["mask_dice"]}
    if peer:
        row["peer_mask_dice"] = dice(np.asanyarray(peer_mask.dataobj) > 0, ref_data > 0)
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

    def our_dice(striatum: np.ndarray) -> dict[str, float]:
        ours = labels_on(ref, nib.Nifti1Image(striatum, anatomy.grid.affine), list(OURS.values()))
        return striatum_dice(ours, ref_data, OURS)

    def our_vdice(striatum: np.ndarray) -> dict[str, float]:
        return volume_dice(ref, nib.Nifti1Image(striatum, anatomy.grid.affine), OURS)

    for prefix, name in (("", "anatomy"), ("peer_", "peer_anatomy")):
        if name not in results:
            continue
        for metric, fn in (("dice", our_dice), ("vdice", our_vdice)):
            per = fn(results[name].striatum)
            row.update({f"{prefix}{metric}_{k}": v for k, v in per.items()})
            row[f"{prefix}{metric}_striatum"] = float(np.mean(list(per.values())))
    row.update({f"t_{k}": round(v, 2) for k, v in wall.items()})
    row.update({f"cpu_{k}": round(v, 2) for k, v in cpu.items()})
    candidates = []
    if loo:  # the refinement alone, on the new method's local affines
        to_atlas = {side: anatomy.atlas_local[side].GetInverse() for side in ("L", "R")}
        for i, cand in enumerate(LOO_CANDIDATES):
            lab, _ = segment_striatum(head_n, mask_n, to_atlas, settings=AnatomySettings(**cand), subject=subject)
            candidates.append({"subject": subject, "candidate": i, "setting": str(cand),
                               "dice": float(np.mean(list(our_dice(lab).values()))),
                               "vdice": float(np.mean(list(our_vdice(lab).values())))})
    return row, candidates


def leave_one_out(cands: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """For each subject: the candidate with the best mean ``metric`` on the others, and its value there."""
    rows = []
    for held in cands["subject"].unique():
        train = cands[cands["subject"] != held].groupby("candidate")[metric].mean()
        best = int(train.idxmax())
        test = cands[(cands["subject"] == held) & (cands["candidate"] == best)]
        rows.append({"metric": metric, "held_out": held, "chosen_on_the_others": test["setting"].iloc[0],
                     "on_the_others": round(float(train.max()), 4),
                     "held_out_value": round(float(test[metric].iloc[0]), 4)})
    return pd.DataFrame(rows)


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


def summary(df: pd.DataFrame, prefix: str = "", time_col: str = "total", metric: str = "dice") -> dict:
    """Mean, worst subject, worst structure, caudate and putamen Dice and seconds of one method."""
    structs = [f"{prefix}{metric}_{k}" for k in REF_STRUCTURES]
    per_subject = df[structs].mean(axis=1)
    return {"dice_mean": float(per_subject.mean()), "dice_worst_subject": float(per_subject.min()),
            "dice_worst_structure": float(df[structs].values.min()),
            "caudate": float(df[[c for c in structs if "caudate" in c]].values.mean()),
            "putamen": float(df[[c for c in structs if "putamen" in c]].values.mean()),
            "seconds": f"{df[f't_{time_col}'].min():.1f}-{df[f't_{time_col}'].max():.1f}",
            "seconds_mean": float(df[f"t_{time_col}"].mean()),
            "cpu_mean": float(df[f"cpu_{time_col}"].mean())}


def record(df: pd.DataFrame, new: dict, old: dict | None, held_out: pd.Series | None,
           poses: pd.DataFrame | None) -> list[benchrecords.Measure]:
    """The headline numbers of a run for ``--record`` (peer: the anatomy's previous settings and
    deepbet's own grid, in the same run)."""
    peer_name = "anatomy before the partial-volume refinement"

    def peer(key: str) -> dict:
        return {"peer": old[key], "peer_name": peer_name} if old else {}

    out = [
        benchrecords.Measure("brain-mask Dice (deepbet), mean of the IXI subjects", df["mask_dice"].mean(),
                             target=">= 0.97", **({"peer": df["peer_mask_dice"].mean(), "peer_name": "deepbet "
                                                   "at its own 256^3 grid"} if old else {})),
        benchrecords.Measure("striatum Dice vs DLMUSE, mean of the subjects", new["dice_mean"],
                             target=f">= {TARGETS['dice_mean']}", **peer("dice_mean")),
        benchrecords.Measure("striatum Dice, worst subject", new["dice_worst_subject"],
                             target=f">= {TARGETS['dice_every_subject']}", **peer("dice_worst_subject")),
        benchrecords.Measure("caudate Dice", new["caudate"], **peer("caudate")),
        benchrecords.Measure("putamen Dice", new["putamen"], **peer("putamen")),
    ]
    if held_out is not None:
        out.append(benchrecords.Measure("striatum Dice held out (partial_volume_weight chosen on the other two)",
                                        float(held_out.mean())))
    out += [
        benchrecords.Measure("preprocessing + anatomy per subject, wall", new["seconds_mean"], "s",
                             target=f"<= {TARGETS['seconds']:g}", note=f"subjects {new['seconds']} s",
                             **peer("seconds_mean")),
        benchrecords.Measure("preprocessing + anatomy per subject, CPU", new["cpu_mean"], "s", **peer("cpu_mean")),
    ]
    if "ants_dice_striatum" in df:
        out.append(benchrecords.Measure("striatum Dice, ANTsPy affine + label propagation",
                                        df["ants_dice_striatum"].mean()))
    if poses is not None and len(poses):
        out.append(benchrecords.Measure(f"T1w->MNI152 error on {len(poses)} known poses, mean over the brain",
                                        poses["mean_error_mm"].mean(), "mm",
                                        note=f"worst pose {poses['mean_error_mm'].max():.2f} mm"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--no-ants", action="store_true", help="skip the ANTsPy peer")
    ap.add_argument("--no-peer", action="store_true", help="skip the previous anatomy settings")
    ap.add_argument("--no-loo", action="store_true", help="skip the leave-one-out check")
    ap.add_argument("--poses", type=int, default=3, help="number of known-pose demo subjects")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "preprocess.tsv")
    benchrecords.add_option(ap, "preprocess")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.verbose:
        setup_logging()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    t1s = sorted((args.data / "nifti").glob("*_ds.nii.gz"))
    if not t1s:
        print(f"no IXI T1s under {args.data}/nifti; pass --data", file=sys.stderr)
        return 2
    rows, cands = [], []
    have_ants = not args.no_ants
    if have_ants:
        try:
            import ants  # noqa: F401
        except ImportError:
            have_ants = False
            print("ANTsPy (antspyx) is not installed: the ANTs column is skipped "
                  "(pip install --no-deps antspyx to compare)")
    peer = not args.no_peer
    for i, t1_path in enumerate(t1s):
        subject = t1_path.name.replace("-T1_ds.nii.gz", "")
        ref_path = args.data / "dlmuse" / t1_path.name.replace(".nii.gz", "_DLMUSE.nii.gz")
        with tempfile.TemporaryDirectory() as tmp:
            row, cand = run_subject(t1_path, ref_path, subject, Path(tmp), peer=peer,
                                    peer_first=bool(i % 2), loo=not args.no_loo)
            if have_ants:
                res = run_ants(Path(tmp) / "brain.nii.gz", ref_path, subject)
                if res:
                    row.update(res)
                    row["time_ratio_vs_ants"] = row["t_total"] / res["ants_seconds"]
        rows.append(row)
        cands += cand
        print(f"{subject}: mask {row['mask_dice']:.3f}  striatum {row['dice_striatum']:.3f}"
              + (f" (peer {row['peer_dice_striatum']:.3f})" if peer else "")
              + f"  {row['t_total']:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    structs = [f"dice_{k}" for k in REF_STRUCTURES]
    print("\nReal IXI T1s vs DLMUSE (Dice per subject and structure)")
    cols = ["subject", "mask_dice", "dice_mni_affine", "dice_atlas_affine", "dice_atlas_local",
            "dice_striatum", *structs]
    if peer:
        cols += ["peer_mask_dice", "peer_dice_striatum", *[f"peer_{c}" for c in structs]]
    print(df[cols].round(3).to_string(index=False))
    print("\nSeconds per subject, wall (cpu = process CPU time, all threads; the machine is shared, "
          "so compare the ratios)")
    tcols = ["subject"] + [f"{k}_{t}" for t in ("brain", "register", "resample", "anatomy", "write", "total")
                           for k in ("t", "cpu")]
    if peer:
        tcols += ["t_peer_brain", "cpu_peer_brain", "t_peer_anatomy", "cpu_peer_anatomy", "t_peer_total",
                  "cpu_peer_total"]
    print(df[tcols].round(2).to_string(index=False))
    new = summary(df)
    table = [{"method": "before (issue 12, fresh clone)", "dice_mean": BEFORE["dice_mean"],
              "dice_worst": BEFORE["dice_worst"], "caudate": BEFORE["caudate"],
              "putamen": BEFORE["putamen"], "seconds": BEFORE["seconds"]}]
    if peer:
        old = summary(df, "peer_", "peer_total")
        table.append({"method": "peer: previous settings, this run", "dice_mean": old["dice_mean"],
                      "dice_worst": old["dice_worst_subject"], "worst_structure": old["dice_worst_structure"],
                      "caudate": old["caudate"], "putamen": old["putamen"], "seconds": old["seconds"],
                      "cpu_s": old["cpu_mean"], "anatomy_cpu_s": float(df["cpu_peer_anatomy"].mean())})
    table.append({"method": "now (partial volume), this run", "dice_mean": new["dice_mean"],
                  "dice_worst": new["dice_worst_subject"], "worst_structure": new["dice_worst_structure"],
                  "caudate": new["caudate"], "putamen": new["putamen"], "seconds": new["seconds"],
                  "cpu_s": new["cpu_mean"], "anatomy_cpu_s": float(df["cpu_anatomy"].mean())})
    print("\nStriatum (caudate + putamen, L/R) Dice and seconds per subject: before, peer, now")
    print(pd.DataFrame(table).round(3).to_string(index=False))
    print("\nThe same, tie-free volume-overlap Dice (volume_dice; lower for every method: it also counts "
          "the 2 mm reference's blockiness)")
    print("\n".join(f"  {name}: mean {v['dice_mean']:.3f}, worst subject {v['dice_worst_subject']:.3f}, "
                    f"worst structure {v['dice_worst_structure']:.3f}, caudate {v['caudate']:.3f}, "
                    f"putamen {v['putamen']:.3f}"
                    for name, v in ([("peer", summary(df, "peer_", "peer_total", "vdice"))] if peer else [])
                    + [("now", summary(df, metric="vdice"))]))
    vcols = ["subject", "vdice_striatum", *[f"vdice_{k}" for k in REF_STRUCTURES]]
    if peer:
        vcols += ["peer_vdice_striatum", *[f"peer_vdice_{k}" for k in REF_STRUCTURES]]
    print(df[vcols].round(3).to_string(index=False))
    print(f"\ntargets: striatum Dice >= {TARGETS['dice_mean']} on average -> {new['dice_mean']:.3f}; "
          f">= {TARGETS['dice_every_subject']} on every subject -> worst {new['dice_worst_subject']:.3f}; "
          f"caudate {new['caudate']:.3f} vs putamen {new['putamen']:.3f}; <= {TARGETS['seconds']:g} s per "
          f"subject -> {new['seconds_mean']:.1f} s wall ({new['seconds']}), {new['cpu_mean']:.1f} s CPU; "
          f"brain-mask Dice >= 0.97 -> {df['mask_dice'].mean():.3f}")
    if peer:
        print(f"time ratio now / peer: brain extraction {df['t_brain'].sum() / df['t_peer_brain'].sum():.2f} "
              f"wall, {df['cpu_brain'].sum() / df['cpu_peer_brain'].sum():.2f} CPU (mask Dice "
              f"{df['mask_dice'].mean():.3f} vs {df['peer_mask_dice'].mean():.3f}); anatomy "
              f"{df['t_anatomy'].sum() / df['t_peer_anatomy'].sum():.2f} wall, "
              f"{df['cpu_anatomy'].sum() / df['cpu_peer_anatomy'].sum():.2f} CPU; whole chain "
              f"{df['t_total'].sum() / df['t_peer_total'].sum():.2f} wall, "
              f"{df['cpu_total'].sum() / df['cpu_peer_total'].sum():.2f} CPU")
    if "ants_seconds" in df:
        print(f"time ratio spectsynth / ANTsPy affine: {df['t_total'].mean() / df['ants_seconds'].mean():.2f} "
              f"({df['t_total'].mean():.1f} s vs {df['ants_seconds'].mean():.1f} s); ANTsPy Dice "
              f"{df['ants_dice_striatum'].mean():.3f}")
    held_out = None
    if cands:
        cdf = pd.DataFrame(cands)
        print("\nRefinement candidates (mean striatum Dice per subject, majority vote | volume overlap, "
              "on the same local affines)")
        print(pd.concat([cdf.pivot(index="setting", columns="subject", values=m) for m in ("dice", "vdice")],
                        axis=1, keys=["dice", "vdice"]).round(4).to_string())
        print("\nLeave-one-out: the setting chosen on two subjects, its Dice on the third")
        for metric in ("dice", "vdice"):
            loo = leave_one_out(cdf, metric)
            if metric == "dice":
                held_out = loo["held_out_value"]
            print(loo.to_string(index=False))
            print(f"held-out {metric}: mean {loo['held_out_value'].mean():.3f}, worst "
                  f"{loo['held_out_value'].min():.3f}\n")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cdf.to_csv(args.out.with_name(args.out.stem + "_candidates.tsv"), sep="\t", index=False)
    poses = pd.DataFrame(demo_poses(args.poses)) if args.poses else None
    if poses is not None:
        print("\nKnown-pose demo-like subjects (MNI152 template, +-15 deg, +-10 mm, +-8 % scale, "
              "noise, bias): registration error")
        print(poses.round(2).to_string(index=False))
    if args.record:
        path = benchrecords.save(args.record, "preprocess", record(df, new, old if peer else None, held_out, poses),
                                 __file__, argv)
        print(f"recorded {path}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, sep="\t", index=False)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
