"""Brain extraction of the registered PET (BET-like) and SPECT (histogram threshold), as S2 did,
on small synthetic heads: a brain ellipsoid with a brighter core, a thin scalp shell with moderate
uptake (PET), a broad scatter halo and Poisson noise (SPECT)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from spectsynth.errors import ConfigError, InputDataError
from spectsynth.preprocess.scan_brain import (
    ScanBrainSettings,
    close_mm,
    dilate_mm,
    erode_mm,
    extract_pet_brain,
    extract_spect_brain,
)

VOXEL = (2.0, 2.0, 2.0)
SHAPE = (96, 110, 90)
RADII_MM = (65.0, 80.0, 55.0)    # a brain of about 1.2 L


def _head(seed: int = 0):
    """The brain (0.6, core 1.0) as a mask and image, and each voxel's distance (mm) outside it."""
    c = (np.array(SHAPE) - 1) / 2
    idx = np.indices(SHAPE).astype(np.float32)
    r = np.sqrt(sum(((idx[i] - c[i]) * VOXEL[i] / a) ** 2 for i, a in enumerate(RADII_MM)))
    brain = r <= 1.0
    img = np.where(brain, 0.6, 0.0).astype(np.float32)
    img[r <= 0.7] = 1.0
    outside_mm = ndimage.distance_transform_edt(~brain, sampling=VOXEL)
    return brain, img, outside_mm, np.random.default_rng(seed)


def pet_head(scalp: float = 0.5, seed: int = 0):
    brain, img, d, rng = _head(seed)
    shell = (d >= 8) & (d <= 13)       # scalp 8-13 mm outside the brain (skull + CSF between)
    img[shell] = scalp
    img = ndimage.gaussian_filter(img, 3.0 / VOXEL[0])            # about 7 mm FWHM
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)      # noise everywhere
    return img, brain, shell


def spect_head(halo: float = 0.3, seed: int = 0):
    brain, img, d, rng = _head(seed)
    img += (halo * np.exp(-(d / 25.0) ** 2) * ~brain).astype(np.float32)   # scatter/penetration
    img = ndimage.gaussian_filter(img, 5.0 / VOXEL[0])
    counts = rng.poisson(np.clip(img, 0, None) * 50) / 50.0                # Poisson-like noise
    return counts.astype(np.float32), brain, (d > 5) & (d < 60)


def _shares(mask, brain, other):
    return (mask & brain).sum() / brain.sum(), (mask & other).sum() / other.sum()


@pytest.mark.parametrize("scalp", [0.3, 0.5, 0.7])
def test_pet_extraction_drops_the_scalp_and_keeps_the_brain(scalp):
    img, brain, shell = pet_head(scalp)
    mask, rec = extract_pet_brain(img, VOXEL, subject="01")
    kept, scalp_kept = _shares(mask, brain, shell)
    assert mask.dtype == bool and mask.shape == img.shape
    assert kept >= 0.95, kept
    assert scalp_kept < 0.02, scalp_kept
    # the threshold is the configured fraction of the robust maximum, and both are recorded
    assert rec["method"] == "threshold"
    assert rec["threshold"] == pytest.approx(0.3 * rec["reference"], rel=1e-4)
    assert rec["volume_ml"] == pytest.approx(mask.sum() * 8 / 1000, abs=0.1)


def test_thresholded_scalp_is_there_to_drop():
    """Without the opening and the component choice the scalp would be in the mask: the test
    above checks the extraction, not a phantom whose scalp never passes the threshold."""
    img, brain, shell = pet_head(0.7)
    smooth = ndimage.gaussian_filter(img, 1.0)
    assert (smooth > 0.3 * np.percentile(smooth[img != 0], 99))[shell].mean() > 0.5


def test_spect_threshold_keeps_the_brain_and_drops_the_halo():
    img, brain, halo = spect_head()
    mask, rec = extract_spect_brain(img, VOXEL, subject="01")
    kept, halo_kept = _shares(mask, brain, halo)
    assert kept >= 0.95, kept
    assert halo_kept < 0.1, halo_kept
    assert rec["method"] == "otsu" and 0 < rec["threshold"] < rec["reference"]
    # a fixed fraction of the robust maximum does likewise
    mask_f, rec_f = extract_spect_brain(img, VOXEL, settings={"spect_method": "fraction"})
    assert rec_f["method"] == "fraction"
    assert _shares(mask_f, brain, halo)[0] >= 0.95 and _shares(mask_f, brain, halo)[1] < 0.15


def test_pet_and_spect_outlines_differ_by_method():
    """Each modality keeps its own outline: not the same mask, both near the true brain."""
    pet, brain, _ = pet_head()
    spect, _, _ = spect_head()
    m_pet, _ = extract_pet_brain(pet, VOXEL)
    m_spect, _ = extract_spect_brain(spect, VOXEL)
    assert (m_pet != m_spect).any()
    for m in (m_pet, m_spect):
        dice = 2 * (m & brain).sum() / (m.sum() + brain.sum())
        assert dice > 0.9, dice


@pytest.mark.parametrize("extract", [extract_pet_brain, extract_spect_brain])
def test_empty_image_names_subject_file_and_what_to_check(extract):
    with pytest.raises(InputDataError) as err:
        extract(np.zeros((20, 20, 20), np.float32), VOXEL, subject="07", path="sub-07_space-T1w_pet.nii.gz")
    msg = str(err.value)
    assert "subject 07" in msg and "sub-07_space-T1w_pet.nii.gz" in msg and "empty" in msg
    assert "Check" in msg and "registration" in msg


def test_implausible_volume_is_refused():
    img, _, _ = pet_head()
    with pytest.raises(InputDataError, match=r"too small .*500-2500 mL.*scan_brain_extraction"):
        extract_pet_brain(img[:30, :30, :30], VOXEL, subject="01", path="x.nii.gz")   # a 216 mL corner


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="unknown keys"):
        ScanBrainSettings.from_config({"frac": 0.3})
    with pytest.raises(ConfigError, match="spect_method"):
        ScanBrainSettings.from_config({"spect_method": "mean"})
    with pytest.raises(ConfigError, match="pet_fraction"):
        ScanBrainSettings.from_config({"pet_fraction": 1.5})


def test_morphology_in_mm_is_the_same_on_any_grid():
    ball = np.zeros((41, 41, 41), bool)
    ball[20, 20, 20] = True
    r1 = dilate_mm(ball, 10.0, (1.0, 1.0, 1.0)).sum()                     # 1 mm voxels
    r2 = dilate_mm(ball[::2, ::2, ::2], 10.0, (2.0, 2.0, 2.0)).sum() * 8  # 2 mm voxels
    assert r1 == pytest.approx(4 / 3 * np.pi * 1000, rel=0.05)
    assert r2 == pytest.approx(r1, rel=0.15)
    big = dilate_mm(ball, 10.0, (1.0,) * 3)
    assert (erode_mm(big, 10.0, (1.0,) * 3) == ball).all()
    assert close_mm(big, 3.0, (1.0,) * 3).sum() >= big.sum()


def test_run_extract_scan_brain_writes_brain_mask_and_qc(tmp_path):
    from spectsynth.preprocess.steps import run_extract_scan_brain

    affine = np.diag([*VOXEL, 1.0])
    img, brain, _ = spect_head()
    images, outputs = {}, {"qc": tmp_path / "qc.json"}
    for grid in ("native", "template"):
        images[grid] = tmp_path / f"{grid}.nii.gz"
        nib.save(nib.Nifti1Image(img, affine), images[grid])
        outputs |= {f"{grid}_brain": tmp_path / f"{grid}_brain.nii.gz", f"{grid}_mask": tmp_path / f"{grid}_mask.nii.gz"}
    qc = run_extract_scan_brain(images, outputs, modality="spect", subject="01", config={})
    written = nib.load(outputs["native_brain"]).get_fdata()
    mask = nib.load(outputs["native_mask"]).get_fdata() > 0
    assert (written[~mask] == 0).all() and np.allclose(written[mask], img[mask])
    assert json.loads(outputs["qc"].read_text())["template"]["volume_ml"] == qc["template"]["volume_ml"]
    assert qc["native"]["method"] == "otsu" and qc["settings"]["spect_method"] == "otsu"


def test_work_grid_gives_the_mask_of_the_scans_own_grid():
    """On a 1 mm grid the mask is made at 2 mm and brought back: it matches the 1 mm mask."""
    img, brain, _ = pet_head(0.5)
    fine = np.repeat(np.repeat(np.repeat(img[:, :, 15:45], 2, 0), 2, 1), 2, 2)   # 1 mm voxels
    slab = {"min_volume_ml": 100}  # a 60 mm slab of the head
    coarse_mask, rec = extract_pet_brain(fine, (1.0, 1.0, 1.0), settings=slab | {"work_voxel_mm": 2.0})
    own_mask, rec_own = extract_pet_brain(fine, (1.0, 1.0, 1.0), settings=slab | {"work_voxel_mm": 0.0})
    assert coarse_mask.shape == own_mask.shape == fine.shape
    dice = 2 * (coarse_mask & own_mask).sum() / (coarse_mask.sum() + own_mask.sum())
    assert dice > 0.97 and rec["volume_ml"] == pytest.approx(rec_own["volume_ml"], rel=0.03)
    spect = spect_head()[0][:, :, 15:45]
    s_mask, _ = extract_spect_brain(spect.repeat(2, 0).repeat(2, 1).repeat(2, 2), (1.0, 1.0, 1.0),
                                    settings={"min_volume_ml": 100})
    assert s_mask.shape == tuple(2 * n for n in spect.shape)
