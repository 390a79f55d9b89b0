"""Scanner frames of the simulated PET/SPECT: pose drawn and kept, FOV clipping reported, the pose
recovered by the pipeline's own rigid registration, the error table computed against the truth."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from spectsynth import scan_qc
from spectsynth.errors import ConfigError, ProcessingError
from spectsynth.preprocess.register import (
    Grid,
    downsample,
    from_sitk,
    image_on_grid,
    save_transform_pair,
    to_sitk,
)
from spectsynth.preprocess.steps import register_modality, template_image
from spectsynth.scan_qc import qc_summary, scan_error_table
from spectsynth.simulate import frames
from spectsynth.simulate.config import DEFAULTS, resolve

SPECT = {"rotation_deg": 10.0, "shift_mm": 15.0,
         "spect": [{"matrix": [64, 64, 40], "voxel_mm": [4.0, 4.0, 4.0]}],
         "pet": [{"matrix": [64, 64, 40], "voxel_mm": [4.0, 4.0, 4.0]}]}


@pytest.fixture(scope="module")
def t1w_4mm() -> nib.Nifti1Image:
    """The MNI152 brain at 4 mm as the 'T1w' (zero outside the brain)."""
    img = from_sitk(downsample(to_sitk(template_image()), 4.0))
    data = np.asanyarray(img.dataobj)
    return image_on_grid(np.where(data > 5, data, 0).astype(np.float32), Grid.of(img))


def _emission(t1w: nib.Nifti1Image) -> np.ndarray:
    """A perfusion-like image of the T1w: grey matter bright, white matter dimmer, smooth."""
    from scipy import ndimage

    t = np.asanyarray(t1w.dataobj).astype(np.float32)
    act = np.where(t > 0, 200.0 - np.abs(t - 90.0), 0.0).astype(np.float32)
    return ndimage.gaussian_filter(np.clip(act, 0, None), 1.2)


def _centre(img: nib.Nifti1Image) -> np.ndarray:
    idx = np.argwhere(np.asanyarray(img.dataobj) > 0)
    return nib.affines.apply_affine(img.affine, (idx.min(0) + idx.max(0)) / 2.0)


def test_pose_is_seeded_bounded_and_differs_between_scans():
    a = frames.draw_pose(1, "01", "fdg", (0, -18, 10), 10.0, 15.0)
    assert a == frames.draw_pose(1, "01", "fdg", (0, -18, 10), 10.0, 15.0)
    others = [frames.draw_pose(1, "01", "perfusion", (0, -18, 10), 10.0, 15.0),
              frames.draw_pose(1, "02", "fdg", (0, -18, 10), 10.0, 15.0),
              frames.draw_pose(2, "01", "fdg", (0, -18, 10), 10.0, 15.0)]
    assert all(o.rotation_deg != a.rotation_deg for o in others)
    draws = [frames.draw_pose(7, f"{i:02d}", "cbf_pet", (0, 0, 0), 10.0, 15.0) for i in range(40)]
    rot, shift = np.array([d.rotation_deg for d in draws]), np.array([d.shift_mm for d in draws])
    assert np.abs(rot).max() <= 10.0 and np.abs(rot).max() > 7.0
    assert np.abs(shift).max() <= 15.0 and np.abs(shift).max() > 10.0
    m = a.matrix  # rigid, and the head centre lands at the shift from the FOV centre
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.allclose(m @ [0, -18, 10, 1], [*a.shift_mm, 1])


def test_frames_config_defaults_and_checks():
    cfg = resolve({})
    assert cfg["frames"] == DEFAULTS["frames"]
    # S2's Table 1: three SPECT and two PET cameras
    assert [c["matrix"] for c in cfg["frames"]["spect"]] == [[128, 128, 83], [128, 128, 47], [128, 128, 44]]
    assert [c["voxel_mm"][0] for c in cfg["frames"]["spect"]] == [2.34, 3.89, 4.79] and len(cfg["frames"]["pet"]) == 2
    with pytest.raises(ConfigError, match=r"simulate\.frames\.spect\.0\.matrix.: value \[128, 128\] is not allowed: \[128, 128\] is too short"):
        resolve({"frames": {"spect": [{"matrix": [128, 128], "voxel_mm": [4, 4, 4]}]}})
    with pytest.raises(ConfigError, match=r"simulate\.frames\.spect.: value .* has the wrong type \(expected array\)"):
        resolve({"frames": {"spect": {"matrix": [128, 128, 47], "voxel_mm": [4, 4, 4]}}})
    with pytest.raises(ConfigError, match="moved_fraction"):
        resolve({"frames": {"motion": {"moved_fraction": [0.5, 0.2]}}})
    with pytest.raises(ConfigError, match="rotation_deg"):
        resolve({"frames": {"rotation_deg": 90}})


def test_scan_lies_in_its_own_frame_and_its_truth_maps_it_back(t1w_4mm, tmp_path):
    act = _emission(t1w_4mm)
    brain = np.asanyarray(t1w_4mm.dataobj) > 0
    cfg = SPECT | {"spect": [{"matrix": [64, 64, 60], "voxel_mm": [4.0, 4.0, 4.0]}]}  # no clipping here
    sc = frames.to_scanner_frame(act, t1w_4mm.affine, brain, t1w_4mm.affine, frames_cfg=cfg, modality="spect",
                                 seed=3, subject="01", scan="perfusion", centre_mm=_centre(t1w_4mm))
    assert sc.image.shape == (64, 64, 60) and np.allclose(sc.image.header.get_zooms(), 4.0)
    assert sc.fov["brain_in_fov"] == 1.0
    # the written affine is the scanner's: axis-aligned, FOV centred on the isocentre
    assert np.allclose(sc.image.affine[:3, :3], np.diag([4.0] * 3))
    assert np.allclose(nib.affines.apply_affine(sc.image.affine, [31.5, 31.5, 29.5]), 0.0)
    frames.write_scan(sc, tmp_path / "scan.nii.gz", tmp_path / "scan.json", subject="01", scan="perfusion",
                      modality="spect", tracer="IMP", units="counts")
    truth = frames.read_truth(tmp_path / "scan.json")
    assert truth["pose"]["rotation_deg"] == [round(v, 4) for v in sc.pose.rotation_deg]
    # the true pose carries the scan back onto the T1w: the image content matches there
    pose = np.asarray(truth["pose"]["t1w_to_scanner"])
    scan = np.asanyarray(sc.image.dataobj)
    back = _on(scan, np.linalg.inv(pose) @ sc.image.affine, t1w_4mm)
    inside = act > 0.5 * act.max()
    assert np.corrcoef(back[inside], act[inside])[0, 1] > 0.95
    # without the pose, the same content lies elsewhere
    naive = _on(scan, sc.image.affine, t1w_4mm)
    assert np.corrcoef(naive[inside], act[inside])[0, 1] < 0.5


def _on(volume: np.ndarray, affine: np.ndarray, ref: nib.Nifti1Image) -> np.ndarray:
    from scipy import ndimage

    m = np.linalg.inv(affine) @ ref.affine
    return ndimage.affine_transform(volume, m[:3, :3], offset=m[:3, 3], output_shape=ref.shape, order=1)


def test_fov_clipping_is_reported(t1w_4mm):
    brain = np.asanyarray(t1w_4mm.dataobj) > 0
    c = _centre(t1w_4mm)
    full = frames.brain_in_fov(brain, t1w_4mm.affine, frames.Pose((0, 0, 0), (0, 0, 0), tuple(c)), (64, 64, 60),
                               (4, 4, 4))
    assert full["brain_in_fov"] == 1.0 and full["brain_cut_superior"] == 0.0
    # a 100 mm axial FOV, the head 20 mm up in the scanner: the vertex is cut, more than the cerebellum
    short = frames.brain_in_fov(brain, t1w_4mm.affine, frames.Pose((0, 0, 0), (0, 0, 20.0), tuple(c)),
                                (64, 64, 25), (4, 4, 4))
    assert 0.3 < short["brain_in_fov"] < 0.9
    assert short["brain_cut_superior"] > short["brain_cut_inferior"] > 0.0
    assert short["brain_in_fov"] + short["brain_cut_superior"] + short["brain_cut_inferior"] + \
        short["brain_cut_inplane"] == pytest.approx(1.0, abs=1e-4)


def test_register_modality_recovers_the_scanner_pose(t1w_4mm, tmp_path):
    """The pipeline's 6-dof registration brings a scanner-frame scan back within 2.5 mm (tiny 4 mm grids)."""
    act = _emission(t1w_4mm)
    brain = np.asanyarray(t1w_4mm.dataobj) > 0
    mask_img = image_on_grid(brain.astype(np.uint8), Grid.of(t1w_4mm))
    nib.save(mask_img, tmp_path / "mask.nii.gz")
    cfg = {"registration": {"resolution_mm": 0.0, "shrink_factors": [2, 1], "smoothing_sigmas": [1.0, 0.0],
                            "sampling_fraction": 0.3}}
    rows, seen = [], set()
    for subject in ("01", "02"):
        sc = frames.to_scanner_frame(act, t1w_4mm.affine, brain, t1w_4mm.affine, frames_cfg=SPECT,
                                     modality="spect", seed=11, subject=subject, scan="perfusion",
                                     centre_mm=_centre(t1w_4mm))
        seen.add(sc.pose.rotation_deg)
        tx, qc = register_modality(sc.image, t1w_4mm, mask_img, modality="spect", subject=subject, config=cfg,
                                   scan="spect_trc-IMP")
        assert qc["step"] == "spect_trc-IMP->T1w" and qc["signal_in_brain"] > 0.9
        xfm = tmp_path / f"sub-{subject}_xfm.tfm"
        save_transform_pair(tx, xfm, tmp_path / f"sub-{subject}_inv.tfm")
        frames.write_scan(sc, tmp_path / f"{subject}.nii.gz", tmp_path / f"{subject}.json", subject=subject,
                          scan="perfusion", modality="spect", tracer="IMP", units="counts")
        rows.append({"subject": subject, "scan": "perfusion", "label": "spect_trc-IMP", "modality": "spect",
                     "xfm": xfm, "frame_json": tmp_path / f"{subject}.json", "mask": tmp_path / "mask.nii.gz"})
    assert len(seen) == 2
    table = scan_error_table(rows, tmp_path / "errors.tsv")
    assert list(table["subject"]) == ["01", "02"]
    assert (table["mean_mm"] < 2.5).all(), table[["subject", "mean_mm", "p95_mm"]]
    assert (table["pose_displacement_mm"] > 5.0).all()      # there was a pose to undo
    assert pd.read_csv(tmp_path / "errors.tsv", sep="\t", dtype={"subject": str})["p95_mm"].notna().all()
    summary = qc_summary(table, pd.DataFrame(columns=["study", "input", "target", "ssim"]))
    err = summary[summary["measure"].str.startswith("registration error (mm, mean")]
    assert err["n"].iloc[0] == 2 and err["mean"].iloc[0] == pytest.approx(table["mean_mm"].mean(), abs=1e-3)
    # the identity transform (no registration) is measured as the full pose error
    ident = tmp_path / "identity.tfm"
    sitk.WriteTransform(sitk.Euler3DTransform(), str(ident))
    wrong = scan_qc.registration_error(np.asarray(json.loads((tmp_path / "01.json").read_text())
                                                 ["SimulationTruth"]["pose"]["t1w_to_scanner"]),
                                      ident, tmp_path / "mask.nii.gz")
    assert wrong["mean_mm"] > 10.0


def test_a_failed_scan_registration_is_caught(t1w_4mm):
    act = _emission(t1w_4mm)
    brain = np.asanyarray(t1w_4mm.dataobj) > 0
    mask_img = image_on_grid(brain.astype(np.uint8), Grid.of(t1w_4mm))
    sc = frames.to_scanner_frame(act, t1w_4mm.affine, brain, t1w_4mm.affine, frames_cfg=SPECT, modality="spect",
                                 seed=5, subject="01", scan="cbf_spect", centre_mm=_centre(t1w_4mm))
    cfg = {"registration": {"resolution_mm": 0.0, "shrink_factors": [2, 1], "smoothing_sigmas": [1.0, 0.0],
                            "sampling_fraction": 0.3, "iterations": 2}}
    with pytest.raises(ProcessingError, match=r"subject 01: rigid registration of the spect_trc-IMP_desc-cbf "
                                              r"to the T1w did not converge"):
        register_modality(sc.image, t1w_4mm, mask_img, modality="spect", subject="01", config=cfg,
                          scan="spect_trc-IMP_desc-cbf")


def test_similarity_is_measured_on_the_dataset_slices_next_to_the_published_value(t1w_4mm, tmp_path):
    from scipy import ndimage

    from spectsynth.scan_qc import similarity_table

    pet = _emission(t1w_4mm)
    brain = np.asanyarray(t1w_4mm.dataobj) > 0
    files = {}
    for name, data in (("pet", pet), ("same", pet), ("blurred", ndimage.gaussian_filter(pet, 2.5))):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(image_on_grid(data.astype(np.float32), Grid.of(t1w_4mm)), files[name])
    files["brain"] = tmp_path / "brain.nii.gz"
    nib.save(image_on_grid(brain.astype(np.uint8), Grid.of(t1w_4mm)), files["brain"])
    cfg = {"s3": {"size": 32, "n_slices": 4}}
    same = similarity_table({"s3": {"01": {"spect_cbf": files["same"], "pet_cbf": files["pet"],
                                           "brain": files["brain"]}}}, cfg)
    blur = similarity_table({"s3": {"01": {"spect_cbf": files["blurred"], "pet_cbf": files["pet"],
                                           "brain": files["brain"]}}}, cfg)
    assert len(same) == 4 and (same["input"] == "spect_cbf").all()
    assert same["ssim"].min() > 0.999 and blur["ssim"].mean() < 0.95
    summary = qc_summary(pd.DataFrame(columns=["scan", "modality", "mean_mm", "p95_mm", "pose_displacement_mm",
                                               "brain_in_fov"]), blur)
    row = summary.iloc[0]
    assert row["published"] == 0.79 and row["difference"] == pytest.approx(row["mean"] - 0.79, abs=1e-4)


def test_each_subject_gets_one_of_the_cameras_for_all_its_scans():
    cams = DEFAULTS["frames"]
    drawn = [frames.draw_camera(cams, "spect", 7, f"{i:02d}")["index"] for i in range(60)]
    assert set(drawn) == {0, 1, 2}                      # all three of S2's SPECT cameras occur
    assert drawn == [frames.draw_camera(cams, "spect", 7, f"{i:02d}")["index"] for i in range(60)]
    assert {frames.draw_camera(cams, "pet", 7, f"{i:02d}")["index"] for i in range(60)} == {0, 1}


def test_head_motion_blurs_the_scan_and_is_recorded(t1w_4mm, tmp_path):
    act = _emission(t1w_4mm)
    brain = np.asanyarray(t1w_4mm.dataobj) > 0
    cam = [{"matrix": [64, 64, 60], "voxel_mm": [4.0, 4.0, 4.0]}]
    still = SPECT | {"spect": cam}
    moving = still | {"motion": {"rotation_deg": 3.0, "shift_mm": 4.0, "moved_fraction": [0.3, 0.5]}}
    kw = dict(modality="spect", seed=3, subject="01", scan="perfusion", centre_mm=_centre(t1w_4mm))
    a = frames.to_scanner_frame(act, t1w_4mm.affine, brain, t1w_4mm.affine, frames_cfg=still, **kw)
    b = frames.to_scanner_frame(act, t1w_4mm.affine, brain, t1w_4mm.affine, frames_cfg=moving, **kw)
    assert a.pose == b.pose and a.motion is None and 0.3 <= b.motion.fraction <= 0.5
    x, y = np.asanyarray(a.image.dataobj), np.asanyarray(b.image.dataobj)
    assert not np.allclose(x, y) and np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.8
    assert abs(float(x.sum()) - float(y.sum())) / float(x.sum()) < 0.02   # counts kept
    frames.write_scan(b, tmp_path / "scan.nii.gz", tmp_path / "scan.json", subject="01", scan="perfusion",
                      modality="spect", tracer="ECD", units="counts")
    truth = frames.read_truth(tmp_path / "scan.json")
    assert truth["motion"]["moved_fraction"] == round(b.motion.fraction, 4) and truth["camera"] == 0
