"""Brain extraction: deepbet (default) or FSL BET.

deepbet (MIT licence) is a pair of small 3-D U-Nets whose weights pip installs into a generic
``site-packages/data/models/`` folder rather than inside the package; :func:`deepbet_weights`
finds them there (and nowhere on the network).  It runs on CUDA when present, else on the CPU
(about 2 s per T1w on two cores at deepbet's own 256^3 working grid, about 1 s at the
default 192^3, which gave the same masks on the real IXI T1s: Dice 0.981 against 0.981).
FSL BET is used through fslpy when ``FSLDIR`` is set; choosing it without FSL stops with a
:class:`~spectsynth.errors.ConfigError`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import site
import sysconfig
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..config import declared, fragment_defaults
from ..errors import ConfigError, ProcessingError, SpectsynthError
from .register import Grid, fsl_tool, image_on_grid

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = tuple(declared(Path(__file__).with_name("options.yaml"), "preprocess.brain_extraction.backend")["enum"])
DEEPBET_FILES = ("model.pt", "bbox_model.pt")


# The declared options (options.yaml); the fields take their defaults from them.
_DECLARED = fragment_defaults(Path(__file__).with_name("options.yaml"), "preprocess")["brain_extraction"]


@dataclass
class BrainSettings:
    """Settings of the brain extraction (the config's ``preprocess.brain_extraction``)."""

    backend: str = _DECLARED["backend"]
    threshold: float = _DECLARED["threshold"]
    dilate_voxels: int = _DECLARED["dilate_voxels"]
    fsl_frac: float = _DECLARED["fsl_frac"]
    fsl_robust: bool = _DECLARED["fsl_robust"]
    min_volume_ml: float = _DECLARED["min_volume_ml"]
    max_volume_ml: float = _DECLARED["max_volume_ml"]
    device: str = _DECLARED["device"]
    threads: int = 0
    deepbet_shape: int = _DECLARED["deepbet_shape"]

    @classmethod
    def from_config(cls, cfg: dict | None) -> BrainSettings:
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"preprocess.brain_extraction: unknown keys {sorted(unknown)}; "
                              f"known: {sorted(cls.__dataclass_fields__)}")
        out = cls(**cfg)
        if out.backend not in BACKENDS:
            raise ConfigError(f"preprocess.brain_extraction.backend: {out.backend!r} is not one of "
                              f"{BACKENDS}")
        if out.device not in ("auto", "cpu", "cuda"):
            raise ConfigError("preprocess.brain_extraction.device must be auto, cpu or cuda")
        if out.deepbet_shape % 32 or not 128 <= out.deepbet_shape <= 320:
            raise ConfigError(f"preprocess.brain_extraction.deepbet_shape: {out.deepbet_shape} is not a "
                              "multiple of 32 between 128 and 320 (the network halves it five times)")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def _candidate_model_dirs() -> list[Path]:
    dirs: list[Path] = []
    spec = importlib.util.find_spec("deepbet")
    if spec is not None and spec.submodule_search_locations:
        # deepbet's own lookup: <site-packages>/data/models next to the package folder
        dirs.append(Path(list(spec.submodule_search_locations)[0]).resolve().parent / "data" / "models")
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib"):
        if key in paths:
            dirs.append(Path(paths[key]) / "data" / "models")
    for key in ("data",):
        if key in paths:
            dirs.append(Path(paths[key]) / "data" / "models")
    try:
        for p in site.getsitepackages() + [site.getusersitepackages()]:
            dirs.append(Path(p) / "data" / "models")
    except AttributeError:  # pragma: no cover - virtualenv without site.getsitepackages
        pass
    seen, out = set(), []
    for d in dirs:
        if str(d) not in seen:
            seen.add(str(d))
            out.append(d)
    return out


def deepbet_weights() -> tuple[Path, Path]:
    """Paths of deepbet's ``model.pt`` and ``bbox_model.pt``.

    Raises a :class:`SpectsynthError` listing where it looked when they are missing.
    """
    if importlib.util.find_spec("deepbet") is None:
        raise SpectsynthError("the deepbet package is not installed; install the project's "
                              "requirements (pip install deepbet==1.0.2) or choose the fsl backend")
    dirs = _candidate_model_dirs()
    for d in dirs:
        if all((d / f).is_file() for f in DEEPBET_FILES):
            return d / DEEPBET_FILES[0], d / DEEPBET_FILES[1]
    raise SpectsynthError(
        f"deepbet's network weights ({', '.join(DEEPBET_FILES)}) were not found; looked in: "
        + ", ".join(str(d) for d in dirs)
        + ". pip installs them into <site-packages>/data/models/; reinstall with "
          "`pip install --force-reinstall --no-deps deepbet==1.0.2`")


def _torch_device(device: str):
    import torch

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("preprocess.brain_extraction.device is cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


_MODEL_CACHE: dict[tuple[str, str], object] = {}


def _deepbet_model(device: str):
    import torch
    from deepbet import BrainExtraction

    dev = _torch_device(device)
    key = (str(dev), device)
    if key not in _MODEL_CACHE:
        model, bbox = deepbet_weights()
        bet = BrainExtraction.__new__(BrainExtraction)
        bet.model = torch.jit.load(str(model), map_location=dev).eval()
        bet.bbox_model = torch.jit.load(str(bbox), map_location=dev).eval()
        bet.bbox = None
        _MODEL_CACHE[key] = bet
    return _MODEL_CACHE[key]


def _deepbet_mask(img: nib.Nifti1Image, settings: BrainSettings) -> np.ndarray:
    import torch

    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    bet = _deepbet_model(settings.device)
    canonical = nib.as_closest_canonical(img)
    x = np.asanyarray(canonical.dataobj).astype(np.float32)
    with torch.no_grad():
        prob = bet.run_model(x.copy(), shape=(int(settings.deepbet_shape),) * 3)
    mask = prob > float(settings.threshold)
    if not mask.any():
        return np.zeros(img.shape[:3], dtype=bool)
    mask = bet.postprocess(mask, int(settings.dilate_voxels))
    # back to the input's own voxel order (a no-op for RAS inputs)
    ornt = nib.orientations.ornt_transform(nib.io_orientation(canonical.affine),
                                           nib.io_orientation(img.affine))
    return nib.orientations.apply_orientation(mask, ornt).astype(bool)


@contextmanager
def _fsl_output_type():
    old = os.environ.get("FSLOUTPUTTYPE")
    os.environ["FSLOUTPUTTYPE"] = "NIFTI_GZ"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FSLOUTPUTTYPE", None)
        else:
            os.environ["FSLOUTPUTTYPE"] = old


def _fsl_mask(img: nib.Nifti1Image, settings: BrainSettings, subject: str | None) -> np.ndarray:
    fsl_tool("bet", "brain extraction with the fsl backend")
    try:
        from fsl.wrappers import bet as fsl_bet
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the fsl brain-extraction backend needs the Python package fslpy "
                          "(pip install fslpy)") from exc
    with tempfile.TemporaryDirectory(prefix="spectsynth-bet-") as tmp, _fsl_output_type():
        src, out = Path(tmp, "t1w.nii.gz"), Path(tmp, "brain.nii.gz")
        nib.save(img, src)
        try:
            fsl_bet(str(src), str(out), mask=True, fracintensity=float(settings.fsl_frac),
                    robust=bool(settings.fsl_robust))
        except Exception as exc:  # fslpy raises several types for a failed command
            raise ProcessingError(f"FSL BET failed: {exc}", subject=subject,
                                  hint="Run `bet` by hand on this image to see why") from exc
        mask_file = Path(tmp, "brain_mask.nii.gz")
        if not mask_file.exists():
            raise ProcessingError("FSL BET wrote no brain_mask.nii.gz", subject=subject,
                                  hint="Check the FSL installation (FSLOUTPUTTYPE, bet version)")
        m = nib.load(str(mask_file))
        data = np.asanyarray(m.dataobj) > 0
        if data.shape != img.shape[:3]:
            raise ProcessingError(f"FSL BET returned a mask of shape {data.shape} for an image of "
                                  f"shape {img.shape[:3]}", subject=subject)
    return data


def extract_brain(img: nib.Nifti1Image, *, settings: BrainSettings | dict | None = None,
                  subject: str | None = None) -> tuple[nib.Nifti1Image, nib.Nifti1Image, dict]:
    """Brain-extract a T1w image.

    Returns ``(brain, mask, info)``: the T1w with zeros outside the brain (float32), the
    binary mask (uint8), both on the input grid, and a dict with the backend, the brain
    volume in mL and the run time.  A mask whose volume is outside
    ``[min_volume_ml, max_volume_ml]`` raises :class:`ProcessingError`.
    """
    if not isinstance(settings, BrainSettings):
        settings = BrainSettings.from_config(settings)
    t0 = time.perf_counter()
    if settings.backend == "deepbet":
        mask = _deepbet_mask(img, settings)
    else:
        mask = _fsl_mask(img, settings, subject)
    seconds = time.perf_counter() - t0
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    volume = float(mask.sum()) * voxel_ml
    if not settings.min_volume_ml <= volume <= settings.max_volume_ml:
        raise ProcessingError(
            f"brain extraction ({settings.backend}) gave a brain of {volume:.0f} mL, outside the "
            f"plausible range {settings.min_volume_ml:.0f}-{settings.max_volume_ml:.0f} mL",
            subject=subject,
            hint="Check the T1w (is it a head MRI? wrong voxel size in the header?); adjust "
                 "preprocess.brain_extraction.min_volume_ml/max_volume_ml for unusual cohorts")
    grid = Grid.of(img)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    brain = image_on_grid(np.where(mask, data, 0).astype(np.float32), grid)
    mask_img = image_on_grid(mask.astype(np.uint8), grid)
    info = {"backend": settings.backend, "brain_volume_ml": round(volume, 1),
            "seconds": round(seconds, 3)}
    log.info("subject %s: brain extraction (%s) %.0f mL in %.1f s", subject, settings.backend, volume,
             seconds)
    return brain, mask_img, info
