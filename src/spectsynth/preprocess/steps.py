"""File-level steps of the preprocessing stage (one function per workflow rule).

Each function reads its inputs with :func:`spectsynth.io.load_image`, calls the package, and
writes its outputs atomically.  The returned dict is also written as the step's QC JSON.

Spaces and grids (file names as the workflow writes them)
    * the input's own grid, RAS-reoriented (``desc-ras``): brain-extracted T1w and brain mask
      (``desc-rasbrain``);
    * S2's *native* grid (no ``space`` entity for the T1w and the anatomy, ``space-T1w`` for
      PET/SPECT): 256 x 256 x 192 voxels of 1 mm, RAS axes, centred on the brain, in the T1w's
      world space; the T1w by 3rd-order B-spline; PET/SPECT rigidly (6 dof) registered to the
      T1w and resampled once onto it;
    * ``space-MNI152``: the nilearn MNI152 2009a symmetric template grid (1 mm, or 2 mm with
      ``preprocess.template.resolution_mm: 2``); the T1w by its 12-dof affine, PET/SPECT by the
      composed transform (PET->T1w rigid and T1w->MNI152 affine applied as one).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..errors import ConfigError, ProcessingError
from ..io import load_image, save_image, write_json
from .brain import BrainSettings, extract_brain
from .register import (
    Grid,
    RegistrationSettings,
    check_overlap,
    crop_to_mask,
    downsample,
    image_on_grid,
    load_transform,
    mask_overlap,
    native_grid,
    register,
    register_flirt,
    resample,
    resample_mask,
    resolution_grid,
    save_transform_pair,
    template_image,
    to_sitk,
)

log = logging.getLogger(__name__)

MODALITIES = ("pet", "spect")


def _section(config: dict | None, key: str) -> dict:
    config = config or {}
    value = config.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"preprocess.{key} must be a mapping, not {type(value).__name__}")
    return value


def template_grid(resolution_mm: float = 1.0) -> Grid:
    """The template-space output grid (1 mm native template grid, or the same extent at 2 mm)."""
    if resolution_mm not in (1, 1.0, 2, 2.0):
        raise ConfigError(f"preprocess.template.resolution_mm must be 1 or 2, not {resolution_mm}")
    return resolution_grid(Grid.of(template_image()), float(resolution_mm))


def _masked(img: nib.Nifti1Image, mask: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asanyarray(img.dataobj).astype(np.float32)
    m = np.asanyarray(mask.dataobj) > 0
    return image_on_grid(np.where(m, data, 0).astype(np.float32), Grid.of(img))


# --------------------------------------------------------------------------------------------
def run_extract_brain(t1_path: str | Path, brain_path: str | Path, mask_path: str | Path,
                      qc_path: str | Path | None = None, *, subject: str | None = None,
                      config: dict | None = None) -> dict:
    """Brain-extract the RAS T1w of one subject; write the brain T1w and the mask."""
    settings = BrainSettings.from_config(_section(config, "brain_extraction"))
    t1 = load_image(t1_path, subject=subject)
    brain, mask, info = extract_brain(t1, settings=settings, subject=subject)
    save_image(brain, brain_path)
    save_image(mask, mask_path)
    info["subject"] = subject
    if qc_path is not None:
        write_json(info, qc_path)
    return info


# --------------------------------------------------------------------------------------------
def register_to_template(t1_brain: nib.Nifti1Image, mask: nib.Nifti1Image, *, subject: str | None = None,
                         config: dict | None = None) -> tuple[sitk.Transform, dict]:
    """12-dof affine of the brain-extracted T1w to the MNI152 template, with its quality check.

    Returns the transform (MNI152 points -> T1w points) and the QC numbers.  Raises
    :class:`ProcessingError` when the brain-mask Dice with the template mask is below
    ``registration.min_mask_dice`` or the optimiser did not converge.
    """
    settings = RegistrationSettings.from_config(_section(config, "registration"))
    tmpl = template_image()
    fixed = to_sitk(tmpl)
    moving_img = crop_to_mask(t1_brain, mask)
    if settings.backend == "fsl":
        fixed_2mm = downsample(fixed, settings.resolution_mm or 2.0)
        from .register import from_sitk

        result = register_flirt(from_sitk(fixed_2mm), moving_img, dof=12, subject=subject,
                                what="affine registration to MNI152")
    else:
        result = register(fixed, to_sitk(moving_img), dof=12, settings=settings, subject=subject,
                          what="affine registration to MNI152")
    tmpl_mask = downsample(to_sitk(image_on_grid((np.asanyarray(tmpl.dataobj) > 0).astype(np.float32),
                                                 Grid.of(tmpl))), 2.0) > 0.5
    dice = mask_overlap(tmpl_mask, to_sitk(mask, np.uint8), result.transform)
    qc = {"subject": subject, "step": "T1w->MNI152", "dof": 12, "mask_dice": round(dice, 4),
          **result.summary()}
    check_overlap(dice, settings.min_mask_dice, subject=subject, what="affine registration to MNI152")
    return result.transform, qc


def run_register_template(t1_path: str | Path, brain_path: str | Path, mask_path: str | Path,
                          outputs: dict[str, str | Path], *, subject: str | None = None,
                          config: dict | None = None) -> dict:
    """T1w -> MNI152 affine; writes the transforms and the T1w, brain and mask in template space.

    ``outputs`` keys: ``xfm`` (from-T1w_to-MNI152), ``xfm_inverse``, ``t1w``, ``brain``, ``mask``,
    ``qc``.
    """
    t0 = time.perf_counter()
    t1 = load_image(t1_path, subject=subject)
    brain = load_image(brain_path, subject=subject, check_values=False)
    mask = load_image(mask_path, subject=subject, check_values=False)
    tx, qc = register_to_template(brain, mask, subject=subject, config=config)
    save_transform_pair(tx, outputs["xfm"], outputs["xfm_inverse"])
    grid = template_grid(float(_section(config, "template").get("resolution_mm", 1.0)))
    head = resample(t1, grid, [tx], interpolation="bspline")
    mask_t = resample_mask(mask, grid, [tx])
    save_image(head, outputs["t1w"])
    save_image(_masked(head, mask_t), outputs["brain"])
    save_image(mask_t, outputs["mask"])
    qc["seconds_total"] = round(time.perf_counter() - t0, 2)
    write_json(qc, outputs["qc"])
    return qc


# --------------------------------------------------------------------------------------------
def native_space(t1: nib.Nifti1Image, mask: nib.Nifti1Image, *, config: dict | None = None
                 ) -> tuple[Grid, nib.Nifti1Image, nib.Nifti1Image]:
    """S2's native grid and the T1w (3rd-order B-spline) and brain mask resampled onto it."""
    native = _section(config, "native")
    grid = native_grid(mask, shape=tuple(native.get("shape", (256, 256, 192))),
                       spacing=float(native.get("spacing_mm", 1.0)))
    head = resample(t1, grid, [], interpolation="bspline")
    mask_n = resample_mask(mask, grid, [])
    return grid, head, mask_n


def run_register_native(t1_path: str | Path, mask_path: str | Path, outputs: dict[str, str | Path], *,
                        subject: str | None = None, config: dict | None = None) -> dict:
    """Resample the T1w and its brain mask onto the native grid.

    ``outputs`` keys: ``t1w``, ``brain``, ``mask``.
    """
    t1 = load_image(t1_path, subject=subject)
    mask = load_image(mask_path, subject=subject, check_values=False)
    grid, head, mask_n = native_space(t1, mask, config=config)
    save_image(head, outputs["t1w"])
    save_image(_masked(head, mask_n), outputs["brain"])
    save_image(mask_n, outputs["mask"])
    lost = float((np.asanyarray(mask.dataobj) > 0).sum() * np.prod(mask.header.get_zooms()[:3])
                 - (np.asanyarray(mask_n.dataobj) > 0).sum() * np.prod(grid.spacing))
    return {"subject": subject, "grid_shape": list(grid.shape), "grid_spacing_mm": list(grid.spacing),
            "brain_volume_change_ml": round(lost / 1000.0, 2)}


# --------------------------------------------------------------------------------------------
def signal_in_mask(image: nib.Nifti1Image, mask: nib.Nifti1Image) -> float:
    """Fraction of an emission image's above-background signal inside a (dilated) brain mask.

    Both images on the same grid.  Background = the 20th percentile of the positive voxels.
    """
    from scipy import ndimage as ndi

    data = np.asanyarray(image.dataobj).astype(np.float64)
    pos = data[data > 0]
    if pos.size == 0:
        return 0.0
    signal = np.clip(data - np.percentile(pos, 20), 0, None)
    m = ndi.binary_dilation(np.asanyarray(mask.dataobj) > 0, iterations=3)
    total = signal.sum()
    return float(signal[m].sum() / total) if total > 0 else 0.0


def register_modality(image: nib.Nifti1Image, t1_brain: nib.Nifti1Image, mask: nib.Nifti1Image, *,
                      modality: str, subject: str | None = None, config: dict | None = None,
                      scan: str | None = None) -> tuple[sitk.Transform, dict]:
    """Rigid (6 dof) registration of a PET or SPECT image to the brain-extracted T1w.

    Returns the transform (T1w points -> PET/SPECT points) and QC numbers.  The quality check is
    the fraction of the emission signal that lands inside the (dilated) brain mask, which must
    reach ``registration.min_signal_in_brain``.  ``scan`` names the scan when a subject has
    several of one modality (e.g. "pet_trc-FDG"; the QC step and the messages carry it).
    """
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; choose one of {MODALITIES}")
    reg_cfg = dict(_section(config, "registration"))
    min_signal = float(_section(config, "modality").get("min_signal_in_brain", 0.6))
    settings = RegistrationSettings.from_config(reg_cfg)
    fixed_img = crop_to_mask(t1_brain, mask)
    name = scan or modality.upper()
    what = f"rigid registration of the {name} to the T1w"
    if settings.backend == "fsl":
        result = register_flirt(fixed_img, image, dof=6, subject=subject, what=what)
    else:
        result = register(to_sitk(fixed_img), to_sitk(image), dof=6, settings=settings, subject=subject,
                          what=what)
    on_t1 = resample(image, Grid.of(mask), [result.transform], interpolation="linear")
    frac = signal_in_mask(on_t1, mask)
    qc = {"subject": subject, "step": f"{scan or modality}->T1w", "dof": 6, "signal_in_brain": round(frac, 4),
          **result.summary()}
    if frac < min_signal:
        raise ProcessingError(
            f"{what} landed badly: only "
            f"{frac:.3f} of its signal falls inside the brain mask (threshold {min_signal:.3f})",
            subject=subject,
            hint=f"Check the {modality.upper()} orientation and that it shows the same head as the "
                 "T1w; lower preprocess.modality.min_signal_in_brain only after checking by eye")
    return result.transform, qc


def run_register_modality(image_path: str | Path, t1_brain_path: str | Path, mask_path: str | Path,
                          native_ref_path: str | Path, template_xfm_path: str | Path,
                          outputs: dict[str, str | Path], *, modality: str, subject: str | None = None,
                          config: dict | None = None, scan: str | None = None) -> dict:
    """PET/SPECT: rigid to the T1w, then one resampling each onto the native and template grids.

    ``outputs`` keys: ``xfm`` (from-<modality>_to-T1w), ``xfm_inverse``, ``native``, ``template``,
    ``qc``.  ``native_ref_path`` is any image on the native grid (e.g. the native T1w);
    ``template_xfm_path`` the from-T1w_to-MNI152 transform; ``scan`` as in :func:`register_modality`.
    """
    t0 = time.perf_counter()
    image = load_image(image_path, subject=subject)
    brain = load_image(t1_brain_path, subject=subject, check_values=False)
    mask = load_image(mask_path, subject=subject, check_values=False)
    rigid, qc = register_modality(image, brain, mask, modality=modality, subject=subject, config=config,
                                  scan=scan)
    save_transform_pair(rigid, outputs["xfm"], outputs["xfm_inverse"])
    native_ref = nib.load(str(native_ref_path))
    save_image(resample(image, Grid.of(native_ref), [rigid], interpolation="bspline"), outputs["native"])
    to_mni = load_transform(template_xfm_path)
    grid = template_grid(float(_section(config, "template").get("resolution_mm", 1.0)))
    # one interpolation: template point -> T1w point -> PET point
    save_image(resample(image, grid, [to_mni, rigid], interpolation="bspline"), outputs["template"])
    qc["seconds_total"] = round(time.perf_counter() - t0, 2)
    write_json(qc, outputs["qc"])
    return qc


# --------------------------------------------------------------------------------------------
def run_extract_scan_brain(images: dict[str, str | Path], outputs: dict[str, str | Path], *,
                           modality: str, subject: str | None = None, config: dict | None = None) -> dict:
    """Brain-extract one registered PET/SPECT on each grid by the modality's own method.

    ``images`` keys: ``native`` and ``template`` (register_modality's outputs); ``outputs`` keys:
    ``<grid>_brain`` (the scan with zeros outside the brain), ``<grid>_mask`` and ``qc`` (one JSON:
    the settings and, per grid, the threshold and the volume).  See :mod:`.scan_brain`.
    """
    from .scan_brain import ScanBrainSettings, extract_scan_brain

    settings = ScanBrainSettings.from_config(_section(config, "scan_brain_extraction"))
    qc: dict = {"subject": subject, "modality": modality, "settings": settings.as_dict()}
    for grid_name, path in images.items():
        img = load_image(path, subject=subject, check_values=False)
        data = np.asanyarray(img.dataobj).astype(np.float32)
        mask, record = extract_scan_brain(data, img.header.get_zooms()[:3], modality, settings=settings,
                                          subject=subject, path=path)
        grid = Grid.of(img)
        save_image(image_on_grid(np.where(mask, data, 0).astype(np.float32), grid),
                   outputs[f"{grid_name}_brain"], subject=subject)
        save_image(image_on_grid(mask.astype(np.uint8), grid), outputs[f"{grid_name}_mask"], subject=subject)
        qc[grid_name] = record
        log.info("subject %s: %s brain extraction on the %s grid (%s): threshold %s, %.0f mL", subject,
                 modality, grid_name, record["method"], record.get("threshold"), record["volume_ml"])
    write_json(qc, outputs["qc"])
    return qc


# --------------------------------------------------------------------------------------------
def run_plot_qc(*, t1_path: str | Path, mask_path: str | Path, t1_template_path: str | Path,
                t1_native_path: str | Path, striatum_path: str | Path, territories_path: str | Path,
                reference_path: str | Path, levels_path: str | Path | None,
                outputs: dict[str, str | Path], subject: str) -> None:
    """The three QC figures of one subject.

    ``outputs`` keys: ``outline`` (template outline over the registered T1w), ``labels`` (label
    overlays in native space), ``mask`` (brain-mask overlay on the input T1w).
    """
    import pandas as pd

    from .qc import plot_brain_mask, plot_labels, plot_template_outline

    plot_template_outline(nib.load(str(t1_template_path)), outputs["outline"], subject=subject)
    levels = pd.read_csv(levels_path, sep="\t") if levels_path else None
    plot_labels(nib.load(str(t1_native_path)), nib.load(str(striatum_path)), nib.load(str(territories_path)),
                nib.load(str(reference_path)), outputs["labels"], subject=subject, levels=levels)
    plot_brain_mask(load_image(t1_path, subject=subject), nib.load(str(mask_path)), outputs["mask"],
                    subject=subject)
