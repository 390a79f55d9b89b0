"""Inference: predictions of a trained experiment on its dataset's test split.

* Paired families (``pix2pix`` for S2/S3, ``vae``/``cvae`` for S0): every test slice is
  passed through the network (eval mode, no dropout, VAE posterior mean), giving one
  prediction per slice next to its input and target.
* Conditional FastGAN (S1): for every (level, pattern) condition of the experiment, as many
  samples as the real test split holds for that condition (S1 generated as many images as it
  had real ones), drawn from the EMA generator with a seeded latent stream.

Output: one HDF5 file (``prediction`` (N, C, H, W) float32, and for paired experiments
``input`` and ``target`` in the same normalised units as the dataset shards) and one TSV
with a row per prediction (the test-index columns for paired experiments; level, pattern
and sample number for generated images).  The normalisation gain/bias columns of the
dataset index travel with each row so the input's and the target's raw values can be
recovered as ``(x - bias) / gain``; a *prediction* is turned into physical units only with the
input's constants and lines fitted on the training split (:mod:`spectsynth.calibration`),
never with its target's.

Nothing here trains: the networks come from :func:`spectsynth.train.load_for_inference`.
The device is chosen at call time (``auto``: CUDA when available, else CPU).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .errors import EvaluationError
from .io import atomic_output, save_image
from .labels import LEVELS, PATTERNS

log = logging.getLogger(__name__)

PAIRED_FAMILIES = ("pix2pix", "vae", "cvae")
GAN_FAMILIES = ("fastgan",)
PREDICTION_FORMAT = "spectsynth-predictions"


def read_index(index_tsv: str | Path, *, split: str = "test", experiment: str = "") -> pd.DataFrame:
    """Rows of a dataset's ``index.tsv`` for one split, ordered by their shard row."""
    path = Path(index_tsv)
    if not path.exists():
        raise EvaluationError(f"dataset index {path} does not exist", experiment=experiment,
                              hint="Run the build_dataset rule of this experiment's dataset first")
    table = pd.read_csv(path, sep="\t", dtype={"subject": str}, keep_default_na=False)
    need = {"split", "shard_row", "subject"}
    missing = need - set(table.columns)
    if missing:
        raise EvaluationError(f"dataset index {path} lacks columns {sorted(missing)}",
                              experiment=experiment, hint="Rebuild the dataset")
    sub = table[table["split"] == split].sort_values("shard_row").reset_index(drop=True)
    return sub


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield start, min(n, start + batch_size)


def _device(requested: str, experiment: str):
    from .device import select_device

    return select_device(requested, amp="off", context=f"experiment {experiment}")


def predict_paired(nets, spec: Mapping, shard_path: str | Path, index: pd.DataFrame, *,
                   batch_size: int, device) -> dict[str, np.ndarray]:
    """Predict every slice of a test shard with a paired network (pix2pix G or (c)VAE).

    Returns ``input``, ``target``, ``prediction`` arrays ``(N, C, H, W)`` (float32, the
    shard's normalised units) and ``row`` (the shard rows).
    """
    import torch

    from .datasets import SliceShard

    name = spec["experiment"]
    shard = SliceShard(shard_path)
    if len(shard) != len(index):
        raise EvaluationError(
            f"test shard {shard_path} holds {len(shard)} slices but its index lists {len(index)} "
            "test rows", experiment=name, hint="Rebuild the dataset (index and shards disagree)")
    if len(shard) == 0:
        raise EvaluationError(f"test shard {shard_path} is empty; there is nothing to predict",
                              experiment=name, hint="Give the dataset test subjects (datasets.*.split)")
    cin = shard.channel_index(spec["input_channels"])
    cout = shard.channel_index(spec["target_channels"])
    images = shard.all_images()
    inp = np.ascontiguousarray(images[:, cin], dtype=np.float32)
    tgt = np.ascontiguousarray(images[:, cout], dtype=np.float32)
    net = nets["G"] if "G" in nets else nets["vae"]
    net.eval()
    out = []
    with torch.inference_mode():
        for a, b in _batches(len(inp), batch_size):
            x = torch.from_numpy(inp[a:b]).to(device)
            y = net.predict(x) if hasattr(net, "predict") else net(x)
            out.append(y.float().cpu().numpy())
    pred = np.concatenate(out, 0).astype(np.float32)
    if pred.shape != tgt.shape:
        raise EvaluationError(f"the network returns slices of shape {pred.shape[1:]} but the targets "
                              f"have shape {tgt.shape[1:]}", experiment=name,
                              hint="The checkpoint does not match this dataset; retrain the experiment")
    if not np.all(np.isfinite(pred)):
        raise EvaluationError(f"{int((~np.isfinite(pred)).sum())} predicted pixels are NaN or Inf",
                              experiment=name, hint="The trained weights are broken; retrain the experiment")
    return {"input": inp, "target": tgt, "prediction": pred, "row": np.asarray(shard.rows)}


def predict_gan(nets, spec: Mapping, index: pd.DataFrame, *, batch_size: int, device,
                seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Draw, per condition, as many FastGAN samples as the real test split has.

    Samples are returned in the shard's units (max-normalised, ``(x + 1) / 2`` of the
    generator's ``[-1, 1]`` output) with one table row per sample (``level, pattern,
    sample, seed``).  Conditions outside the experiment's levels are ignored.
    """
    import torch

    from .datasets import condition_vector
    from .models.fastgan import sample_latent

    name = spec["experiment"]
    cond = spec["condition"]
    levels = list(cond["levels"])
    real = index[index["level"].isin(levels)]
    if real.empty:
        raise EvaluationError(f"the test split has no slices at levels {levels}; there is nothing "
                              "to match the number of generated images to", experiment=name,
                              hint="Give dataset s1 test subjects (datasets.s1.split)")
    counts = real.groupby(["level", "pattern"], sort=False).size()
    order = [(lv, p) for lv in LEVELS for p in PATTERNS if (lv, p) in counts.index]
    G = nets["G"]
    G.eval()
    gen = torch.Generator().manual_seed(int(seed))
    images, rows = [], []
    with torch.inference_mode():
        for lv, pat in order:
            n = int(counts[(lv, pat)])
            vec = torch.from_numpy(condition_vector(lv, pat, bool(cond["use_level"])))
            done = 0
            for a, b in _batches(n, batch_size):
                z = sample_latent(b - a, int(spec["latent_dim"]), generator=gen, device=device)
                c = vec[None].expand(b - a, -1).to(device)
                x = G(z, c).float().cpu().numpy()
                images.append((x + 1.0) / 2.0)
                for _ in range(b - a):
                    rows.append({"experiment": name, "kind": "generated", "level": lv,
                                 "pattern": pat, "sample": done, "seed": int(seed)})
                    done += 1
    pred = np.concatenate(images, 0).astype(np.float32)
    if not np.all(np.isfinite(pred)):
        raise EvaluationError("the generator produced NaN or Inf pixels", experiment=name,
                              hint="The trained weights are broken; retrain the experiment")
    return pred, pd.DataFrame(rows)


def predict_experiment(best_pt: str | Path, test_shard: str | Path, index_tsv: str | Path,
                       out_h5: str | Path, out_tsv: str | Path, *, experiment: str,
                       batch_size: int = 64, device: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Predict the test split of one trained experiment and write ``out_h5`` + ``out_tsv``.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.  Returns the
    prediction table.  The HDF5 attributes record the experiment, model, data range of the
    normalised slices, the device and the checkpoint's selected epoch.
    """
    from .train import load_for_inference

    if int(batch_size) < 1:
        raise EvaluationError(f"batch size must be positive, got {batch_size}", experiment=experiment)
    setup = _device(device, experiment)
    nets, spec = load_for_inference(best_pt, device=setup.device, experiment=experiment)
    if spec.get("experiment") != experiment:
        raise EvaluationError(f"{best_pt} holds experiment {spec.get('experiment')!r}, not {experiment!r}",
                              experiment=experiment, hint="Check the checkpoint path")
    for m in nets.values():
        if m.training:
            raise EvaluationError("a network is in training mode after loading", experiment=experiment)
    index = read_index(index_tsv, experiment=experiment)
    t0 = time.perf_counter()
    model = spec["model"]
    if model in PAIRED_FAMILIES:
        arrays = predict_paired(nets, spec, test_shard, index, batch_size=int(batch_size),
                                device=setup.device)
        table = index.copy()
        table.insert(0, "experiment", experiment)
        table.insert(1, "kind", "paired")
        table.insert(2, "pred_row", np.arange(len(table)))
    elif model in GAN_FAMILIES:
        pred, table = predict_gan(nets, spec, index, batch_size=int(batch_size), device=setup.device,
                                  seed=seed)
        arrays = {"prediction": pred}
        table.insert(2, "pred_row", np.arange(len(table)))
    else:
        raise EvaluationError(f"no inference for model {model!r}", experiment=experiment)
    wall = time.perf_counter() - t0
    log.info("experiment %s: %d predictions on %s in %.2f s", experiment, len(table),
             setup.describe(), wall)
    attrs = {"experiment": experiment, "study": spec["study"], "model": model,
             "dataset": spec["dataset"],
             "units": ("max-normalised [0, 1] (dataset s1 units)" if model in GAN_FAMILIES
                       else "normalised dataset units (see the gain/bias columns of the table)"),
             "device": setup.describe(), "seconds": wall, "spec": json.dumps(spec, default=str)}
    write_predictions(arrays, table, attrs, out_h5, out_tsv)
    return table


def write_predictions(arrays: Mapping[str, np.ndarray], table: pd.DataFrame, attrs: Mapping,
                      out_h5: str | Path, out_tsv: str | Path) -> None:
    """Write a prediction file pair atomically: HDF5 ``arrays`` (+ ``attrs``) and the TSV table.

    ``arrays`` must hold ``prediction`` (N, C, H, W) and may hold ``input``/``target``;
    ``attrs`` must name the ``experiment``.  The table needs one row per prediction.
    """
    experiment = str(attrs.get("experiment", ""))
    if "prediction" not in arrays:
        raise EvaluationError("no 'prediction' array to write", experiment=experiment)
    n = np.asarray(arrays["prediction"]).shape[0]
    if len(table) != n:
        raise EvaluationError(f"{n} predictions but {len(table)} table rows", experiment=experiment)
    out_h5, out_tsv = Path(out_h5), Path(out_tsv)
    with atomic_output(out_h5) as tmp, h5py.File(tmp, "w") as f:
        for key, arr in arrays.items():
            f.create_dataset(key, data=np.asarray(arr, dtype=np.float32))
        f.attrs["format"] = PREDICTION_FORMAT
        for key, value in attrs.items():
            f.attrs[key] = value
    with atomic_output(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def load_predictions(h5_path: str | Path, tsv_path: str | Path, *,
                     experiment: str = "") -> tuple[dict[str, np.ndarray], pd.DataFrame, dict]:
    """Read a prediction file pair: ``(arrays, table, attrs)``; checks they agree."""
    h5_path, tsv_path = Path(h5_path), Path(tsv_path)
    for p in (h5_path, tsv_path):
        if not p.exists():
            raise EvaluationError(f"prediction file {p} does not exist", experiment=experiment,
                                  hint="Run the predict_experiment rule for this experiment")
    with h5py.File(h5_path, "r") as f:
        if f.attrs.get("format") != PREDICTION_FORMAT:
            raise EvaluationError(f"{h5_path} is not a prediction file", experiment=experiment)
        arrays = {k: f[k][()] for k in f.keys()}
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    table = pd.read_csv(tsv_path, sep="\t", dtype={"subject": str}, keep_default_na=False)
    exp = experiment or str(attrs.get("experiment", ""))
    if experiment and attrs.get("experiment") != experiment:
        raise EvaluationError(f"{h5_path} holds predictions of {attrs.get('experiment')!r}",
                              experiment=experiment, hint="Check the file paths")
    n = arrays["prediction"].shape[0]
    if len(table) != n:
        raise EvaluationError(f"{h5_path} holds {n} predictions but {tsv_path} lists {len(table)}",
                              experiment=exp, hint="Rerun predict_experiment")
    for key in ("input", "target"):
        if key in arrays and arrays[key].shape[0] != n:
            raise EvaluationError(f"{key} and prediction counts differ in {h5_path}", experiment=exp)
    return arrays, table, attrs


def _source_grid(source: str, *, experiment: str, subject: str):
    """Shape (3-D) and affine of a slice's source volume (``path`` or ``path[frame]``)."""
    import nibabel as nib

    path = source.rsplit("[", 1)[0] if source.endswith("]") else source
    if not path or not Path(path).exists():
        raise EvaluationError(f"the source volume {path!r} of the test slices does not exist",
                              experiment=experiment, subject=subject,
                              hint="Rerun the simulation/preprocessing that wrote it, or rebuild the dataset")
    img = nib.load(path)
    return tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine), path


def unresize_slice(image: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """Invert :func:`spectsynth.datasets.resize_slice`: resize back to the padded square and crop.

    ``shape_yx`` is the stored slice's shape before padding (rows = y, columns = x).
    """
    from skimage.transform import resize

    h, w = (int(s) for s in shape_yx)
    n = max(h, w)
    img = np.asarray(image, dtype=np.float64)
    sq = img if img.shape[0] == n else resize(img, (n, n), order=1, anti_aliasing=img.shape[0] > n,
                                              preserve_range=True, mode="constant")
    top, left = (n - h) // 2, (n - w) // 2
    return sq[top:top + h, left:left + w]


def slice_to_grid(image: np.ndarray, gain: float, bias: float, shape_xy: tuple[int, int]) -> np.ndarray:
    """A dataset slice (normalised, resized, shard orientation) back on its source grid.

    Undoes the normalisation (``(x - bias) / gain``), the resize and padding
    (:func:`unresize_slice`) and :func:`spectsynth.datasets.axial_slice`'s orientation, giving
    the RAS ``(x, y)`` plane of shape ``shape_xy`` in the source volume's units.
    """
    if gain == 0:
        raise ValueError("gain 0: the slice was stored as a constant and cannot be un-normalised")
    raw = (np.asarray(image, dtype=np.float64) - float(bias)) / float(gain)
    img = unresize_slice(raw, (int(shape_xy[1]), int(shape_xy[0])))
    return img[::-1, :].T  # inverse of datasets.axial_slice


def sample_vae(best_pt: str | Path, n: int, *, experiment: str, seed: int = 0, batch_size: int = 64,
               device: str = "auto") -> np.ndarray:
    """``n`` images decoded from latent samples ``z ~ N(0, I)`` of a trained (plain) VAE.

    The generator's own idea of a normal slice: S0's VAE is trained on normal slices only, so
    its prior samples form a synthetic normal database.  Returns ``(n, C, H, W)`` float32 in
    the dataset's normalised units; the latent stream is seeded (same ``seed``, same images).
    """
    import torch

    from .train import load_for_inference

    if int(n) < 1:
        raise EvaluationError(f"number of samples must be positive, got {n}", experiment=experiment)
    setup = _device(device, experiment)
    nets, spec = load_for_inference(best_pt, device=setup.device, experiment=experiment)
    if spec.get("model") != "vae":
        raise EvaluationError(f"sampling a normal database needs a plain VAE, {best_pt} holds a "
                              f"{spec.get('model')!r}", experiment=experiment,
                              hint="Only S0 experiments with model vae are trained on normal slices only")
    vae = nets["vae"]
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    with torch.inference_mode():
        for a, b in _batches(int(n), int(batch_size)):
            z = torch.randn(b - a, vae.latent_dim, generator=gen).to(setup.device)
            out.append(vae.decoder(z).float().cpu().numpy())
    images = np.concatenate(out, 0).astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise EvaluationError("the VAE decoded NaN or Inf pixels", experiment=experiment,
                              hint="The trained weights are broken; retrain the experiment")
    return images


def stack_volumes(h5_path: str | Path, tsv_path: str | Path, out_dir: str | Path, *,
                  experiment: str, train_index: str | Path) -> pd.DataFrame:
    """Stack a paired experiment's predicted slices back onto each test subject's grid.

    For every test subject, a NIfTI volume with the shape and affine of the slices' source
    volume (so a viewer overlays it on that subject's images) holding the predictions at
    their axial positions, 0 elsewhere, in the target's units as a user can compute them at
    prediction time: the normalisation undone with the *input* slice's constants and the
    lines fitted on the training split of ``train_index`` (the dataset's ``index.tsv``;
    :class:`spectsynth.calibration.ScaleCalibration`), never with the test target's own
    constants; the resize and padding inverted.  Written as
    ``sub-<label>_desc-<experiment>_pred.nii.gz`` (``_run-<n>`` added when a subject has
    several records, e.g. S0's degradations of one scan) plus a table ``volumes.tsv``
    (subject, record, file, source, slices, calibration) in ``out_dir``.
    """
    import nibabel as nib

    from .calibration import fit_scale_calibration

    arrays, table, attrs = load_predictions(h5_path, tsv_path, experiment=experiment)
    if "target" not in arrays:
        raise EvaluationError("generated images have no subject grid to stack onto", experiment=experiment,
                              hint="Only paired experiments (pix2pix, VAE) are stacked into volumes")
    spec = json.loads(attrs.get("spec", "{}"))
    target = (spec.get("target_channels") or [""])[0]
    source = (spec.get("input_channels") or [""])[0]
    gain_col, bias_col = f"gain_{source}", f"bias_{source}"
    for col in (gain_col, bias_col, "source", "slice_index", "subject"):
        if col not in table.columns:
            raise EvaluationError(f"the prediction table lacks column {col!r}", experiment=experiment,
                                  hint="Rebuild the dataset and rerun predict_experiment")
    cal = fit_scale_calibration(read_index(train_index, split="train", experiment=experiment), source, target,
                                experiment=experiment)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    keys = ["subject", "record"] if "record" in table.columns else ["subject"]
    n_records = table.groupby("subject")[keys[-1]].nunique()
    for key, sub in table.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        subject = str(key[0])
        run = f"_run-{int(key[1]) + 1}" if len(key) > 1 and n_records[key[0]] > 1 else ""
        shape, affine, path = _source_grid(str(sub["source"].iat[0]), experiment=experiment, subject=subject)
        vol = np.zeros(shape, dtype=np.float32)
        for i, row in sub.iterrows():
            z = int(row["slice_index"])
            if not 0 <= z < shape[2]:
                raise EvaluationError(f"slice index {z} lies outside the source grid {shape}",
                                      experiment=experiment, subject=subject, hint="Rebuild the dataset")
            if float(row[gain_col]) == 0:
                continue  # an input slice without signal was stored as a constant; nothing to undo
            scale, offset = cal.constants([row[gain_col]], [row[bias_col]], experiment=experiment)
            # x = x_norm * scale + offset is the normalisation with gain 1/scale, bias -offset/scale
            vol[:, :, z] = slice_to_grid(arrays["prediction"][i, 0], 1.0 / float(scale[0]),
                                         -float(offset[0]) / float(scale[0]), shape[:2])
        name = f"sub-{subject}{run}_desc-{experiment.replace('_', '')}_pred.nii.gz"
        nifti = nib.Nifti1Image(vol, affine)
        nifti.set_qform(affine, code=1)
        nifti.set_sform(affine, code=1)
        save_image(nifti, out_dir / name, subject=subject)
        extra = {c: sub[c].iat[0] for c in ("record", "desc") if c in sub.columns}
        rows.append({"experiment": experiment, "subject": subject, **extra, "file": name, "source": path,
                     "slices": " ".join(str(int(z)) for z in sorted(sub["slice_index"])),
                     "calibration": cal.describe()})
    result = pd.DataFrame(rows)
    result.to_csv(out_dir / "volumes.tsv", sep="\t", index=False)
    return result
