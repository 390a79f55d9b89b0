"""Regional quantification (spectsynth.quant): SBR, asymmetry, ratios, on 3-D and 2-D data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spectsynth import quant
from spectsynth.labels import REFERENCE, STRIATUM, lookup


def _phantom_3d():
    """Label images and an image with known constant values per region."""
    shape = (20, 16, 12)
    stri = np.zeros(shape, np.int16)
    ref = np.zeros(shape, np.int16)
    stri[2:5, 4:8, 4:8] = lookup(STRIATUM, "caudate_L")
    stri[15:18, 4:8, 4:8] = lookup(STRIATUM, "caudate_R")
    stri[5:8, 8:12, 4:8] = lookup(STRIATUM, "putamen_L")
    stri[12:15, 8:12, 4:8] = lookup(STRIATUM, "putamen_R")
    stri[8:10, 8:12, 4:8] = lookup(STRIATUM, "pallidum_L")
    ref[5:15, 0:3, 2:10] = lookup(REFERENCE, "occipital")
    ref[5:15, 0:3, 0:2] = lookup(REFERENCE, "cerebellum")
    brain = np.zeros(shape, bool)
    brain[1:19, 0:15, 0:12] = True
    img = np.full(shape, 1.0)
    values = {"caudate_L": 4.0, "caudate_R": 3.0, "putamen_L": 2.5, "putamen_R": 2.0}
    for name, v in values.items():
        img[stri == lookup(STRIATUM, name)] = v
    img[ref == lookup(REFERENCE, "cerebellum")] = 1.25
    return img, stri, ref, brain, values


def test_sbr_formula_per_region_and_unions():
    img, stri, ref, brain, values = _phantom_3d()
    masks = quant.region_masks(stri, ref, brain)
    s = quant.sbr(img, masks, "occipital")
    for name, v in values.items():
        assert s[name] == pytest.approx(v - 1.0)
    # Unions are means over the union of voxels (equal sizes here -> mean of the sides).
    assert s["caudate"] == pytest.approx((3.0 + 2.0) / 2)
    assert s["striatum_L"] == pytest.approx((3.0 + 1.5) / 2)
    assert s["striatum"] == pytest.approx((3.0 + 2.0 + 1.5 + 1.0) / 4)


def test_reference_choices_change_the_denominator():
    img, stri, ref, brain, _ = _phantom_3d()
    masks = quant.region_masks(stri, ref, brain)
    cer = quant.sbr(img, masks, "cerebellum")
    assert cer["caudate_L"] == pytest.approx((4.0 - 1.25) / 1.25)
    whole = quant.sbr(img, masks, "brain_minus_striatum")
    bms = brain & (stri == 0)
    ref_mean = img[bms].mean()
    assert whole["putamen_R"] == pytest.approx((2.0 - ref_mean) / ref_mean)
    # The pallidum is part of "striatum labels > 0" removed from the brain reference.
    assert not np.any(masks["brain_minus_striatum"] & (stri == lookup(STRIATUM, "pallidum_L")))
    with pytest.raises(quant.QuantError, match="unknown reference"):
        quant.sbr(img, masks, "frontal")


def test_quantify_dat_asymmetry_and_pc_ratio():
    img, stri, ref, brain, _ = _phantom_3d()
    q = quant.quantify_labels(img, stri, ref, brain)
    assert q["ai_caudate"] == pytest.approx(100 * abs(3.0 - 2.0) / 2.5)
    assert q["ai_putamen"] == pytest.approx(100 * 0.5 / 1.25)
    assert q["pc_ratio_L"] == pytest.approx(1.5 / 3.0)
    assert q["pc_ratio"] == pytest.approx(1.25 / 2.5)
    assert q["reference_mean"] == pytest.approx(1.0)
    assert quant.asymmetry_index(2.0, 2.0) == 0.0
    assert math.isnan(quant.asymmetry_index(1.0, -1.0))


def test_two_dimensional_slices_and_missing_regions():
    img, stri, ref, brain, values = _phantom_3d()
    k = 5
    q2 = quant.quantify_labels(img[:, :, k], stri[:, :, k], ref[:, :, k], brain[:, :, k])
    assert q2["sbr_putamen_L"] == pytest.approx(values["putamen_L"] - 1.0)
    # A slice without striatum: an error by default, NaN on request.
    k = 9
    with pytest.raises(quant.QuantError, match="caudate_L.*empty"):
        quant.quantify_labels(img[:, :, k], stri[:, :, k], ref[:, :, k])
    q = quant.quantify_labels(img[:, :, k], stri[:, :, k], ref[:, :, k], missing="nan")
    assert math.isnan(q["sbr_caudate_L"]) and math.isnan(q["ai_putamen"])


def test_weights_equal_nearest_neighbour_upsampling():
    """Partial-volume weights on a coarse grid == plain mean over the fine label."""
    rng = np.random.default_rng(0)
    fine_label = np.zeros((16, 16, 8), bool)
    fine_label[3:11, 5:9, 2:7] = True
    coarse_img = rng.uniform(1, 5, (8, 8, 4))
    weights = fine_label.reshape(8, 2, 8, 2, 4, 2).mean(axis=(1, 3, 5))
    upsampled = coarse_img.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    assert quant.weighted_mean(coarse_img, weights) == pytest.approx(upsampled[fine_label].mean())


def test_grey_white_ratio_and_core_masks_2d_3d():
    gm = np.zeros((40, 40), np.float32)
    wm = np.zeros((40, 40), np.float32)
    gm[:, :15] = 1.0
    wm[:, 25:] = 1.0
    gm[:, 15:25] = 0.5
    wm[:, 15:25] = 0.5
    img = 3.0 * gm + 1.0 * wm
    g, w = quant.tissue_core_masks(gm, wm, 1.0)
    assert g.any() and w.any()
    assert not np.any(g & (gm < 0.5)) and not np.any(w & (wm < 0.5))
    # Core masks leave out the mixed band, the WM core also its neighbourhood.
    assert not g[:, 15:].any() and not w[:, :28].any() and w[10:30, 28:36].all()
    assert quant.grey_white_ratio(img, g, w) == pytest.approx(3.0)
    g3, w3 = quant.tissue_core_masks(np.repeat(gm[..., None], 30, 2), np.repeat(wm[..., None], 30, 2), (1, 1, 2))
    assert g3.shape == (40, 40, 30) and w3[:, :, 15].any() and not w3[:, :, 0].any()


def test_bad_inputs_raise_clear_errors():
    img = np.ones((4, 4, 4))
    with pytest.raises(quant.QuantError, match="shape"):
        quant.weighted_mean(img, np.ones((4, 4), bool))
    with pytest.raises(quant.QuantError, match="non-negative"):
        quant.weighted_mean(img, -np.ones((4, 4, 4)))
    stri = np.zeros((4, 4, 4), int)
    stri[0, 0, 0], stri[3, 0, 0], stri[0, 3, 0], stri[3, 3, 0] = 1, 2, 3, 4
    ref = np.zeros((4, 4, 4), int)
    ref[1:3, 1:3, 3] = 1
    with pytest.raises(quant.QuantError, match="positive reference"):
        quant.quantify_labels(np.zeros((4, 4, 4)), stri, ref)
    with pytest.raises(quant.QuantError, match="not among the masks"):
        quant.quantify_labels(img, stri, None, reference="cerebellum")
    with pytest.raises(ValueError, match="missing must be"):
        quant.weighted_mean(img, np.zeros((4, 4, 4), bool), missing="zero")
