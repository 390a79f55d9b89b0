"""Metrics on hand-computed cases, cross-checked against scikit-image, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from skimage import metrics as skm

from spectsynth import metrics as M
from spectsynth.errors import EvaluationError, context

EXP = "s2-native-mri-l1"
IXI = Path(__file__).resolve().parents[2] / "shared/data/ixi-sample"


# ---------------------------------------------------------------- RMSE, PSNR, SSIM
def test_rmse_and_psnr_hand_computed():
    target = np.zeros((8, 8))
    pred = np.full((8, 8), 2.0)  # every error is 2 -> MSE 4, RMSE 2
    assert M.rmse(pred, target) == pytest.approx(2.0)
    # PSNR = 10 log10(range^2 / MSE) = 10 log10(16 / 4)
    assert M.psnr(pred, target, data_range=4.0) == pytest.approx(10 * math.log10(4.0))


def test_ssim_of_constant_images_hand_computed():
    # Zero variance: SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1),
    # C1 = (0.01 L)^2.
    a, b, L = 0.5, 1.0, 1.0
    c1 = (0.01 * L) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = M.ssim(np.full((16, 16), a), np.full((16, 16), b), data_range=L)
    assert got == pytest.approx(expected, rel=1e-9)
    assert M.ssim(np.eye(9), np.eye(9), data_range=1.0) == pytest.approx(1.0)


def test_metrics_match_scikit_image_on_random_slices():
    rng = np.random.default_rng(1)
    t = rng.uniform(-1, 1, (32, 32))
    p = np.clip(t + rng.normal(0, 0.1, t.shape), -1, 1)
    assert M.ssim(p, t, data_range=2.0) == pytest.approx(
        skm.structural_similarity(t, p, data_range=2.0))
    assert M.psnr(p, t, data_range=2.0) == pytest.approx(
        skm.peak_signal_noise_ratio(t, p, data_range=2.0))
    assert M.rmse(p, t) == pytest.approx(np.sqrt(((p - t) ** 2).mean()))


def test_ssim_window_shrinks_for_small_images_and_refuses_tiny():
    x = np.arange(25.0).reshape(5, 5)
    assert M.ssim(x, x, data_range=25.0) == pytest.approx(1.0)
    with pytest.raises(EvaluationError, match="^SSIM window"):
        M.ssim(np.ones((2, 8)), np.ones((2, 8)), data_range=1.0)


def test_slice_metrics_table_states_data_range():
    rng = np.random.default_rng(2)
    t = rng.uniform(-1, 1, (3, 16, 16))
    p = t + 0.1
    tab = M.slice_metrics(p, t, data_range=2.0)
    assert list(tab.columns) == ["slice", "rmse", "ssim", "psnr", "data_range"]
    assert len(tab) == 3
    assert (tab["data_range"] == 2.0).all()
    assert tab["rmse"].to_numpy() == pytest.approx([0.1] * 3)
    assert tab["psnr"].to_numpy() == pytest.approx([10 * math.log10(4 / 0.01)] * 3)
    assert not tab.isna().any().any()


def test_slice_metrics_refuses_identical_slice():
    t = np.random.default_rng(0).uniform(size=(2, 8, 8))
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: subject 3: slice 0.*PSNR is infinite"):
        with context(experiment=EXP, subject="3"):
            M.slice_metrics(t, t, data_range=1.0)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "wide"])
def test_data_range_must_be_positive(bad):
    with pytest.raises(EvaluationError, match="data_range"):
        M.psnr(np.zeros((8, 8)), np.ones((8, 8)), data_range=bad)


def test_shape_mismatch_names_experiment_and_subject_of_the_context():
    with pytest.raises(EvaluationError, match=r"^prediction has shape \(8, 8\) but target has shape \(8, 9\)"):
        M.rmse(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(EvaluationError, match=rf"^experiment {EXP}: subject 01: prediction has shape \(8, 8\) "
                                              r"but target has shape \(8, 9\)") as info:
        with context(experiment=EXP, subject="01"):
            M.rmse(np.zeros((8, 8)), np.zeros((8, 9)))
    assert (info.value.experiment, info.value.subject) == (EXP, "01")


def test_nan_in_prediction_is_refused():
    p = np.zeros((8, 8))
    p[1, 1] = np.nan
    with pytest.raises(EvaluationError, match="prediction holds 1 NaN"):
        M.ssim(p, np.zeros((8, 8)), data_range=1.0)


def _img(data, affine=None):
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine)


def test_mismatched_affine_is_refused():
    data = np.random.default_rng(0).uniform(size=(8, 8, 4))
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: subject 02: the affine of the prediction "
                                              "differs.*2 mm"):
        with context(experiment=EXP, subject="02"):
            M.volume_slice_metrics(_img(data, shifted), _img(data), data_range=1.0)
    with pytest.raises(EvaluationError, match="shape"):
        M.check_same_grid(_img(data[:4]), _img(data))


def test_volume_slice_metrics_skips_blank_slices():
    rng = np.random.default_rng(3)
    t = np.zeros((8, 8, 5))
    t[..., 1:4] = rng.uniform(size=(8, 8, 3))
    p = t.copy()
    p[..., 1:4] += 0.05
    tab = M.volume_slice_metrics(_img(p), _img(t), data_range=1.0)
    assert tab["slice"].tolist() == [1, 2, 3]
    assert tab["rmse"].to_numpy() == pytest.approx([0.05] * 3, rel=1e-5)


# ------------------------------------------------------------------- orientation
def test_to_display_orientation():
    s = np.zeros((3, 2))   # (x: left->right, y: posterior->anterior)
    s[0, 1] = 1            # subject's left, anterior
    neuro = M.to_display(s, "neurological")
    radio = M.to_display(s, "radiological")
    assert neuro.shape == (2, 3)
    assert neuro[0, 0] == 1   # top row (anterior), left column (subject's left)
    assert radio[0, 2] == 1   # radiological: subject's left on the image's right
    with pytest.raises(ValueError, match="convention"):
        M.to_display(s, "sideways")


def test_hemisphere_masks_odd_width_excludes_midline():
    left, right = M.hemisphere_masks((5, 2))
    assert left[:, 0].tolist() == [True, True, False, False, False]
    assert right[:, 0].tolist() == [False, False, False, True, True]


# --------------------------------------------------------------------------- S0
def test_dice_hand_computed_and_empty():
    assert M.dice([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert M.dice([1, 1], [1, 1]) == 1.0
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: left BG: both masks are empty"):
        with context(experiment=EXP):
            M.dice([0, 0], [0, 0], what="left BG")


def test_anatomy_shape_hand_computed():
    m = np.zeros((10, 10), bool)
    m[2:5, 1:6] = True  # 3 rows x 5 columns
    asp = M.anatomy_shape(m)
    assert asp["AP"] == 3 and asp["LAT"] == 5
    # caliper width of a w x h rectangle along either diagonal is (w + h) / sqrt(2)
    assert asp["DLT"] == pytest.approx(8 / math.sqrt(2))
    assert asp["DRT"] == pytest.approx(8 / math.sqrt(2))
    assert asp["com_row"] == pytest.approx(3.0) and asp["com_col"] == pytest.approx(3.0)
    # a diagonal bar top-left -> bottom-right is long on DLT, one pixel wide on DRT
    d = np.eye(4, dtype=bool)
    asp = M.anatomy_shape(d)
    assert asp["DLT"] == pytest.approx(3 * math.sqrt(2) + math.sqrt(2))
    assert asp["DRT"] == pytest.approx(math.sqrt(2))
    with pytest.raises(EvaluationError, match="mask is empty"):
        M.anatomy_shape(np.zeros((3, 3)))


def _two_blob_slice(shift_y: int = 0) -> np.ndarray:
    img = np.full((40, 40), 1.0)
    img[8:14, 18 + shift_y:26 + shift_y] = 4.0   # left striatum (low x)
    img[26:32, 18 + shift_y:26 + shift_y] = 4.0  # right striatum
    return img


def test_segment_basal_ganglia_sides_and_threshold():
    seg = M.segment_basal_ganglia(_two_blob_slice(), fraction=0.5)
    assert set(np.unique(seg)) == {0, 1, 2}
    assert (seg == 1).sum() == 48 and (seg == 2).sum() == 48
    assert np.argwhere(seg == 1)[:, 0].max() < 20 < np.argwhere(seg == 2)[:, 0].min()
    # with a search mask only the masked (and dilated) area can be segmented
    mask = np.zeros((40, 40), bool)
    mask[9:12, 19:22] = True
    mask[27:30, 19:22] = True
    seg = M.segment_basal_ganglia(_two_blob_slice(), search_mask=mask, dilate_px=1)
    dil = ndimage.binary_dilation(mask, iterations=1)
    assert np.all(dil[seg > 0]) and (seg > 0).sum() == dil.sum()


def test_segment_refuses_empty_hemisphere_signal():
    img = np.zeros((20, 20))
    img[15, 10] = 1.0  # signal on the right only
    with pytest.raises(EvaluationError, match=f"experiment {EXP}: subject 04: no striatal signal in the "
                                              "left hemisphere"):
        with context(experiment=EXP, subject="04"):
            M.segment_basal_ganglia(img)


def test_basal_ganglia_agreement_identical_and_shifted():
    orig = _two_blob_slice()
    asp, dice_tab = M.basal_ganglia_agreement(orig, orig, case="d3")
    assert list(asp.columns) == ["case", "side", "measure", "original", "prediction", "difference",
                                 "abs_difference"]
    assert list(dice_tab.columns) == ["case", "side", "dice"]
    assert (asp["abs_difference"] == 0).all()
    assert dice_tab["dice"].tolist() == [1.0, 1.0]
    assert sorted(asp["measure"].unique()) == sorted(M.ASP_MEASURES)
    # prediction moved one pixel anterior: displayed row decreases by 1, nothing else changes
    asp, dice_tab = M.basal_ganglia_agreement(_two_blob_slice(shift_y=1), orig)
    by = asp.set_index(["side", "measure"])["difference"]
    assert by[("L", "com_row")] == pytest.approx(-1.0) and by[("R", "com_row")] == pytest.approx(-1.0)
    for m in ("AP", "LAT", "DLT", "DRT", "com_col"):
        assert by[("L", m)] == pytest.approx(0.0)
    # each 6x8 blob overlaps its shifted copy by 6x7: Dice = 2*42 / 96
    assert dice_tab["dice"].to_numpy() == pytest.approx([84 / 96, 84 / 96])
    assert np.isfinite(asp[["original", "prediction", "difference", "abs_difference"]].to_numpy()).all()


def test_sbr_error_fractions_hand_computed():
    tab = M.sbr_error_fractions([2.0, 2.5, 3.0, 1.0], [2.1, 3.0, 2.0, 1.0], thresholds=(0.75, 0.2))
    assert list(tab.columns) == ["threshold", "n", "n_below", "fraction"]
    assert tab["n_below"].tolist() == [3, 2]
    assert tab["fraction"].tolist() == [0.75, 0.5]


# --------------------------------------------------------------------------- S1
def test_mean_counts_and_lr_ratio_hand_computed():
    img = np.zeros((4, 3))
    img[:2] = 2.0   # left half (x = 0, 1)
    img[2:] = 1.0
    assert M.mean_counts(img) == pytest.approx(1.5)
    assert M.lr_ratio(img) == pytest.approx(2.0)
    mask = np.zeros_like(img, bool)
    mask[0] = True
    assert M.mean_counts(img, mask) == pytest.approx(2.0)
    odd = np.ones((5, 2))
    odd[2] = 100.0  # midline column counts for neither side
    assert M.lr_ratio(odd) == pytest.approx(1.0)
    with pytest.raises(EvaluationError, match="experiment s1.*ratio is undefined"):
        with context(experiment="s1"):
            M.lr_ratio(np.zeros((4, 4)))


def test_mean_sd_maps_hand_computed():
    imgs = np.stack([np.zeros((2, 2)), np.full((2, 2), 2.0), np.ones((2, 2)), np.ones((2, 2)) * 3])
    maps = M.mean_sd_maps(imgs, levels=["BG", "BG", "COR", "COR"],
                          patterns=["normal", "normal", "normal", "normal"])
    g = maps[("BG", "normal")]
    assert g["n"] == 2
    assert np.allclose(g["mean"], 1.0) and np.allclose(g["sd"], math.sqrt(2))
    assert g["average_sd"] == pytest.approx(math.sqrt(2))
    with pytest.raises(EvaluationError, match="level CER, pattern bilateral has 1 image"):
        M.mean_sd_maps(imgs[:3], levels=["BG", "BG", "CER"], patterns=["normal", "normal", "bilateral"])


def test_s1_image_table():
    imgs = np.stack([np.pad(np.ones((2, 2)), ((0, 2), (0, 0))) + 1, np.ones((4, 2))])
    tab = M.s1_image_table(imgs, levels=["BG", "COR"], patterns=["unilateral", "normal"], source="A")
    assert tab["lr_ratio"].tolist() == pytest.approx([2.0, 1.0])
    assert tab["mean_counts"].tolist() == pytest.approx([1.5, 1.0])
    assert set(tab["source"]) == {"A"}
    assert list(tab.columns) == ["source", "image", "level", "pattern", "mean_counts", "lr_ratio"]
    # an image that fails is named by its source and number, inside the caller's experiment
    bad = imgs.copy()
    bad[1] = 0.0
    with pytest.raises(EvaluationError, match="^experiment s1: subject A image 1: hemisphere counts"):
        with context(experiment="s1", subject="ignored"):
            M.s1_image_table(bad, levels=["BG", "COR"], patterns=["unilateral", "normal"], source="A")


# --------------------------------------------------------------------------- S3
def test_roi_means_and_table_hand_computed():
    labels = np.array([[1, 1, 2], [2, 2, 0]])
    img = np.array([[1.0, 3.0, 6.0], [0.0, 3.0, 9.0]])
    assert M.roi_means(img, labels, {1: "MCA_L", 2: "MCA_R"}) == {"MCA_L": 2.0, "MCA_R": 3.0}
    tab = M.roi_table(img, img * 2, img * 3, labels, {1: "MCA_L", 2: "MCA_R"})
    assert list(tab.columns) == ["region", "input", "prediction", "target"]
    assert tab[["input", "prediction", "target"]].to_numpy().tolist() == [[2, 4, 6], [3, 6, 9]]
    with pytest.raises(EvaluationError, match="experiment s3: region PCA_L \\(label 5\\) has 0 voxels"):
        with context(experiment="s3"):
            M.roi_means(img, labels, {5: "PCA_L"})


# ------------------------------------------------------------- real anatomy (IXI)
@pytest.mark.skipif(not IXI.exists(), reason=f"IXI sample data not found at {IXI}")
def test_bg_segmentation_on_real_anatomy_finds_the_right_sides():
    """A DaT-like slice built from a real DLMUSE label map: the segmentation must land on
    the anatomical striatum, left on the left-labelled structures."""
    from spectsynth.io import load_image

    lab = np.asarray(load_image(IXI / "dlmuse/IXI012-HH-1211-T1_ds_DLMUSE.nii.gz").dataobj).astype(int)
    left_ids, right_ids = (37, 58), (36, 57)  # L/R caudate, putamen (MUSE numbering)
    striatum = np.isin(lab, left_ids + right_ids)
    k = int(np.argmax(striatum.sum(axis=(0, 1))))
    sl = lab[:, :, k]
    activity = np.where(sl > 0, 1.0, 0.0) + 4.0 * np.isin(sl, left_ids + right_ids)
    img = ndimage.gaussian_filter(activity, 1.0)
    seg = M.segment_basal_ganglia(img, search_mask=np.isin(sl, left_ids + right_ids), fraction=0.5,
                                  dilate_px=2)
    truth_l, truth_r = np.isin(sl, left_ids), np.isin(sl, right_ids)
    d_l = M.dice(seg == 1, truth_l)
    d_r = M.dice(seg == 2, truth_r)
    assert d_l > 0.7 and d_r > 0.7, (d_l, d_r)
    # wrong-side overlap stays zero: the RAS split puts left labels in label 1
    assert not np.any((seg == 1) & truth_r) and not np.any((seg == 2) & truth_l)
    asp, dice_tab = M.basal_ganglia_agreement(img, img, search_mask=np.isin(sl, left_ids + right_ids))
    assert (asp["abs_difference"] == 0).all() and (dice_tab["dice"] == 1).all()
