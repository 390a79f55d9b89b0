"""Tests of spectsynth.preprocess: orientation, backends, failure detection, composed transforms."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from spectsynth.errors import ConfigError, ProcessingError, SpectsynthError
from spectsynth.io import load_image
from spectsynth.preprocess import brain as brain_mod
from spectsynth.preprocess.brain import BrainSettings, deepbet_weights, extract_brain
from spectsynth.preprocess.qc import (
    plot_brain_mask,
    plot_labels,
    plot_template_outline,
    registration_table,
)
from spectsynth.preprocess.register import (
    Grid,
    RegistrationSettings,
    affine_to_itk,
    chain,
    check_overlap,
    downsample,
    from_sitk,
    image_on_grid,
    itk_to_affine,
    load_transform,
    native_grid,
    register,
    register_flirt,
    resample,
    resolution_grid,
    save_transform_pair,
    to_sitk,
)
from spectsynth.preprocess.steps import (
    register_modality,
    register_to_template,
    template_grid,
    template_image,
)

IXI = Path(__file__).resolve().parents[2] / "shared" / "data" / "ixi-sample"
IXI_SUBJECT = "IXI014-HH-1236"
needs_ixi = pytest.mark.skipif(not (IXI / "nifti").is_dir(),
                               reason=f"real IXI sample data not found at {IXI}")


def ixi_paths(subject: str = IXI_SUBJECT) -> tuple[Path, Path]:
    return (IXI / "nifti" / f"{subject}-T1_ds.nii.gz",
            IXI / "dlmuse" / f"{subject}-T1_ds_DLMUSE.nii.gz")


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def blob_image(shape=(40, 44, 36), spacing=2.0, seed=0) -> nib.Nifti1Image:
    """A head-like test volume: an ellipsoid with sharp inner structures and some texture."""
    rng = np.random.default_rng(seed)
    idx = np.indices(shape).astype(float)
    c = (np.asarray(shape) - 1) / 2
    r = np.sqrt(sum(((idx[i] - c[i]) / (0.4 * shape[i])) ** 2 for i in range(3)))
    data = (r < 1).astype(np.float32) * 100
    data[(r < 0.5) & (idx[0] > c[0])] = 180
    data[(r < 0.3) & (idx[1] < c[1])] = 40
    data += rng.normal(0, 2, shape).astype(np.float32) * (r < 1)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -c * spacing
    return image_on_grid(data, Grid(shape, affine))


@pytest.fixture(scope="module")
def template_4mm() -> nib.Nifti1Image:
    """The MNI152 brain at 4 mm (zero outside the brain, like the original)."""
    img = from_sitk(downsample(to_sitk(template_image()), 4.0))
    data = np.asanyarray(img.dataobj)
    return image_on_grid(np.where(data > 5, data, 0).astype(np.float32), Grid.of(img))


# ---------------------------------------------------------------------------------------------
# conversions, orientation
# ---------------------------------------------------------------------------------------------
@needs_ixi
def test_sagittal_ixi_is_ras_and_keeps_world_positions():
    t1_path, _ = ixi_paths()
    raw = nib.load(str(t1_path))
    assert nib.aff2axcodes(raw.affine) == ("P", "S", "R")
    img = load_image(t1_path, subject=IXI_SUBJECT)
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    ours = to_sitk(img)
    reference = sitk.ReadImage(str(t1_path), sitk.sitkFloat32)  # ITK's own reader, LPS
    rng = np.random.default_rng(1)
    for _ in range(20):
        ijk = [int(rng.integers(0, s)) for s in reference.GetSize()]
        point = reference.TransformIndexToPhysicalPoint(ijk)
        assert ours[ours.TransformPhysicalPointToIndex(point)] == pytest.approx(reference[ijk], rel=1e-5)
    back = from_sitk(ours)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(img.dataobj).astype(np.float32))


def test_affine_itk_round_trip_and_lps_convention():
    ras = np.eye(4)
    ras[:3, 3] = [10.0, -5.0, 3.0]  # move right 10 mm, posterior 5 mm, up 3 mm
    tx = affine_to_itk(ras)
    # the same move in ITK's LPS coordinates
    np.testing.assert_allclose(tx.TransformPoint((0.0, 0.0, 0.0)), (-10.0, 5.0, 3.0))
    rot = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, 6.0))
    np.testing.assert_allclose(affine_to_itk(itk_to_affine(rot)).TransformPoint((7.0, 8.0, 9.0)),
                               rot.TransformPoint((7.0, 8.0, 9.0)), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# grids and transform files
# ---------------------------------------------------------------------------------------------
def test_native_grid_is_s2_grid_centred_on_the_brain():
    img = blob_image()
    mask = image_on_grid((np.asanyarray(img.dataobj) > 50).astype(np.uint8), Grid.of(img))
    grid = native_grid(mask)
    assert grid.shape == (256, 256, 192)
    np.testing.assert_allclose(grid.spacing, (1.0, 1.0, 1.0))
    assert nib.aff2axcodes(grid.affine) == ("R", "A", "S")
    idx = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    lo = (mask.affine @ np.r_[idx.min(0), 1])[:3]
    hi = (mask.affine @ np.r_[idx.max(0), 1])[:3]
    centre = (grid.affine @ np.r_[(np.asarray(grid.shape) - 1) / 2, 1])[:3]
    np.testing.assert_allclose(centre, (lo + hi) / 2, atol=1e-6)


def test_template_grid_options():
    one = template_grid(1)
    two = template_grid(2)
    assert one.shape == template_image().shape
    np.testing.assert_allclose(two.spacing, (2.0, 2.0, 2.0))
    # same field of view: outer edges of the first voxel coincide
    edge1 = (one.affine @ np.r_[-0.5, -0.5, -0.5, 1])[:3]
    edge2 = (two.affine @ np.r_[-0.5, -0.5, -0.5, 1])[:3]
    np.testing.assert_allclose(edge1, edge2, atol=1e-6)
    with pytest.raises(ConfigError, match="1 or 2"):
        template_grid(3)
    assert resolution_grid(one, 1.0) is one


def test_transform_files_forward_and_inverse(tmp_path):
    tx = sitk.AffineTransform(3)
    tx.SetMatrix((1.05, 0.02, 0.0, -0.03, 0.97, 0.01, 0.0, 0.02, 1.1))
    tx.SetTranslation((3.0, -4.0, 5.0))
    tx.SetCenter((1.0, 2.0, 3.0))
    fwd, inv = tmp_path / "from-A_to-B_xfm.tfm", tmp_path / "from-B_to-A_xfm.tfm"
    save_transform_pair(tx, fwd, inv)
    assert "AffineTransform" in fwd.read_text()
    a, b = load_transform(fwd), sitk.ReadTransform(str(inv))  # readable by plain ITK
    p = (10.0, -20.0, 30.0)
    np.testing.assert_allclose(b.TransformPoint(a.TransformPoint(p)), p, atol=1e-6)
    with pytest.raises(SpectsynthError, match="does not exist"):
        load_transform(tmp_path / "missing.tfm")


# ---------------------------------------------------------------------------------------------
# composed transforms: one interpolation
# ---------------------------------------------------------------------------------------------
def test_chain_order():
    a = sitk.TranslationTransform(3, (1.0, 0.0, 0.0))
    b = sitk.ScaleTransform(3, (2.0, 2.0, 2.0))
    # chain([a, b]) applies a first, then b
    np.testing.assert_allclose(chain([a, b]).TransformPoint((1.0, 1.0, 1.0)), (4.0, 2.0, 2.0))


def test_composed_transform_resamples_once():
    img = blob_image(spacing=2.0)
    grid = Grid.of(img)
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.12, -0.08, 0.2, (3.0, -2.0, 1.5))
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.06, 0.03, 0.0, -0.02, 0.95, 0.04, 0.01, 0.0, 1.02))
    affine.SetTranslation((-2.5, 4.0, 1.0))
    composed = resample(img, grid, [affine, rigid], interpolation="bspline")
    # the same mapping as ONE matrix: rigid(affine(p))
    m = itk_to_affine(rigid) @ itk_to_affine(affine)
    direct = resample(img, grid, [affine_to_itk(m)], interpolation="bspline")
    # two resamplings in a row (what the pipeline never does)
    step = resample(img, grid, [rigid], interpolation="bspline")
    sequential = resample(step, grid, [affine], interpolation="bspline")
    c, d, s = (np.asanyarray(x.dataobj) for x in (composed, direct, sequential))
    inside = d > 20
    err_composed = np.abs(c - d)[inside].mean()
    err_sequential = np.abs(s - d)[inside].mean()
    assert err_composed < 1e-3 * d[inside].mean()
    assert err_sequential > 20 * err_composed
    # a second interpolation blurs: less gradient energy than the one-step result
    grad = lambda x: sum(np.abs(np.diff(x, axis=k)).sum() for k in range(3))  # noqa: E731
    assert grad(s) < grad(c)


def test_resample_bspline_is_clipped_to_input_range():
    img = blob_image()
    out = resample(img, Grid.of(img), [sitk.TranslationTransform(3, (0.7, 0.3, -0.4))])
    data, src = np.asanyarray(out.dataobj), np.asanyarray(img.dataobj)
    assert data.min() >= min(src.min(), 0) - 1e-6 and data.max() <= src.max() + 1e-6
    with pytest.raises(ConfigError, match="interpolation"):
        resample(img, Grid.of(img), [], interpolation="cubic")


# ---------------------------------------------------------------------------------------------
# registration: pose recovery and failure detection
# ---------------------------------------------------------------------------------------------
def _posed(template: nib.Nifti1Image, truth: sitk.Transform) -> nib.Nifti1Image:
    """The template seen through a known pose (``truth`` maps template points to subject points)."""
    grid = Grid.of(template)
    return resample(template, grid, [truth.GetInverse()], interpolation="linear")


def _mean_error(template: nib.Nifti1Image, est: sitk.Transform, truth: sitk.Transform) -> float:
    pts = np.argwhere(np.asanyarray(template.dataobj) > 0)[::25]
    world = (template.affine @ np.c_[pts, np.ones(len(pts))].T).T[:, :3] * [-1, -1, 1]
    e = [np.linalg.norm(np.subtract(est.TransformPoint(tuple(p)), truth.TransformPoint(tuple(p))))
         for p in world]
    return float(np.mean(e))


@pytest.mark.parametrize("angles,shift", [((0.26, -0.15, 0.2), (10.0, -8.0, 6.0)),
                                          ((-0.2, 0.26, -0.26), (-9.0, 10.0, -10.0))])
def test_affine_registration_recovers_a_15_degree_10_mm_pose(template_4mm, angles, shift):
    centre = to_sitk(template_4mm).TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2 for s in template_4mm.shape])
    truth = sitk.Euler3DTransform(centre, *angles, shift)
    subject = _posed(template_4mm, truth)
    settings = RegistrationSettings(resolution_mm=0.0, shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0),
                                    sampling_fraction=0.3)
    res = register(to_sitk(template_4mm), to_sitk(subject), dof=12, settings=settings, subject="pose")
    assert res.converged
    assert _mean_error(template_4mm, res.transform, truth) < 2.0  # mm, on 4 mm voxels
    # reruns agree (fixed sampling seed; only the rounding of multi-threaded sums differs)
    again = register(to_sitk(template_4mm), to_sitk(subject), dof=12, settings=settings, subject="pose")
    np.testing.assert_allclose(again.transform.GetParameters(), res.transform.GetParameters(),
                               rtol=1e-5, atol=1e-4)


def test_non_converged_registration_stops_the_subject(template_4mm):
    truth = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.2, 0.0, 0.0, (5.0, 0.0, 0.0))
    subject = _posed(template_4mm, truth)
    settings = RegistrationSettings(resolution_mm=0.0, iterations=2, shrink_factors=(1,), smoothing_sigmas=(0.0,))
    with pytest.raises(ProcessingError, match=r"subject sub-x.*did not converge.*2 iterations"):
        register(to_sitk(template_4mm), to_sitk(subject), dof=12, settings=settings, subject="sub-x")
    relaxed = RegistrationSettings(**{**settings.as_dict(), "require_convergence": False})
    assert not register(to_sitk(template_4mm), to_sitk(subject), dof=12, settings=relaxed).converged


def test_bad_overlap_stops_the_subject_with_its_number():
    tmpl = template_image()
    brain = from_sitk(downsample(to_sitk(tmpl), 3.0))
    mask_data = np.asanyarray(brain.dataobj) > 0
    # a brain mask displaced by 45 mm: the registration follows the image, the mask check fails
    shifted = np.roll(mask_data, 15, axis=0)
    mask = image_on_grid(shifted.astype(np.uint8), Grid.of(brain))
    with pytest.raises(ProcessingError, match=r"subject bad01: affine registration to MNI152 landed badly: "
                                              r"brain-mask Dice with the target is 0\.\d+, below the "
                                              r"threshold 0\.850"):
        register_to_template(brain, mask, subject="bad01")
    with pytest.raises(ProcessingError, match="nan"):
        check_overlap(float("nan"), 0.5, subject="s", what="x")


def test_registration_settings_validation():
    with pytest.raises(ConfigError, match="unknown keys"):
        RegistrationSettings.from_config({"learning_rat": 1})
    with pytest.raises(ConfigError, match="same length"):
        RegistrationSettings.from_config({"shrink_factors": [4, 2], "smoothing_sigmas": [1]})
    with pytest.raises(ConfigError, match="backend"):
        RegistrationSettings.from_config({"backend": "ants"})
    with pytest.raises(ConfigError, match="dof"):
        register(to_sitk(blob_image()), to_sitk(blob_image()), dof=9)


def test_pet_rigid_registration_and_signal_check(template_4mm):
    t = np.asanyarray(template_4mm.dataobj).astype(np.float32)
    mask = image_on_grid((t > 0).astype(np.uint8), Grid.of(template_4mm))
    # a PET-like image: grey matter bright, white matter dim, blurred, in another pose and grid
    pet_data = np.where(t > 0, 200.0 - np.abs(t - 90.0), 0).astype(np.float32)
    mid = np.asarray(t.shape) // 2
    pet_data[mid[0] - 1:mid[0] + 2, 1:3, mid[2] - 1:mid[2] + 2] = 400.0  # a hot marker behind the head
    pet_like = image_on_grid(pet_data, Grid.of(template_4mm))
    centre = to_sitk(template_4mm).TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2 for s in template_4mm.shape])
    truth = sitk.Euler3DTransform(centre, 0.15, -0.1, 0.12, (6.0, -5.0, 4.0))
    pet = _posed(pet_like, truth)
    cfg = {"registration": {"resolution_mm": 0.0, "shrink_factors": [2, 1], "smoothing_sigmas": [1.0, 0.0],
                            "sampling_fraction": 0.3}}
    tx, qc = register_modality(pet, template_4mm, mask, modality="pet", subject="p1", config=cfg)
    assert qc["signal_in_brain"] > 0.9 and qc["dof"] == 6
    assert isinstance(tx, sitk.Euler3DTransform)
    assert _mean_error(template_4mm, tx, truth) < 2.5
    # the check refuses a result below its threshold and says by how much
    with pytest.raises(ProcessingError, match=r"subject p1: rigid registration of the PET to the T1w landed "
                                              r"badly: only 0\.9\d+ of its signal .*threshold 1\.000"):
        register_modality(pet, template_4mm, mask, modality="pet", subject="p1",
                          config={**cfg, "modality": {"min_signal_in_brain": 0.9999}})
    with pytest.raises(ConfigError, match="modality"):
        register_modality(pet, template_4mm, mask, modality="mri", subject="p1", config=cfg)


# ---------------------------------------------------------------------------------------------
# brain extraction backends
# ---------------------------------------------------------------------------------------------
def test_deepbet_weights_are_found_in_site_packages():
    model, bbox = deepbet_weights()
    assert model.name == "model.pt" and bbox.name == "bbox_model.pt"
    assert model.parent.parts[-2:] == ("data", "models")


def test_missing_deepbet_weights_say_where_they_were_looked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(brain_mod, "_candidate_model_dirs", lambda: [tmp_path / "data" / "models"])
    with pytest.raises(SpectsynthError, match=r"weights .* not found; looked in: .*data/models.*reinstall"):
        deepbet_weights()


@needs_ixi
def test_deepbet_backend_on_a_real_sagittal_t1():
    t1_path, ref_path = ixi_paths()
    t1 = load_image(t1_path, subject=IXI_SUBJECT)
    brain, mask, info = extract_brain(t1, settings={"backend": "deepbet", "device": "cpu"}, subject=IXI_SUBJECT)
    ref = np.asanyarray(load_image(ref_path).dataobj) > 0
    m = np.asanyarray(mask.dataobj) > 0
    assert dice(m, ref) >= 0.95
    assert info["backend"] == "deepbet" and 1000 < info["brain_volume_ml"] < 2000
    np.testing.assert_allclose(mask.affine, t1.affine)
    assert not np.asanyarray(brain.dataobj)[~m].any()
    # failure detection: a plausible-volume range that excludes this brain stops the subject
    with pytest.raises(ProcessingError, match=rf"subject {IXI_SUBJECT}: brain extraction \(deepbet\) gave "
                                              r"a brain of \d+ mL, outside"):
        extract_brain(t1, settings={"min_volume_ml": 2000, "max_volume_ml": 3000}, subject=IXI_SUBJECT)


@pytest.mark.parametrize("step", ["brain", "registration"])
def test_fsl_backend_without_fsl_stops_with_a_clear_message(monkeypatch, step):
    monkeypatch.delenv("FSLDIR", raising=False)
    img = blob_image()
    if step == "brain":
        with pytest.raises(ConfigError, match="FSLDIR is not set.*Install FSL.*deepbet"):
            extract_brain(img, settings={"backend": "fsl"}, subject="s1")
    else:
        with pytest.raises(ConfigError, match="FSLDIR is not set.*simpleitk"):
            register_flirt(img, img, subject="s1")


def test_unknown_brain_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="backend"):
        BrainSettings.from_config({"backend": "bse"})
    assert BrainSettings.from_config(None).deepbet_shape == 192
    for bad in (200, 96, 352):
        with pytest.raises(ConfigError, match="deepbet_shape.*multiple of 32"):
            BrainSettings.from_config({"deepbet_shape": bad})
    with pytest.raises(ConfigError, match="unknown keys"):
        BrainSettings.from_config({"treshold": 0.4})


def _fake_fsl(tmp_path: Path) -> Path:
    """A stand-in FSLDIR whose bet/flirt behave like FSL's on their command lines."""
    bin_dir = tmp_path / "fsl" / "bin"
    bin_dir.mkdir(parents=True)
    bet = textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, nibabel as nib, numpy as np
        args = sys.argv[1:]
        src, out = args[0], args[1]
        img = nib.load(src)
        data = np.asanyarray(img.dataobj).astype(np.float32)
        mask = (data > 0.3 * np.percentile(data[data > 0], 98)).astype(np.uint8)
        stem = out[:-7] if out.endswith(".nii.gz") else out
        nib.save(nib.Nifti1Image(data * mask, img.affine), stem + ".nii.gz")
        if "-m" in args:
            nib.save(nib.Nifti1Image(mask, img.affine), stem + "_mask.nii.gz")
        with open(stem + ".args", "w") as f:
            f.write(" ".join(args))
        """)
    flirt = textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, numpy as np
        args = sys.argv[1:]
        np.savetxt(args[args.index("-omat") + 1], np.eye(4))
        """)
    for name, text in (("bet", bet), ("flirt", flirt)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return tmp_path / "fsl"


def test_fsl_bet_backend_runs_bet_through_fslpy(monkeypatch, tmp_path):
    pytest.importorskip("fsl.wrappers", reason="fslpy is not installed")
    fsldir = _fake_fsl(tmp_path)
    monkeypatch.setenv("FSLDIR", str(fsldir))
    img = blob_image(shape=(60, 60, 60), spacing=2.0)
    brain, mask, info = extract_brain(img, settings={"backend": "fsl", "fsl_frac": 0.35,
                                                     "min_volume_ml": 10}, subject="s1")
    assert info["backend"] == "fsl"
    expected = np.asanyarray(img.dataobj) > 0.3 * np.percentile(np.asanyarray(img.dataobj)[
        np.asanyarray(img.dataobj) > 0], 98)
    np.testing.assert_array_equal(np.asanyarray(mask.dataobj) > 0, expected)


def test_flirt_backend_converts_fsl_matrix_to_itk(monkeypatch, tmp_path):
    pytest.importorskip("fsl.transform.flirt", reason="fslpy is not installed")
    monkeypatch.setenv("FSLDIR", str(_fake_fsl(tmp_path)))
    fixed = blob_image()
    moved_affine = fixed.affine.copy()
    moved_affine[0, 3] += 10.0  # the moving image's voxels sit 10 mm further right
    moving = nib.Nifti1Image(np.asanyarray(fixed.dataobj), moved_affine)
    # FLIRT's identity matrix = voxel i of moving <-> voxel i of fixed
    res = register_flirt(fixed, moving, dof=6, subject="s1")
    assert res.backend == "fsl"
    # fixed point p (RAS) corresponds to moving point p + 10 mm in x; in LPS that is x - 10
    np.testing.assert_allclose(res.transform.TransformPoint((1.0, 2.0, 3.0)), (-9.0, 2.0, 3.0), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# QC
# ---------------------------------------------------------------------------------------------
def test_qc_figures_and_registration_table(tmp_path):
    img = blob_image()
    g = Grid.of(img)
    data = np.asanyarray(img.dataobj)
    mask = image_on_grid((data > 50).astype(np.uint8), g)
    lab = np.zeros(g.shape, np.uint8)
    lab[15:18, 20:24, 15:19] = 1
    lab[22:25, 20:24, 15:19] = 2
    terr = ((data > 50) * (1 + (np.indices(g.shape)[0] > 20))).astype(np.uint8)
    ref = np.zeros(g.shape, np.uint8)
    ref[18:22, 5:9, 5:9] = 2
    files = [
        plot_template_outline(img, tmp_path / "outline.png", subject="01", template=img),
        plot_brain_mask(img, mask, tmp_path / "mask.png", subject="01"),
        plot_labels(img, image_on_grid(lab, g), image_on_grid(terr, g), image_on_grid(ref, g),
                    tmp_path / "labels.png", subject="01"),
    ]
    for f in files:
        assert f.stat().st_size > 5000 and f.read_bytes()[:4] == b"\x89PNG"
    reg = tmp_path / "reg.json"
    reg.write_text(json.dumps({"subject": "01", "step": "T1w->MNI152", "dof": 12, "mask_dice": 0.95,
                               "metric": -0.6, "iterations": 300, "converged": True, "seconds": 1.2,
                               "backend": "simpleitk"}))
    anat = tmp_path / "anat.json"
    anat.write_text(json.dumps({"subject": "01", "atlas_global": {"metric": -0.7, "iterations": 50,
                                                                  "converged": True, "seconds": 1.0,
                                                                  "backend": "simpleitk"},
                                "atlas_local": {"L": {"metric": -0.3, "iterations": 40, "converged": True,
                                                      "seconds": 0.5, "backend": "simpleitk",
                                                      "shift_mm": 1.5, "accepted": True}}}))
    table = registration_table([reg, anat])
    assert list(table["step"]) == ["T1w->MNI152", "T1w->atlas", "T1w->atlas striatum L"]
    assert table.loc[0, "mask_dice"] == 0.95 and table.loc[2, "striatum_shift_mm"] == 1.5


def test_package_import_has_no_side_effects():
    code = ("import sys, spectsynth.preprocess, spectsynth.anatomy; "
            "assert 'deepbet' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    assert os.system(f'"{sys.executable}" -c "{code}"') == 0
