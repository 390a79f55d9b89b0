"""One prepared check of the training path on a GPU: every measurement in one run.

Run through ``benchmarks/gpu_check.sh`` (it sets ``PYTHONPATH`` to the checkout's ``src``)::

    bash benchmarks/gpu_check.sh --out gpu_check.jsonl      # GPU machine, about 8 minutes
    bash benchmarks/gpu_check.sh --quick --out quick.jsonl   # any machine, tiny sizes, seconds

Every stage appends one JSON object to the JSON-lines file given by ``--out`` (flushed and
synced at once, so a run cut off by a time limit still holds every finished stage):
``{"stage", "status": "ok" | "failed" | "skipped", "seconds", "error", "reason", ...}``.
A stage catches its own exceptions, records them and the run goes on with the next stage.
A stage that needs CUDA records ``skipped`` with the reason ``no CUDA device`` on a machine
without one; whatever part of it can run on the CPU still runs there.

Stages (``--stages`` runs a subset, in this order):

1. ``environment``: torch, CUDA and cuDNN versions, device name, bf16 support, GPU memory.
2. ``cuda_tests``: ``pytest -m cuda`` on the test files that hold ``cuda``-marked tests (on a
   machine without CUDA they are only collected).
3. ``kill_resume``: each model family (vae, cvae, fastgan, pix2pix) trained by
   :func:`spectsynth.train.train_experiment` on the device, killed after a mid-epoch checkpoint
   and resumed under another precision (bf16 / fp16 / fp32 autocast settings); checks that the
   run finishes, the step count, finite losses and the runtime record of both precisions.
4. ``inference_diff``: each family's ``best.pt`` from stage 3 run in float32 on the CPU and on
   the device (and under bf16 autocast on the device): maximum absolute output difference.
5. ``sync_audit``: ``torch.cuda.set_sync_debug_mode("warn")`` over training steps of each
   family (the loop's own data path and loss accumulation); the host-device syncs counted,
   with the source lines that caused them.
6. ``throughput``: optimisation steps per second of each family at the published sizes, batch
   sizes and network widths (S0 VAE/cVAE, S1 FastGAN, S2 and S3 pix2pix): fp32, bf16 autocast,
   bf16 + channels-last, bf16 + channels-last + ``torch.compile`` (``training.compile: default``);
   images/s and peak memory
   (``torch.cuda.max_memory_allocated``).  Batches are resident on the device (stage 7 measures
   the data path).
7. ``data_path``: items/s of an S2 shard read through :class:`spectsynth.datasets.SliceShard`
   preloaded (``preload_max_mb`` above its size) and read from HDF5 row by row
   (``preload_max_mb=0``), with 0 and 4 DataLoader workers.
8. ``s2_training``: one real two-epoch S2 training (:func:`~spectsynth.train.train_experiment`,
   validation, selection, outputs) on a small synthetic shard (random slices at S2's size; a
   simulated shard needs the simulation pipeline, minutes per subject).
9. ``packing``: 1 against 3 concurrent training processes on the same device (S2's pix2pix and
   S1's FastGAN at the published sizes, bf16): total images/s over one shared time window.
10. ``hours``: GPU-hours of every study's paper-scale design (``config/config.yaml`` +
    ``config/studies/sN.yaml``: experiments and training images per epoch from
    :mod:`spectsynth.planner`) at the published epochs, and at the epochs those configs resolve
    to, from the throughput measured in stage 6; printed as a table.

``--quick`` uses 32 px slices, narrow networks and one or two steps everywhere: it checks on
any machine, in seconds, that every stage runs (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STAGES = ("environment", "cuda_tests", "kill_resume", "inference_diff", "sync_audit", "throughput",
          "data_path", "s2_training", "packing", "hours")
FAMILIES = ("vae", "cvae", "fastgan", "pix2pix")
NO_CUDA = "no CUDA device"

# Experiment entries of each family (the study it serves).
ENTRY = {"vae": {"study": "S0", "model": "vae"}, "cvae": {"study": "S0", "model": "cvae"},
         "fastgan": {"study": "S1", "model": "fastgan", "variants": ["A"]},
         "pix2pix": {"study": "S2", "model": "pix2pix", "inputs": ["mri+pet"], "spaces": ["native"],
                     "losses": ["l1+ssim"]},
         "pix2pix_s3": {"study": "S3", "model": "pix2pix"}}
# Published network widths (the paper-scale configs; as benchmarks/bench_train.py --paper).
PAPER_WIDTH = {"vae": {"base_channels": 32}, "cvae": {"base_channels": 32}, "fastgan": {"base_channels": 32},
               "pix2pix": {"ngf": 64, "ndf": 64}, "pix2pix_s3": {"ngf": 64, "ndf": 64}}
DEMO_WIDTH = {"vae": {"base_channels": 16}, "cvae": {"base_channels": 16}, "fastgan": {"base_channels": 8},
              "pix2pix": {"ngf": 16, "ndf": 16}, "pix2pix_s3": {"ngf": 16, "ndf": 16}}
QUICK_WIDTH = {"vae": {"base_channels": 4, "latent_dim": 8}, "cvae": {"base_channels": 4, "latent_dim": 8},
               "fastgan": {"base_channels": 4}, "pix2pix": {"ngf": 4, "ndf": 4},
               "pix2pix_s3": {"ngf": 4, "ndf": 4}}
GAN_SMALL = {"gan_feature_steps": 1, "gan_eval_samples": 2}
# Published slice size and batch size of each throughput case (study's size; study's batch).
# Ordered by their share of the paper-scale GPU time (the compile variant runs while time is left).
PAPER_CASES = {"s2_pix2pix": ("pix2pix", 256, 8), "s3_pix2pix": ("pix2pix_s3", 128, 8),
               "s1_fastgan": ("fastgan", 64, 4), "s0_vae": ("vae", 64, 16), "s0_cvae": ("cvae", 64, 16)}
DATASET_OF = {"S0": "s0", "S1": "s1", "S2": "s2_native", "S3": "s3"}
# Resume legs on CUDA: (precision of the killed run, precision of the resumed run), as training.amp.
PRECISION_LEGS = {"vae": ("off", "fp16"), "cvae": ("fp16", "bf16"), "fastgan": ("bf16", "fp16"),
                  "pix2pix": ("fp16", "off")}


class Skipped(Exception):
    """Raised by a stage that cannot run here (with what it did measure in ``data``)."""

    def __init__(self, reason: str, data: dict | None = None):
        super().__init__(reason)
        self.reason, self.data = reason, data or {}


class StageFailure(Exception):
    """A stage that measured something but failed a check: its data is kept in the record."""

    def __init__(self, msg: str, data: dict):
        super().__init__(msg)
        self.data = data


class _Kill(Exception):
    pass


# --------------------------------------------------------------------------- records


class Recorder:
    """Appends one JSON object per stage to the JSON-lines file, flushed and synced at once."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, rec: dict) -> None:
        line = json.dumps(rec, default=_jsonable, allow_nan=True)
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def run_stage(name: str, fn: Callable[[dict], dict], ctx: dict, rec: Recorder) -> dict:
    t0 = time.perf_counter()
    out = {"stage": name, "status": "ok", "error": ""}
    try:
        out.update(fn(ctx) or {})
    except Skipped as exc:
        out.update(exc.data)
        out.update(status="skipped", reason=exc.reason)
    except StageFailure as exc:
        out.update(exc.data)
        out.update(status="failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a stage records its own failure and the run goes on
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc()[-4000:])
    out["seconds"] = round(time.perf_counter() - t0, 3)
    rec.write(out)
    extra = out.get("reason") or out.get("error") or ""
    print(f"[gpu_check] {name:<15} {out['status']:<8} {out['seconds']:8.1f} s  {extra}"[:300], flush=True)
    return out


# --------------------------------------------------------------------------- helpers


def _torch():
    import torch

    return torch


def _device_setup(ctx: dict, amp: str = "off", channels_last: bool = False):
    from spectsynth.device import select_device

    return select_device(ctx["device"], amp=amp, channels_last=channels_last)


def _cuda(ctx: dict) -> bool:
    return ctx["device_type"] == "cuda"


def _sync(ctx: dict) -> None:
    if _cuda(ctx):
        _torch().cuda.synchronize()


def make_shard(root: Path, study: str, size: int, n_train: int, n_val: int, *, seed: int = 0) -> Path:
    """A synthetic dataset folder (``train.h5``, ``val.h5``, ``test.h5``, ``index.tsv``) of
    random slices in the study's channel layout, written by the package's own shard writer.
    Level and pattern cycle so that every S1 condition has slices in both splits."""
    import numpy as np
    import pandas as pd

    from spectsynth.datasets import write_shards
    from spectsynth.labels import LEVELS, PATTERNS
    from spectsynth.studies import get

    name = DATASET_OF[study]
    out = root / f"{name}-{size}-{n_train}-{n_val}-{seed}"
    if (out / "index.tsv").exists():
        return out
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    ch = len(get(study).channels)
    images = rng.random((n, ch, size, size), dtype=np.float32)
    if study in ("S2", "S3"):
        images = images * 2 - 1
    split = ["train"] * n_train + ["val"] * n_val
    idx = [i if i < n_train else i - n_train for i in range(n)]
    table = pd.DataFrame({"dataset": name, "study": study, "subject": [f"{s[0]}{i % 10:02d}" for s, i in zip(split, idx)],
                          "split": split, "level": [LEVELS[i % 3] for i in idx],
                          "pattern": [PATTERNS[(i // 3) % 3] for i in idx], "space": "",
                          "source": "", "slice_index": 0, "n_z": 1, "record": range(n)})
    write_shards(name, images, table, {"study": study, "size": size, "normalise": "max"}, out,
                 channels=get(study).channels)
    return out


def datasets_cfg(size: int) -> dict:
    return {"s0": {"size": size}, "s1": {"size": size}, "s2": {"size": size, "spaces": ["native"]},
            "s3": {"size": size}}


def make_spec(case: str, size: int, batch: int, width: dict, *, epochs: int = 1, training: dict | None = None,
              quick: bool = False) -> dict:
    from spectsynth.experiments import expand_experiments

    entry = {**ENTRY[case], **width.get(case, {}), "batch_size": batch, "epochs": epochs}
    if ENTRY[case]["model"] == "fastgan":
        entry.update(GAN_SMALL if quick else {"gan_feature_steps": 50, "gan_eval_samples": 8})
    if ENTRY[case]["model"] == "pix2pix" and ENTRY[case]["study"] == "S3":
        entry.pop("inputs", None)
    cfg = {"datasets": datasets_cfg(size), "experiments": {case: entry},
           "training": {"progress": False, "num_workers": 0, **(training or {})}}
    return next(iter(expand_experiments(cfg).values()))


def _dataset(spec: dict, shard_dir: Path, split: str = "train"):
    from spectsynth.datasets import PairedSliceDataset, SliceShard
    from spectsynth.models.fastgan.data import GANSliceDataset

    shard = SliceShard(shard_dir / f"{split}.h5")
    if spec["model"] == "fastgan":
        return GANSliceDataset(shard, spec["condition"])
    src = spec["target_channels"] if spec["model"] == "vae" else spec["input_channels"]
    return PairedSliceDataset(shard, src, spec["target_channels"])


def _train(spec: dict, shard_dir: Path, out: Path, size: int, callbacks=()) -> dict:
    from spectsynth.studies import dataset_spec
    from spectsynth.train import train_experiment

    return train_experiment(spec, {"train": shard_dir / "train.h5", "val": shard_dir / "val.h5"}, out,
                            dataset=dataset_spec({"datasets": datasets_cfg(size)}, spec["dataset"]),
                            callbacks=callbacks)


def _kill_at(step: int):
    def cb(info):
        if info["global_step"] == step:
            raise _Kill
    return cb


def _build(family_spec: dict, setup, *, compile_nets: bool = False):
    torch = _torch()
    from spectsynth.models import build_model, get_family, init_weights

    torch.manual_seed(0)
    nets = build_model(family_spec["model"], family_spec)
    init_weights(nets)
    nets.to(setup.device)
    if setup.channels_last:
        nets.to(memory_format=torch.channels_last)
    recipe = get_family(family_spec["model"]).recipe()(family_spec, nets, setup)
    if compile_nets:   # as training.compile: default does it (in place, after the recipe)
        from spectsynth.device import compile_networks
        compile_networks(nets, "default")
    return nets, recipe


def _device_batch(spec: dict, size: int, batch: int, setup, n_cond: int = 0) -> dict:
    """One random batch of the family's layout (FastGAN: ``n_cond`` condition classes, the
    generator's ``n_cond``), resident on the device."""
    torch = _torch()
    from spectsynth.recipe import move_batch

    g = torch.Generator().manual_seed(0)
    n_out = len(spec["target_channels"])
    if spec["model"] == "fastgan":
        cond = torch.zeros(batch, n_cond)
        cond[torch.arange(batch), torch.arange(batch) % n_cond] = 1
        b = {"image": torch.rand(batch, n_out, size, size, generator=g) * 2 - 1, "cond": cond}
    else:
        n_in = len(spec["target_channels"] if spec["model"] == "vae" else spec["input_channels"])
        b = {"input": torch.rand(batch, n_in, size, size, generator=g) * 2 - 1,
             "target": torch.rand(batch, n_out, size, size, generator=g) * 2 - 1}
    return move_batch(b, setup.device, setup.channels_last)


def _n_cond(nets) -> int:
    """The number of condition classes of a FastGAN's generator (0 for the other families)."""
    g = nets["G"] if "G" in nets else None
    g = getattr(g, "_orig_mod", g)
    return int(getattr(g, "n_cond", 0) or 0)


def _infer(nets, family: str, batch: dict, latent_dim: int):
    torch = _torch()
    if family == "fastgan":
        z = torch.randn(batch["cond"].shape[0], latent_dim, generator=torch.Generator().manual_seed(1))
        return nets["G"](z.to(batch["cond"].device), batch["cond"])
    if family == "pix2pix":
        return nets["G"](batch["input"])
    return nets["vae"].predict(batch["input"])


# --------------------------------------------------------------------------- stages


def stage_environment(ctx: dict) -> dict:
    torch = _torch()
    out = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "device": ctx["device"], "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "quick": ctx["quick"]}
    if _cuda(ctx):
        dev = torch.device(ctx["device"])
        p = torch.cuda.get_device_properties(dev)
        free, total = torch.cuda.mem_get_info(dev)
        out.update(device_name=p.name, capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                   bf16_supported=torch.cuda.is_bf16_supported(), gpu_memory_gib=round(total / 2 ** 30, 2),
                   gpu_memory_free_gib=round(free / 2 ** 30, 2), device_count=torch.cuda.device_count(),
                   driver=_nvidia_smi())
    else:
        out.update(device_name="cpu", bf16_supported=None, gpu_memory_gib=None)
    return out


def _nvidia_smi() -> str:
    try:
        res = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        return res.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def stage_cuda_tests(ctx: dict) -> dict:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if re.search(r"pytest\.mark\.cuda\b", p.read_text()))
    if not files:
        raise RuntimeError("no test file under tests/ holds a cuda-marked test")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    base = [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-q", "-rs"]
    if not _cuda(ctx) and ctx["quick"]:
        marked = [f"{f}::{name}" for f in files for name in re.findall(
            r"@pytest\.mark\.cuda\s*\n(?:@[^\n]*\n)*def (test_\w+)", (REPO / f).read_text())]
        if not marked:
            raise RuntimeError(f"no cuda-marked test function found in {files}")
        raise Skipped(NO_CUDA + " (--quick: the marked tests listed, not collected)", {"files": files,
                                                                                      "collected": marked})
    if not _cuda(ctx):
        res = subprocess.run([*base, "--collect-only", *files], capture_output=True, text=True, cwd=REPO,
                             env=env, timeout=300)
        collected = [ln for ln in res.stdout.splitlines() if "::" in ln]
        if res.returncode != 0 or not collected:
            raise RuntimeError(f"collecting the cuda tests failed (rc {res.returncode}): {res.stdout[-1500:]}"
                               f"{res.stderr[-1500:]}")
        raise Skipped(NO_CUDA, {"files": files, "collected": collected})
    # tests/conftest.py hides the GPUs unless CUDA_VISIBLE_DEVICES is set: name the device here
    if not env.get("CUDA_VISIBLE_DEVICES"):
        index = _torch().device(ctx["device"]).index or 0
        env["CUDA_VISIBLE_DEVICES"] = str(index)
    res = subprocess.run([*base, *files], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=ctx["cuda_tests_timeout"])
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", summary)}
    out = {"files": files, "returncode": res.returncode, "summary": summary, "counts": counts,
           "output_tail": res.stdout[-3000:] + res.stderr[-1500:]}
    if res.returncode != 0:
        raise RuntimeError(f"pytest -m cuda: {summary or 'rc ' + str(res.returncode)}")
    if not counts.get("passed"):
        raise RuntimeError(f"pytest -m cuda passed no test ({summary}); were they skipped?")
    return out


def stage_kill_resume(ctx: dict) -> dict:
    torch = _torch()
    from spectsynth.checkpoints import load_checkpoint

    size, bs, steps = ctx["kr_size"], ctx["kr_batch"], ctx["kr_steps"]
    results, failed = {}, []
    for fam in FAMILIES:
        t0 = time.perf_counter()
        try:
            spec = make_spec(fam, size, bs, ctx["width"], epochs=1, quick=ctx["quick"],
                             training={"device": ctx["device"], "checkpoint_every_steps": 2,
                                       "checkpoint_every": 100})
            n_train = max(bs * steps, 9)
            shard = make_shard(ctx["work"] / "shards", spec["study"], size, n_train, max(9, bs))
            total = n_train // bs
            first, second = PRECISION_LEGS[fam] if _cuda(ctx) else ("off", "off")
            out = ctx["work"] / "kill_resume" / fam
            spec["training"]["amp"] = first
            try:
                _train(spec, shard, out, size, callbacks=[_kill_at(3)])
                raise RuntimeError("the kill at step 3 did not happen")
            except _Kill:
                pass
            saved = load_checkpoint(out / "checkpoints" / "last.pt")
            spec["training"]["amp"] = second
            sel = _train(spec, shard, out, size)
            ck = load_checkpoint(out / "checkpoints" / "last.pt")
            runtime = [{k: r.get(k) for k in ("from_step", "device", "precision", "grad_scaler")}
                       for r in ck.get("runtime", [])]
            losses = {k: v for r in ck["history"] for k, v in r.items()
                      if k.startswith(("loss", "G_", "D_", "recon", "kl")) and isinstance(v, float)}
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            problems = []
            if int(saved["global_step"]) != 2:
                problems.append(f"killed run's checkpoint at step {saved['global_step']}, expected 2")
            if int(ck["global_step"]) != total:
                problems.append(f"resumed run ended at step {ck['global_step']}, expected {total}")
            if bad:
                problems.append(f"non-finite losses {bad}")
            if _cuda(ctx) and len({r["precision"] for r in runtime}) < 2:
                problems.append(f"the runtime record does not show the precision change: {runtime}")
            if not (out / "best.pt").exists():
                problems.append("no best.pt")
            ctx.setdefault("best", {})[fam] = out / "best.pt"
            results[fam] = {"status": "failed" if problems else "ok", "problems": problems,
                            "precision": f"{first} -> {second}" if _cuda(ctx) else "fp32 -> fp32 (CPU: always fp32)",
                            "killed_checkpoint_step": int(saved["global_step"]), "final_step": int(ck["global_step"]),
                            "runtime": runtime, "best_epoch": sel.get("best_epoch"), "last_losses": losses,
                            "seconds": round(time.perf_counter() - t0, 2)}
        except Exception as exc:  # noqa: BLE001 - one family's failure does not hide the others'
            results[fam] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()[-2000:], "seconds": round(time.perf_counter() - t0, 2)}
        if results[fam]["status"] != "ok":
            failed.append(fam)
        if _cuda(ctx):
            torch.cuda.empty_cache()
    out = {"size": size, "batch_size": bs, "families": results}
    if failed:
        raise StageFailure(f"families failed: {failed}", out)
    return out


def stage_inference_diff(ctx: dict) -> dict:
    torch = _torch()
    from spectsynth.models.inference import load_for_inference

    size = ctx["kr_size"]
    results = {}
    for fam in FAMILIES:
        best = ctx.get("best", {}).get(fam)
        if best is None or not Path(best).exists():
            # stage 3 did not leave one: a short CPU training makes it
            spec = make_spec(fam, size, 2, ctx["width"], epochs=1, quick=True, training={"device": "cpu"})
            shard = make_shard(ctx["work"] / "shards", spec["study"], size, 9, 9)
            out = ctx["work"] / "inference" / fam
            _train(spec, shard, out, size)
            best = out / "best.pt"
        nets_cpu, spec = load_for_inference(best, device="cpu")
        cpu_setup = _device_setup({"device": "cpu"})
        batch = _device_batch(spec, size, 4, cpu_setup, _n_cond(nets_cpu))
        with torch.no_grad():
            ref = _infer(nets_cpu, fam, batch, int(spec.get("latent_dim") or 0)).float()
        r = {"output_shape": list(ref.shape), "cpu_finite": bool(torch.isfinite(ref).all())}
        if _cuda(ctx):
            nets_dev, _ = load_for_inference(best, device=ctx["device"])
            dbatch = {k: v.to(ctx["device"]) for k, v in batch.items()}
            with torch.no_grad():
                dev = _infer(nets_dev, fam, dbatch, int(spec.get("latent_dim") or 0)).float().cpu()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    dev_bf16 = _infer(nets_dev, fam, dbatch, int(spec.get("latent_dim") or 0)).float().cpu()
            r.update(max_abs_diff_fp32=float((dev - ref).abs().max()),
                     mean_abs_diff_fp32=float((dev - ref).abs().mean()),
                     max_abs_diff_bf16_autocast=float((dev_bf16 - ref).abs().max()),
                     output_range=[float(ref.min()), float(ref.max())])
        results[fam] = r
    out = {"families": results, "checkpoints": "stage kill_resume's best.pt (fp32 inference, as the workflow)"}
    if not _cuda(ctx):
        raise Skipped(NO_CUDA + " (CPU outputs computed)", out)
    return out


def _loop_step(recipe, setup, batch: dict, acc: dict) -> None:
    """One step as the training loop does it (spectsynth.train): batch to the device, the
    recipe's step, the losses accumulated on the device."""
    torch = _torch()
    from spectsynth.recipe import move_batch

    losses = recipe.train_step(move_batch(batch, setup.device, setup.channels_last), 0.5)
    for k, v in losses.items():
        acc[k] = acc.get(k, 0.0) + (v.detach().double() if torch.is_tensor(v) else float(v))


def stage_sync_audit(ctx: dict) -> dict:
    torch = _torch()
    from torch.utils.data import DataLoader

    from spectsynth.datasets import EpochSampler

    size, bs, steps = ctx["kr_size"], ctx["kr_batch"], ctx["sync_steps"]
    results = {}
    cuda = _cuda(ctx)
    for fam in FAMILIES:
        spec = make_spec(fam, size, bs, ctx["width"], quick=ctx["quick"])
        shard = make_shard(ctx["work"] / "shards", spec["study"], size, max(9, bs * (steps + 2)), max(9, bs))
        setup = _device_setup(ctx, amp="auto" if cuda else "off")
        nets, recipe = _build(spec, setup)
        ds = _dataset(spec, shard)
        loader = DataLoader(ds, batch_size=bs, sampler=EpochSampler(len(ds), 0), drop_last=True,
                            num_workers=0, pin_memory=cuda, generator=torch.Generator().manual_seed(0))
        it = iter(loader)
        acc: dict = {}
        _loop_step(recipe, setup, next(it), acc)        # warm-up outside the audit (cuDNN, allocator)
        _sync(ctx)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                for _ in range(steps):
                    _loop_step(recipe, setup, next(it), acc)
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode(0)
        sync = [w for w in caught if "synchroniz" in str(w.message).lower()]
        where: dict[str, int] = {}
        for w in sync:
            key = f"{Path(w.filename).name}:{w.lineno}"
            where[key] = where.get(key, 0) + 1
        results[fam] = {"steps": steps, "sync_warnings": len(sync), "per_step": len(sync) / max(1, steps),
                        "where": dict(sorted(where.items(), key=lambda kv: -kv[1])[:10]),
                        "first_messages": sorted({str(w.message)[:160] for w in sync})[:3]}
        del nets, recipe
    out = {"families": results, "amp": "auto" if cuda else "off"}
    if not cuda:
        raise Skipped(NO_CUDA + " (the steps ran on the CPU, nothing to audit)", out)
    return out


def _variants(ctx: dict) -> list[tuple[str, str, bool, bool]]:
    if not _cuda(ctx):
        return [("fp32", "off", False, False)]
    return [("fp32", "off", False, False), ("bf16", "bf16", False, False),
            ("bf16+channels_last", "bf16", True, False), ("bf16+channels_last+compile", "bf16", True, True)]


def measure_steps(ctx: dict, case: str, size: int, batch: int, amp: str, channels_last: bool,
                  compile_nets: bool, *, warmup: int, steps: int, max_seconds: float,
                  start_at: float | None = None) -> dict:
    """Images/s of ``steps`` optimisation steps (at most ``max_seconds``) after ``warmup`` steps;
    with ``start_at`` (``time.time()``), timing starts then (concurrent processes measure together)."""
    torch = _torch()
    spec = make_spec(case, size, batch, ctx["width"], quick=ctx["quick"])
    setup = _device_setup(ctx, amp=amp, channels_last=channels_last)
    nets, recipe = _build(spec, setup, compile_nets=compile_nets)
    b = _device_batch(spec, size, batch, setup, _n_cond(nets))
    if _cuda(ctx):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t_w = time.perf_counter()
    for _ in range(warmup):
        recipe.train_step(b, 0.5)
    _sync(ctx)
    warm_s = time.perf_counter() - t_w
    late = None
    if start_at is not None:
        late = time.time() > start_at
        time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    n = 0
    while n < steps:
        recipe.train_step(b, 0.5)
        n += 1
        if n % 5 == 0:
            _sync(ctx)
            if time.perf_counter() - t0 > max_seconds:
                break
    _sync(ctx)
    dt = time.perf_counter() - t0
    out = {"images_per_s": n * batch / dt, "steps": n, "seconds": round(dt, 3), "warmup_seconds": round(warm_s, 2)}
    if late is not None:
        out["started_late"] = late
    if _cuda(ctx):
        out["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    del nets, recipe, b
    return out


def stage_throughput(ctx: dict) -> dict:
    torch = _torch()
    rows = []
    t_stage = time.perf_counter()
    for label, amp, cl, comp in _variants(ctx):
        for name, (case, size, batch) in ctx["cases"].items():
            row = {"case": name, "family": ENTRY[case]["model"], "study": ENTRY[case]["study"], "variant": label,
                   "size": size, "batch_size": batch, "widths": ctx["width_label"]}
            if comp and time.perf_counter() - t_stage > ctx["compile_budget_after_s"]:
                row.update(status="skipped", reason="time budget of the stage spent before compiling")
                rows.append(row)
                continue
            try:
                row.update(measure_steps(ctx, case, size, batch, amp, cl, comp, warmup=ctx["tp_warmup"] + 2 * comp,
                                         steps=ctx["tp_steps"], max_seconds=ctx["tp_seconds"]), status="ok")
            except Exception as exc:  # noqa: BLE001 - e.g. a family torch.compile cannot take
                row.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:400]}")
            if _cuda(ctx):
                torch.cuda.empty_cache()
            rows.append(row)
    fp32 = {r["case"]: r["images_per_s"] for r in rows if r["variant"] == "fp32" and r["status"] == "ok"}
    for r in rows:
        if r["status"] == "ok" and r["case"] in fp32:
            r["speedup_vs_fp32"] = r["images_per_s"] / fp32[r["case"]]
    ctx["throughput"] = rows
    print(_table(rows, ["case", "variant", "size", "batch_size", "images_per_s", "speedup_vs_fp32", "peak_mem_mib",
                        "status"]), flush=True)
    out = {"rows": rows, "batches": "resident on the device (no data loading)"}
    bad = [f"{r['case']}/{r['variant']}" for r in rows if r["status"] == "failed" and r["variant"] == "fp32"]
    if bad:
        raise StageFailure(f"fp32 steps failed: {bad}", out)
    if not _cuda(ctx):
        raise Skipped(NO_CUDA + " (fp32 on the CPU measured; bf16, channels-last and compile need CUDA)", out)
    return out


def stage_data_path(ctx: dict) -> dict:
    torch = _torch()
    from torch.utils.data import DataLoader

    from spectsynth.datasets import EpochSampler, PairedSliceDataset, SliceShard

    size, n = ctx["dp_size"], ctx["dp_items"]
    shard_dir = make_shard(ctx["work"] / "shards", "S2", size, n, 9)
    path = shard_dir / "train.h5"
    mb = n * 4 * size * size * 4 / 2 ** 20
    rows = []
    for mode, preload in (("preloaded", mb * 2 + 1), ("h5py", 0)):
        for workers in ctx["dp_workers"]:
            shard = SliceShard(path, preload_max_mb=preload)
            ds = PairedSliceDataset(shard, ["mri", "pet"], ["spect"])
            loader = DataLoader(ds, batch_size=8, sampler=EpochSampler(len(ds), 0), drop_last=True,
                                num_workers=workers, pin_memory=_cuda(ctx),
                                generator=torch.Generator().manual_seed(0),
                                persistent_workers=False)
            passes = []
            for _ in range(2):       # the first pass also starts the workers and fills the caches
                t0 = time.perf_counter()
                items = 0
                for batch in loader:
                    items += batch["input"].shape[0]
                    if _cuda(ctx):
                        batch["input"].to(ctx["device"], non_blocking=True)
                _sync(ctx)
                passes.append((items, time.perf_counter() - t0))
            (n1, dt1), (items, dt) = passes
            rows.append({"mode": mode, "preload_max_mb": preload, "preloaded": shard._images is not None,
                         "num_workers": workers, "items": items, "items_per_s": items / dt,
                         "items_per_s_first_pass": n1 / dt1, "seconds": round(dt, 3)})
    print(_table(rows, ["mode", "num_workers", "items", "items_per_s", "items_per_s_first_pass", "preloaded"]),
          flush=True)
    return {"size": size, "shard_mib": round(mb, 1), "channels": 4, "rows": rows,
            "note": "items_per_s: the second pass over the shard (batch 8, augmentation off, OS file cache warm); "
                    "items_per_s_first_pass includes starting the workers"}


def stage_s2_training(ctx: dict) -> dict:
    import pandas as pd

    size, bs = ctx["s2_size"], ctx["s2_batch"]
    spec = make_spec("pix2pix", size, bs, ctx["s2_width"], epochs=2, quick=ctx["quick"],
                     training={"device": ctx["device"], "amp": "auto", "checkpoint_every": 1,
                               "channels_last": _cuda(ctx)})
    shard = make_shard(ctx["work"] / "shards", "S2", size, ctx["s2_train"], ctx["s2_val"], seed=2)
    out = ctx["work"] / "s2_training"
    t0 = time.perf_counter()
    sel = _train(spec, shard, out, size)
    wall = time.perf_counter() - t0
    hist = pd.read_csv(out / "history.csv")
    keep = [c for c in ("epoch", "epoch_seconds", "images_per_second", "data_wait_share", "val_score",
                        "G_share_l1", "G_share_ssim") if c in hist]
    outputs = sorted(p.name for p in out.iterdir())
    need = {"best.pt", "selection.json", "history.csv", "provenance.json", "loss_curve.png"}
    missing = sorted(need - set(outputs))
    res = {"experiment": spec["experiment"], "size": size, "batch_size": bs, "widths": ctx["s2_width_label"],
           "train_slices": ctx["s2_train"], "val_slices": ctx["s2_val"], "wall_seconds": round(wall, 2),
           "history": hist[keep].to_dict("records"), "best_epoch": sel.get("best_epoch"),
           "best_score": sel.get("best_score"), "outputs": outputs,
           "data": "synthetic shard (random slices at S2's size and channels); a simulated S2 shard needs the "
                   "simulation and preprocessing pipeline (minutes per subject)"}
    if missing or hist["epoch"].tolist() != [1, 2]:
        raise StageFailure(f"missing outputs {missing} or epochs {hist['epoch'].tolist()}", res)
    return res


def _worker_cmd(ctx: dict, case: str, size: int, batch: int, seconds: float, amp: str) -> list[str]:
    args = {"case": case, "size": size, "batch": batch, "seconds": seconds, "amp": amp,
            "device": ctx["device"], "quick": ctx["quick"], "warmup": ctx["tp_warmup"],
            "start_at": time.time() + ctx["pack_start_delay"]}
    return [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(args)]


def worker(spec_json: str) -> dict:
    """One packing process: steps of one case for a fixed time (its images/s and peak memory)."""
    a = json.loads(spec_json)
    torch = _torch()
    torch.set_num_threads(1)
    ctx = {"device": a["device"], "device_type": torch.device(a["device"]).type, "quick": a["quick"],
           "width": QUICK_WIDTH if a["quick"] else PAPER_WIDTH}
    r = measure_steps(ctx, a["case"], a["size"], a["batch"], a["amp"], False, False, warmup=a["warmup"],
                      steps=10 ** 9 if not a["quick"] else 2, max_seconds=a["seconds"], start_at=a.get("start_at"))
    return r


def _fork_worker(spec_json: str, queue) -> None:
    try:
        queue.put(worker(spec_json))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _pack(ctx: dict, cmd: list[str], n_proc: int, env: dict) -> list[dict]:
    """``n_proc`` concurrent workers.  On CUDA each is a fresh interpreter (its own CUDA context);
    on the CPU they are forked from this process (no second start-up of torch)."""
    if _cuda(ctx):
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
                 for _ in range(n_proc)]
        outs = [p.communicate(timeout=ctx["pack_timeout"]) for p in procs]
        bad = [(p.returncode, e[-800:]) for p, (_, e) in zip(procs, outs) if p.returncode != 0]
        if bad:
            raise RuntimeError(f"packing worker failed: {bad[0]}")
        return [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    import multiprocessing as mp

    mpc = mp.get_context("fork")
    queue = mpc.Queue()
    procs = [mpc.Process(target=_fork_worker, args=(cmd[-1], queue)) for _ in range(n_proc)]
    for p in procs:
        p.start()
    res = [queue.get(timeout=ctx["pack_timeout"]) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    bad = [r["error"] for r in res if "error" in r]
    if bad:
        raise RuntimeError(f"packing worker failed: {bad[0]}")
    return res


def stage_packing(ctx: dict) -> dict:
    from spectsynth.device import select_device

    if ctx["device"] == "auto":
        raise RuntimeError("the device was not resolved")
    amp = "bf16" if _cuda(ctx) else "off"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    results = {}
    for name in ctx["pack_cases"]:
        case, size, batch = ctx["cases"][name]
        per = {}
        for n_proc in (1, 3):
            cmd = _worker_cmd(ctx, case, size, batch, ctx["pack_seconds"], amp)
            t0 = time.perf_counter()
            each = _pack(ctx, cmd, n_proc, env)
            per[f"{n_proc}_process"] = {"images_per_s_total": sum(r["images_per_s"] for r in each),
                                        "images_per_s_each": [r["images_per_s"] for r in each],
                                        "peak_mem_mib_each": [r.get("peak_mem_mib") for r in each],
                                        "started_late": [r.get("started_late") for r in each],
                                        "wall_seconds": round(time.perf_counter() - t0, 2)}
        per["gain_3_vs_1"] = per["3_process"]["images_per_s_total"] / per["1_process"]["images_per_s_total"]
        results[name] = {"size": size, "batch_size": batch, "precision": amp, **per}
    out = {"cases": results, "device": str(select_device(ctx["device"]).device),
           "note": "the processes start together, warm up, then time their steps over the same wall-clock window "
                   "(started_late: a process still warming up when the window opened); the totals are sums"}
    if not _cuda(ctx):
        raise Skipped(NO_CUDA + " (packed on the CPU cores instead)", out)
    return out


def study_plan(study: str) -> list[dict]:
    """The experiments of a study's paper-scale design (config/config.yaml + config/studies/sN.yaml):
    name, family, training images per epoch, configured and published epochs."""
    import yaml

    from spectsynth.config import merge
    from spectsynth.design import experiment_counts
    from spectsynth.experiments import expand_experiments
    from spectsynth.planner import plan
    from spectsynth.studies import get

    cfg: dict = {}
    for path in (REPO / "config" / "config.yaml", REPO / "config" / "studies" / f"{study.lower()}.yaml"):
        cfg = merge(cfg, yaml.safe_load(path.read_text()) or {})
    p = plan(cfg)
    specs = expand_experiments(cfg)
    published_epochs = int(get(study).training_defaults["epochs"])
    rows = []
    for name, e in p["experiments"].items():
        spec = specs[name]
        if spec["study"] != study:
            continue
        c = experiment_counts(p["designs"][e["dataset"]], e["levels"])
        rows.append({"experiment": name, "model": spec["model"], "train_images": int(c["train"]),
                     "epochs_configured": int(spec["epochs"]), "epochs_published": published_epochs,
                     "size": int(spec["size"]), "batch_size": int(spec["batch_size"])})
    return rows


def stage_hours(ctx: dict) -> dict:
    rows_tp = ctx.get("throughput") or []
    measured: dict[str, dict] = {}
    for r in rows_tp:
        if r.get("status") != "ok":
            continue
        m = measured.setdefault(r["case"], {})
        if r["variant"] == "fp32":
            m["fp32"] = r["images_per_s"]
        if r["images_per_s"] > m.get("best", 0):
            m.update(best=r["images_per_s"], best_variant=r["variant"])
    case_of = {("S0", "vae"): "s0_vae", ("S0", "cvae"): "s0_cvae", ("S1", "fastgan"): "s1_fastgan",
               ("S2", "pix2pix"): "s2_pix2pix", ("S3", "pix2pix"): "s3_pix2pix"}
    table = []
    for study in ("S0", "S1", "S2", "S3"):
        groups: dict[str, list[dict]] = {}
        for e in study_plan(study):
            groups.setdefault(e["model"], []).append(e)
        for model, exps in groups.items():
            case = case_of[(study, model)]
            m = measured.get(case, {})
            img_pub = sum(e["train_images"] * e["epochs_published"] for e in exps)
            img_cfg = sum(e["train_images"] * e["epochs_configured"] for e in exps)
            row = {"study": study, "model": model, "experiments": len(exps),
                   "train_images_per_epoch": sorted({e["train_images"] for e in exps}),
                   "epochs_published": exps[0]["epochs_published"],
                   "epochs_configured": sorted({e["epochs_configured"] for e in exps}),
                   "size": exps[0]["size"], "batch_size": exps[0]["batch_size"],
                   "images_published": img_pub, "throughput_case": case,
                   "measured_size": ctx["cases"][case][1], "measured_batch": ctx["cases"][case][2],
                   "images_per_s_fp32": m.get("fp32"), "images_per_s_best": m.get("best"),
                   "best_variant": m.get("best_variant")}
            for key, ips in (("fp32", m.get("fp32")), ("best", m.get("best"))):
                row[f"gpu_hours_published_{key}"] = img_pub / ips / 3600 if ips else None
                row[f"gpu_hours_configured_{key}"] = img_cfg / ips / 3600 if ips else None
            table.append(row)
    text = _hours_text(table, ctx)
    print(text, flush=True)
    total = {k: sum(r[k] for r in table if r[k] is not None)
             for k in ("gpu_hours_published_fp32", "gpu_hours_published_best")}
    return {"rows": table, "total": total, "table": text,
            "basis": "training steps only (validation, FastGAN's feature network and inference not counted); "
                     "images per epoch = the design's training split; throughput from stage throughput"
                     + (" at --quick sizes: the hours do not describe the paper scale" if ctx["quick"] else ""),
            "device": ctx["device"]}


def _hours_text(table: list[dict], ctx: dict) -> str:
    def f(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)

    head = (f"{'study':<5} {'model':<8} {'exps':>4} {'img/epoch':>10} {'epochs':>6} {'px':>4} {'batch':>5} "
            f"{'img/s fp32':>10} {'img/s best':>10} {'best variant':<27} {'GPU-h fp32':>10} {'GPU-h best':>10} "
            f"{'GPU-h cfg':>9}")
    lines = ["GPU-hours of the paper-scale designs (published epochs; 'cfg': at the epochs config/config.yaml + "
             "config/studies/sN.yaml resolve to, best variant)" + (" [--quick: tiny sizes, not the paper's]"
                                                                  if ctx["quick"] else ""), head]
    for r in table:
        lines.append(f"{r['study']:<5} {r['model']:<8} {r['experiments']:>4} "
                     f"{'/'.join(map(str, r['train_images_per_epoch'])):>10} {r['epochs_published']:>6} "
                     f"{r['measured_size']:>4} {r['measured_batch']:>5} {f(r['images_per_s_fp32']):>10} "
                     f"{f(r['images_per_s_best']):>10} {str(r['best_variant'] or '-'):<27} "
                     f"{f(r['gpu_hours_published_fp32']):>10} {f(r['gpu_hours_published_best']):>10} "
                     f"{f(r['gpu_hours_configured_best'], '{:.2f}'):>9}")
    tot = [sum(r[k] for r in table if r[k] is not None) for k in ("gpu_hours_published_fp32", "gpu_hours_published_best")]
    lines.append(f"{'total':<5} {'':<8} {sum(r['experiments'] for r in table):>4} {'':>10} {'':>6} {'':>4} {'':>5} "
                 f"{'':>10} {'':>10} {'':<27} {tot[0]:>10.1f} {tot[1]:>10.1f}")
    return "\n".join(lines)


def _table(rows: list[dict], cols: list[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    widths = [max(len(c), *(len(cell(r.get(c))) for r in rows)) if rows else len(c) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(cell(r.get(c)).ljust(w) for c, w in zip(cols, widths)) for r in rows]
    return "\n".join(lines)


STAGE_FUNCS = {"environment": stage_environment, "cuda_tests": stage_cuda_tests, "kill_resume": stage_kill_resume,
               "inference_diff": stage_inference_diff, "sync_audit": stage_sync_audit, "throughput": stage_throughput,
               "data_path": stage_data_path, "s2_training": stage_s2_training, "packing": stage_packing,
               "hours": stage_hours}


def make_context(args) -> dict:
    torch = _torch()
    from spectsynth.device import select_device

    device = str(select_device(args.device).device)
    q = args.quick
    ctx = {"device": device, "device_type": torch.device(device).type, "quick": q,
           "width": QUICK_WIDTH if q else PAPER_WIDTH, "width_label": "quick" if q else "published"}
    if q:
        ctx.update(kr_size=32, kr_batch=2, kr_steps=4, sync_steps=1,
                   cases={k: (c, 32, 2) for k, (c, _, _) in PAPER_CASES.items()},
                   tp_warmup=1, tp_steps=1, tp_seconds=1.0, compile_budget_after_s=0.0,
                   dp_size=32, dp_items=32, dp_workers=(0,),
                   s2_size=32, s2_batch=2, s2_train=4, s2_val=2, s2_width=QUICK_WIDTH, s2_width_label="quick",
                   pack_cases=("s0_vae",), pack_seconds=0.5, pack_timeout=120, pack_start_delay=1.0, cuda_tests_timeout=300)
    else:
        ctx.update(kr_size=64, kr_batch=4, kr_steps=4, sync_steps=5, cases=dict(PAPER_CASES),
                   tp_warmup=3, tp_steps=40, tp_seconds=3.0, compile_budget_after_s=100.0,
                   dp_size=256, dp_items=256, dp_workers=(0, min(4, os.cpu_count() or 1)),
                   s2_size=256, s2_batch=8, s2_train=64, s2_val=16, s2_width=PAPER_WIDTH, s2_width_label="published",
                   pack_cases=("s2_pix2pix", "s1_fastgan"), pack_seconds=6.0, pack_timeout=240, pack_start_delay=20.0, cuda_tests_timeout=240)
    return ctx


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check.jsonl"), help="JSON-lines file (appended to)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--quick", action="store_true", help="tiny sizes and steps: checks that every stage runs")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="a subset of the stages")
    p.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed at the end)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker)), flush=True)
        return 0
    os.environ.setdefault("MPLBACKEND", "Agg")
    rec = Recorder(args.out)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            ctx = make_context(args)
        except Exception as exc:  # noqa: BLE001 - recorded like a stage
            rec.write({"stage": "setup", "status": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": 0})
            print(f"[gpu_check] setup failed: {exc}", file=sys.stderr)
            return 1
        ctx["work"] = work
        if args.quick:
            _torch().set_num_threads(1)   # tiny networks: one thread is faster on a shared machine
        print(f"[gpu_check] device {ctx['device']}{' (quick)' if args.quick else ''}; records -> {args.out}",
              flush=True)
        statuses = {}
        for name in STAGES:
            if name in args.stages:
                statuses[name] = run_stage(name, STAGE_FUNCS[name], ctx, rec)["status"]
    failed = [k for k, v in statuses.items() if v == "failed"]
    rec.write({"stage": "summary", "status": "failed" if failed else "ok", "failed": failed,
               "statuses": statuses, "seconds": round(time.perf_counter() - t0, 2)})
    print(f"[gpu_check] done in {time.perf_counter() - t0:.1f} s; failed: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
