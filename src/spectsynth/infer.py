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

This module holds the file handling (index, prediction files, volumes on the subjects' grids);
the predictions themselves are the model family's (``predict`` of its
:class:`~spectsynth.models.registry.Family`: :mod:`spectsynth.models.paired` for the paired
families, :mod:`spectsynth.models.fastgan.infer`).  Nothing here trains: the networks come from
:func:`spectsynth.models.inference.load_for_inference`.  The device is chosen at call time
(``auto``: CUDA when available, else CPU).
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

from .artifacts import VOLUMES_TABLE
from .errors import ConfigError, EvaluationError
from .io import atomic_output, save_image, write_table
from .paths import bids_label, bids_name

log = logging.getLogger(__name__)

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


def predict_experiment(best_pt: str | Path, test_shard: str | Path, index_tsv: str | Path,
                       out_h5: str | Path, out_tsv: str | Path, *, experiment: str,
                       batch_size: int = 64, device: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Predict the test split of one trained experiment and write ``out_h5`` + ``out_tsv``.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.  Returns the
    prediction table.  The HDF5 attributes record the experiment, model, data range of the
    normalised slices, the device and the checkpoint's selected epoch.
    """
    from .models import get_family
    from .models.inference import inference_device, load_for_inference

    if int(batch_size) < 1:
        raise EvaluationError(f"batch size must be positive, got {batch_size}", experiment=experiment)
    setup = inference_device(device, experiment)
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
    try:
        family = get_family(model)
    except ConfigError:
        raise EvaluationError(f"no inference for model {model!r}", experiment=experiment) from None
    arrays, table = family.predict()(nets, spec, test_shard, index, batch_size=int(batch_size),
                                     device=setup.device, seed=seed)
    wall = time.perf_counter() - t0
    log.info("experiment %s: %d predictions on %s in %.2f s", experiment, len(table),
             setup.describe(), wall)
    attrs = {"experiment": experiment, "study": spec["study"], "model": model,
             "dataset": spec["dataset"], "units": family.prediction_units,
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
    write_table(table, out_tsv, what=f"prediction table of {experiment or out_h5.name}", allow_missing=True)


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
    for key in ("input", "target", "brain"):
        if key in arrays and arrays[key].shape[0] != n:
            raise EvaluationError(f"{key} and prediction counts differ in {h5_path}", experiment=exp)
    return arrays, table, attrs


def source_grid(source: str, *, experiment: str, subject: str):
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
        run = str(int(key[1]) + 1) if len(key) > 1 and n_records[key[0]] > 1 else None
        shape, affine, path = source_grid(str(sub["source"].iat[0]), experiment=experiment, subject=subject)
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
        name = bids_name(subject=subject, run=run, desc=bids_label(experiment), suffix="pred")
        nifti = nib.Nifti1Image(vol, affine)
        nifti.set_qform(affine, code=1)
        nifti.set_sform(affine, code=1)
        save_image(nifti, out_dir / name, subject=subject)
        extra = {c: sub[c].iat[0] for c in ("record", "desc") if c in sub.columns}
        rows.append({"experiment": experiment, "subject": subject, **extra, "file": name, "source": path,
                     "slices": " ".join(str(int(z)) for z in sorted(sub["slice_index"])),
                     "calibration": cal.describe()})
    result = pd.DataFrame(rows)
    write_table(result, out_dir / VOLUMES_TABLE, what="predicted volumes", allow_missing=True)
    return result
