"""Training throughput of the three model families on the current device.

For each family it times ``--steps`` optimisation steps (after ``--warmup`` steps) through the
real data path (an HDF5 shard of random slices, the study's Dataset class and a DataLoader
with the harness's sampler) and reports

* images per second,
* the share of step time spent waiting for the next batch (goal < 5 %),
* peak memory (GPU: ``torch.cuda.max_memory_allocated``; CPU: the process's peak RSS, each
  family measured in its own process),
* on a GPU, the speed-up of bf16 autocast over fp32 and of channels-last over the default
  layout (both with bf16), as ratios.

Usage::

    python benchmarks/bench_train.py                       # all families, 64 px, CPU or GPU
    python benchmarks/bench_train.py --size 256 --batch-size 8 --families pix2pix --paper
    python benchmarks/bench_train.py --out benchmarks/out/train.tsv

``--paper`` uses the published network widths (FastGAN base 32, pix2pix ngf/ndf 64, VAE base
32); the default uses the demo widths of the default experiments (``experiments`` in
``config/config.yaml`` and in ``config/schema.yaml``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from spectsynth import benchrecords
from spectsynth.datasets import EpochSampler, PairedSliceDataset, SliceShard, write_shards
from spectsynth.device import select_device
from spectsynth.experiments import expand_experiments
from spectsynth.labels import LEVELS, PATTERNS
from spectsynth.models import build_model, get_family, init_weights
from spectsynth.models.fastgan.data import GANSliceDataset
from spectsynth.recipe import move_batch
from spectsynth.studies import get as get_study

FAMILIES = ("vae", "cvae", "fastgan", "pix2pix")
ENTRY = {"vae": {"study": "S0", "model": "vae"}, "cvae": {"study": "S0", "model": "cvae"},
         "fastgan": {"study": "S1", "model": "fastgan", "variants": ["A"]},
         "pix2pix": {"study": "S2", "model": "pix2pix", "inputs": ["mri+pet"], "spaces": ["native"],
                     "losses": ["l1"]}}
DEMO_WIDTH = {"vae": {"base_channels": 16}, "cvae": {"base_channels": 16}, "fastgan": {"base_channels": 8},
              "pix2pix": {"ngf": 16, "ndf": 16}}
PAPER_WIDTH = {"vae": {"base_channels": 32}, "cvae": {"base_channels": 32}, "fastgan": {"base_channels": 32},
               "pix2pix": {"ngf": 64, "ndf": 64}}


def _shard(family: str, size: int, n: int, root: Path) -> Path:
    rng = np.random.default_rng(0)
    study = ENTRY[family]["study"]
    channels = get_study(study).channels
    ch = len(channels)
    images = rng.random((n, ch, size, size), dtype=np.float32)
    if study == "S2":
        images = images * 2 - 1
    table = pd.DataFrame({"dataset": family, "study": study, "subject": [f"{i % 10:02d}" for i in range(n)],
                          "split": "train", "level": [LEVELS[i % 3] for i in range(n)],
                          "pattern": [PATTERNS[(i // 3) % 3] for i in range(n)], "space": "",
                          "source": "", "slice_index": 0, "n_z": 1, "record": range(n)})
    spec = {"study": study, "size": size, "normalise": "max"}
    write_shards(family, images, table, spec, root, channels=channels)
    return root / "train.h5"


def bench_one(family: str, args) -> list[dict]:
    setup0 = select_device(args.device)
    torch.set_num_threads(args.threads)
    width = PAPER_WIDTH if args.paper else DEMO_WIDTH
    cfg = {"datasets": {k: {"size": args.size} for k in ("s0", "s1", "s2")},
           "experiments": {"b": {**ENTRY[family], **width[family], "batch_size": args.batch_size}}}
    spec = next(iter(expand_experiments(cfg).values()))
    n = args.batch_size * (args.steps + args.warmup)
    results = []
    variants = [("fp32", "off", False)]
    if setup0.is_cuda:
        variants += [("bf16", "bf16", False), ("bf16+channels_last", "bf16", True)]
    with tempfile.TemporaryDirectory() as tmp:
        shard = SliceShard(_shard(family, args.size, n, Path(tmp)))
        if family == "fastgan":
            ds = GANSliceDataset(shard, spec["condition"],
                                 augment={"neighbour_average": True, "shift_px": 2,
                                          "flip_patterns": ["normal", "bilateral"]})
        elif family == "vae":
            ds = PairedSliceDataset(shard, spec["target_channels"], spec["target_channels"])
        else:
            ds = PairedSliceDataset(shard, spec["input_channels"], spec["target_channels"])
        for label, amp, cl in variants:
            setup = select_device(args.device, amp=amp, channels_last=cl)
            torch.manual_seed(0)
            nets = build_model(family, spec)
            init_weights(nets)
            nets.to(setup.device)
            if setup.channels_last:
                nets.to(memory_format=torch.channels_last)
            recipe = get_family(family).recipe()(spec, nets, setup)
            sampler = EpochSampler(len(ds), 0)
            loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                                num_workers=args.num_workers, pin_memory=setup.is_cuda,
                                generator=torch.Generator().manual_seed(0))
            if setup.is_cuda:
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            wait = 0.0
            t_start = None
            it = iter(loader)
            for step in range(args.warmup + args.steps):
                if step == args.warmup:
                    if setup.is_cuda:
                        torch.cuda.synchronize()
                    t_start = time.perf_counter()
                    wait = 0.0
                t0 = time.perf_counter()
                batch = next(it)
                wait += time.perf_counter() - t0
                recipe.train_step(move_batch(batch, setup.device, setup.channels_last), 1.0)
            if setup.is_cuda:
                torch.cuda.synchronize()
            total = time.perf_counter() - t_start
            peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if setup.is_cuda
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            results.append({"family": family, "variant": label, "device": setup.describe(), "size": args.size,
                            "batch_size": args.batch_size, "widths": "paper" if args.paper else "demo",
                            "images_per_s": args.steps * args.batch_size / total,
                            "data_wait_share": wait / total, "peak_mem_mib": peak})
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    p.add_argument("--device", default="auto")
    p.add_argument("--paper", action="store_true", help="published network widths")
    p.add_argument("--out", type=Path, help="also write the table here (TSV)")
    benchrecords.add_option(p, "train")
    p.add_argument("--single", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        print(json.dumps(bench_one(args.single, args)))
        return
    rows = []
    for fam in args.families:
        # one process per family, so the CPU peak-memory figure is that family's own
        cmd = [sys.executable, __file__, "--single", fam] + [a for a in (argv or sys.argv[1:])
                                                             if a not in args.families and a != "--families"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    table = pd.DataFrame(rows)
    if (table["variant"] != "fp32").any():
        base = table[table["variant"] == "fp32"].set_index("family")["images_per_s"]
        table["speedup_vs_fp32"] = table.apply(lambda r: r["images_per_s"] / base[r["family"]], axis=1)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, sep="\t", index=False)
    if args.record:
        path = benchrecords.save(args.record, "train", record(table), __file__, argv)
        print(f"recorded {path}")


def record(table: pd.DataFrame) -> list:
    """The headline numbers for ``--record``: images/s per family and variant (against fp32 in the
    same run where there are other variants), the data loader's share of the step time (goal < 5 %)
    and the peak memory."""
    out = []
    for _, r in table.iterrows():
        what = f"{r['family']} {r['variant']}, {r['size']} px, batch {r['batch_size']}, {r['widths']} widths"
        base = table[(table["family"] == r["family"]) & (table["variant"] == "fp32")]
        peer = ({"peer": float(base["images_per_s"].iloc[0]), "peer_name": "fp32, same run"}
                if r["variant"] != "fp32" and len(base) else {})
        out += [benchrecords.Measure(f"training images/s, {what}", r["images_per_s"], note=r["device"], **peer),
                benchrecords.Measure(f"data waiting, share of the step time, {r['family']} {r['variant']}",
                                     100 * r["data_wait_share"], "%", target="< 5"),
                benchrecords.Measure(f"peak memory, {r['family']} {r['variant']}", r["peak_mem_mib"], "MiB")]
    return out


if __name__ == "__main__":
    main()
