"""The training loader: DataLoader workers forked again every epoch against persistent workers.

The training loop (``spectsynth.train.train_experiment``) builds one DataLoader for the whole run
and keeps its workers between epochs (``persistent_workers``); before, it built a new loader,
and so forked ``num_workers`` new processes, every epoch. This times both on the same shard in
the same run, with the loop's own sampler and dataset (``EpochSampler``, ``PairedSliceDataset``
with the paired augmentation) and no network, so what it measures is the data path alone:

* wall seconds per epoch (median over ``--epochs``), and the ratio persistent / rebuilt;
* the wait for an epoch's first batch (median), where the forking shows;
* that both give the same batches (the items come from (seed, epoch, index), not from a worker).

Usage::

    .venv/bin/python benchmarks/bench_loader.py
    .venv/bin/python benchmarks/bench_loader.py --workers 4 --items 720 --size 128 --epochs 10

Run it on an otherwise idle machine and read the ratio, not one figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_train import _shard  # the same synthetic shard as the step benchmark
from torch.utils.data import DataLoader

from spectsynth import benchrecords
from spectsynth.datasets import EpochSampler, PairedSliceDataset, SliceShard


def run(ds, args, persistent: bool) -> tuple[list[float], list[float], list[torch.Tensor]]:
    sampler = EpochSampler(len(ds), 0)

    def loader_for(epoch: int) -> DataLoader:
        return DataLoader(ds, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                          num_workers=args.workers, persistent_workers=persistent,
                          generator=torch.Generator().manual_seed(epoch))

    loader = loader_for(0) if persistent else None
    epochs, firsts, sums = [], [], []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        dl = loader if persistent else loader_for(epoch)
        first = None
        total = torch.zeros(())
        for batch in dl:
            if first is None:
                first = time.perf_counter() - t0
            total += batch["input"].double().sum() + batch["target"].double().sum()
        epochs.append(time.perf_counter() - t0)
        firsts.append(first)
        sums.append(total)
        del dl
    return epochs, firsts, sums


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--items", type=int, default=480, help="slices in the shard (S3 reference: 480)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    benchrecords.add_option(ap, "loader")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shard = SliceShard(_shard("pix2pix", args.size, args.items, Path(tmp)))   # S2's channels
        ds = PairedSliceDataset(shard, ["mri", "pet"], ["spect"], augment={"shift_px": 2, "flip": True}, seed=0)
        rebuilt = run(ds, args, persistent=False)
        kept = run(ds, args, persistent=True)
    same = all(torch.equal(a, b) for a, b in zip(rebuilt[2], kept[2]))
    med = statistics.median
    print(f"{args.items} slices of {args.size} px, batch {args.batch_size}, {args.workers} workers, "
          f"{args.epochs} epochs (medians)")
    print(f"{'loader':<22}{'s per epoch':>12}{'first batch s':>15}")
    print(f"{'rebuilt every epoch':<22}{med(rebuilt[0]):>12.3f}{med(rebuilt[1]):>15.3f}")
    print(f"{'persistent workers':<22}{med(kept[0]):>12.3f}{med(kept[1]):>15.3f}")
    print(f"ratio persistent / rebuilt: epoch {med(kept[0]) / med(rebuilt[0]):.2f}x, "
          f"first batch {med(kept[1]) / med(rebuilt[1]):.2f}x; same batches: {same}")
    if same and args.record:
        setting = f"{args.items} slices of {args.size} px, batch {args.batch_size}, {args.workers} workers"
        peer = "a DataLoader rebuilt every epoch, same run"
        measures = [benchrecords.Measure("training loader, s per epoch (persistent workers)", med(kept[0]), "s",
                                         peer=med(rebuilt[0]), peer_name=peer,
                                         note=f"{setting}, median of {args.epochs} epochs"),
                    benchrecords.Measure("training loader, s to an epoch's first batch", med(kept[1]), "s",
                                         peer=med(rebuilt[1]), peer_name=peer)]
        path = benchrecords.save(args.record, "loader", measures, __file__, argv)
        print(f"recorded {path}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
