"""Writing the workflow's .nii.gz images: ``spectsynth.io.save_image`` (ISA-L gzip) against
``nibabel.save`` (zlib), the writer it replaced, on the same images in the same run.

Three images of the sizes the workflow writes most (1 mm native grid, 256 x 256 x 192):

* ``scan``: a registered PET/SPECT, float32, a smooth head with Poisson-like noise everywhere
  (``register_modality``'s native and template outputs, the simulated scans);
* ``brain``: the same with zeros outside an ellipsoid brain (``extract_scan_brain``'s outputs);
* ``mask``: the brain as uint8 (masks and label maps).

For each it prints the CPU seconds of both writers (median of ``--repeats``), their ratio, the
file sizes, and that both files hold the same image bytes. The figure it is read against:
``register_modality`` spends about 11 s of CPU per scan, two of these writes included.

Usage::

    .venv/bin/python benchmarks/bench_io.py
    .venv/bin/python benchmarks/bench_io.py --repeats 5 --shape 128 128 96
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from spectsynth import benchrecords
from spectsynth.io import save_image


def images(shape: tuple[int, int, int], seed: int = 0) -> dict[str, nib.Nifti1Image]:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r2 = (grid ** 2).sum(0)
    head = np.clip(1.2 - r2, 0, None) * 40 + 2
    scan = (head * (1 + 0.3 * rng.standard_normal(shape))).clip(0).astype(np.float32)
    brain = r2 < 0.55
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    return {"scan": nib.Nifti1Image(scan, affine),
            "brain": nib.Nifti1Image(np.where(brain, scan, 0).astype(np.float32), affine),
            "mask": nib.Nifti1Image(brain.astype(np.uint8), affine)}


def cpu_seconds(fn, *args, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn(*args)
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(256, 256, 192))
    ap.add_argument("--repeats", type=int, default=3)
    benchrecords.add_option(ap, "io")
    args = ap.parse_args(argv)
    measures = []
    print(f"image shape {tuple(args.shape)}; CPU seconds per write, median of {args.repeats}")
    print(f"{'image':<6} {'nibabel.save (zlib)':>20} {'save_image (ISA-L)':>19} {'ratio':>6} "
          f"{'MB zlib':>8} {'MB ISA-L':>9}  same bytes")
    with tempfile.TemporaryDirectory() as tmp:
        for name, img in images(tuple(args.shape)).items():
            ref, ours = Path(tmp, f"{name}-zlib.nii.gz"), Path(tmp, f"{name}-isal.nii.gz")
            t_ref = cpu_seconds(nib.save, img, ref, repeats=args.repeats)
            t_ours = cpu_seconds(save_image, img, ours, repeats=args.repeats)
            same = gzip.decompress(ref.read_bytes()) == gzip.decompress(ours.read_bytes())
            print(f"{name:<6} {t_ref:>20.3f} {t_ours:>19.3f} {t_ours / t_ref:>6.2f} "
                  f"{ref.stat().st_size / 1e6:>8.1f} {ours.stat().st_size / 1e6:>9.1f}  {same}")
            if not same:
                return 1
            measures.append(benchrecords.Measure(
                f"CPU s to write one .nii.gz, {name} ({'x'.join(map(str, args.shape))})", t_ours, "s",
                peer=t_ref, peer_name="nibabel.save (zlib), same run", note=f"median of {args.repeats}"))
    if args.record:
        print(f"recorded {benchrecords.save(args.record, 'io', measures, __file__, argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
