"""Speed of the simulator: seconds per volume of both physics paths.

On the MNI152 phantom (shipped atlases) this times

* the per-subject preparation (anatomy -> partial-volume maps on the camera grid),
* the image-domain path: seconds per DaT and per perfusion volume (median of ``--repeats``;
  the target is <= 1 s per SPECT volume on the 2-core reference machine),
* the projection path (PyTomography 3.4.0): forward projection, OSEM and the whole volume,
  with plain PyTomography (attenuation recomputed in every projection, sensitivity images
  recomputed in every reconstruction), with the attenuation cache this package adds, and with
  the cache plus the reuse of the sensitivity images, alternating in the same run on the same
  data; it prints the speed-ups over plain PyTomography and the largest difference between
  the images (must be ~0).

Usage::

    .venv/bin/python benchmarks/bench_simulate.py                        # 32^3 projection grid
    .venv/bin/python benchmarks/bench_simulate.py --matrix 64 --voxel-mm 4 --out benchmarks/out/simulate.tsv
    .venv/bin/python benchmarks/bench_simulate.py --skip-projection
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from spectsynth import benchrecords
from spectsynth.simulate import DatDegradation, mni_anatomy, resolve
from spectsynth.simulate.core import prepare_grid
from spectsynth.simulate.grid import block_sum
from spectsynth.simulate.physics import ImageDomainPhysics
from spectsynth.simulate.tracers import DatModel, PerfusionModel, draw_defects, rng_for


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_image(anat, repeats: int) -> list[dict]:
    cfg = resolve({})
    prep, t_prep = _timed(prepare_grid, anat, cfg, "spect")
    physics = ImageDomainPhysics(cfg["spect"]["fwhm_mm"], cfg["spect"]["post_filter_fwhm_mm"])
    dat, t_cal = _timed(DatModel, prep, cfg, physics, seed=cfg["seed"])
    times = []
    for i in range(repeats):
        rng = rng_for(cfg["seed"], anat.subject, "DaT", i)
        t0 = time.perf_counter()
        act, _ = dat.activity(DatDegradation(0.5, 0.75, 0.8), "L")
        physics.image(act, prep, total_counts=cfg["dat"]["total_counts"], rng=rng)
        times.append(time.perf_counter() - t0)
    perf, t_pcal = _timed(PerfusionModel, prep, cfg, physics)
    ptimes = []
    for i in range(repeats):
        rng = rng_for(cfg["seed"], anat.subject, "IMP", i)
        t0 = time.perf_counter()
        act, _, _ = perf.activity(draw_defects(prep, "unilateral", cfg["perfusion"], rng))
        physics.image(act, prep, total_counts=cfg["perfusion"]["total_counts"], rng=rng)
        ptimes.append(time.perf_counter() - t0)
    grid = f"{prep.camera.shape[0]}^3 x {prep.camera.voxel_mm:g} mm"
    return [
        {"path": "image", "what": "prepare subject (once)", "grid": grid, "seconds": t_prep},
        {"path": "image", "what": "calibrate DaT (once)", "grid": grid, "seconds": t_cal},
        {"path": "image", "what": "DaT volume (median)", "grid": grid, "seconds": statistics.median(times)},
        {"path": "image", "what": "calibrate perfusion (once)", "grid": grid, "seconds": t_pcal},
        {"path": "image", "what": "perfusion volume (median)", "grid": grid, "seconds": statistics.median(ptimes)},
    ]


def bench_projection(anat, matrix: int, voxel_mm: float, views: int, iterations: int, subsets: int,
                     threads: int | None, repeats: int = 3) -> list[dict]:
    from spectsynth.simulate.physics import ProjectionPhysics

    cfg = resolve({"physics": "projection", "spect": {"matrix": matrix, "voxel_mm": voxel_mm},
                   "projection": {"views": views, "iterations": iterations, "subsets": subsets}})
    prep = prepare_grid(anat, cfg, "spect")
    image_physics = ImageDomainPhysics(cfg["spect"]["fwhm_mm"], cfg["spect"]["post_filter_fwhm_mm"])
    dat = DatModel(prep, cfg, image_physics, seed=cfg["seed"])
    act, _ = dat.activity(DatDegradation(0.5, 0.75, 0.8), "L")
    obj = block_sum(act.astype(np.float64), prep.factor)
    grid = f"{matrix}^3 x {voxel_mm:g} mm, {views} views, OSEM {iterations}x{subsets}"
    variants = {"plain PyTomography": (False, False), "attenuation cache": (True, False),
                "attenuation cache + sensitivity reuse": (True, True)}
    physics, setup = {}, {}
    for label, (cache, reuse) in variants.items():
        physics[label] = ProjectionPhysics(cfg["projection"], 159.0, threads=threads, cache_attenuation=cache,
                                           reuse_sensitivity=reuse)
        physics[label]._lib()  # the import is not part of the timings
        _, setup[label] = _timed(physics[label].system_matrix, prep)
    times = {label: {"fp": [], "osem": []} for label in variants}
    images = {}
    # Alternate the variants so that load from other processes affects both alike.
    for rep in range(repeats):
        for label in variants:
            proj, t_fp = _timed(physics[label].forward_project, obj, prep)
            proj *= cfg["dat"]["total_counts"] / proj.sum()
            data = np.random.default_rng(rep).poisson(proj).astype(np.float32)
            rec, t_osem = _timed(physics[label].reconstruct, data, prep)
            times[label]["fp"].append(t_fp)
            times[label]["osem"].append(t_osem)
            images[label] = rec
    rows, total = [], {}
    for label in variants:
        fp, osem = statistics.median(times[label]["fp"]), statistics.median(times[label]["osem"])
        total[label] = fp + osem
        path = f"projection ({label})"
        rows += [
            {"path": path, "what": "system set-up (once)", "grid": grid, "seconds": setup[label]},
            {"path": path, "what": "forward projection (median)", "grid": grid, "seconds": fp},
            {"path": path, "what": "OSEM (median)", "grid": grid, "seconds": osem},
            {"path": path, "what": "volume: projection + OSEM", "grid": grid, "seconds": total[label]},
        ]
    ref = images["plain PyTomography"]
    for label in list(variants)[1:]:
        diff = float(np.abs(ref - images[label]).max() / max(float(ref.max()), 1e-12))
        rows.append({"path": "projection", "what": f"speed-up of {label} (plain / optimised)", "grid": grid,
                     "seconds": total["plain PyTomography"] / total[label],
                     "note": f"median of {repeats} alternating runs; largest relative image difference {diff:.2e}"})
    return rows


def record(rows: list[dict]) -> list[benchrecords.Measure]:
    """The headline numbers for ``--record``: seconds per image-domain volume (target 1 s) and per
    projection-path volume against plain PyTomography in the same run."""
    out = [benchrecords.Measure(f"image-domain {r['what'].split(' (')[0]}, {r['grid']}", r["seconds"], "s",
                                target="<= 1")
           for r in rows if r["path"] == "image" and r["what"].endswith("volume (median)")]
    volume = {r["path"]: r for r in rows if r["what"] == "volume: projection + OSEM"}
    plain = volume.get("projection (plain PyTomography)")
    for path, r in volume.items():
        if r is not plain:
            out.append(benchrecords.Measure(f"{path}: projection + OSEM per volume, {r['grid']}", r["seconds"], "s",
                                            **({"peer": plain["seconds"], "peer_name": "plain PyTomography, same run"}
                                               if plain else {})))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anatomy-mm", type=float, default=1.0, help="voxel size of the MNI phantom (default 1 mm)")
    ap.add_argument("--repeats", type=int, default=10, help="image-domain volumes timed (median)")
    ap.add_argument("--matrix", type=int, default=32, help="projection grid voxels per axis (default 32)")
    ap.add_argument("--voxel-mm", type=float, default=8.0, help="projection grid voxel size (default 8 mm)")
    ap.add_argument("--views", type=int, default=120)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--subsets", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the projection path")
    ap.add_argument("--projection-repeats", type=int, default=3, help="alternating runs per variant (median)")
    ap.add_argument("--skip-projection", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows to this TSV")
    benchrecords.add_option(ap, "simulate")
    args = ap.parse_args(argv)
    anat = mni_anatomy(args.anatomy_mm, subject="bench")
    rows = bench_image(anat, args.repeats)
    if not args.skip_projection:
        rows += bench_projection(anat, args.matrix, args.voxel_mm, args.views, args.iterations, args.subsets,
                                 args.threads, args.projection_repeats)
    width = max(len(r["path"]) + len(r["what"]) for r in rows) + 3
    print(f"{'path / what':<{width}} {'value':>10}  grid")
    for r in rows:
        unit = "x" if "speed-up" in r["what"] else "s"
        print(f"{r['path'] + ': ' + r['what']:<{width}} {r['seconds']:>9.3f}{unit}  {r['grid']}  {r.get('note', '')}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "what", "grid", "seconds", "note"], delimiter="\t")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in w.fieldnames})
    if args.record:
        print(f"recorded {benchrecords.save(args.record, 'simulate', record(rows), __file__, argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
