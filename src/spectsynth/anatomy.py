"""Anatomy in each subject's space: striatum, reference regions, territories, tissues, levels.

Everything is computed on the subject's native grid (the 256 x 256 x 192, 1 mm grid of the
preprocessing stage) from atlases that installed packages ship (see
:mod:`spectsynth.resources`); nothing is downloaded.

Striatum (caudate, putamen, pallidum; left/right)
    The Neuromorphometrics labels (MICCAI 2012 challenge, CC BY-NC; the numbering MUSE and
    DLMUSE share) were not drawn on the nilearn MNI152 2009a template: its ventricles are
    smaller and its striatum sits a few millimetres off the template's, so carrying the labels
    through a T1w-to-MNI152 registration is limited to a Dice of about 0.77 on real T1s,
    whatever the registration.  The labels are therefore carried by registrations to an image
    made *from the atlas itself* (a synthetic T1 contrast: white matter bright, grey matter
    mid, CSF dark), so atlas and template share one source:

    1. a global affine (12 dof) of the subject's brain to that synthetic image, initialised from
       the T1w-to-MNI152 affine;
    2. one local affine per hemisphere, each restricted to that side's caudate, putamen,
       pallidum and lateral ventricle (grown by ``local_margin_mm``), which absorbs the local
       shift of the striatum caused by the subject's own (often asymmetric) ventricles; a local
       affine that moves the striatum more than ``max_local_shift_mm`` is rejected;
    3. an intensity-based refinement in the subject's own T1w: the propagated labels, slightly
       smoothed, are the spatial prior of a Gaussian mixture (one Gaussian per structure and
       per surrounding tissue class: white matter, CSF, other grey matter, outside the brain)
       fitted by expectation-maximisation within ``roi_margin_mm`` of the atlas striatum, with a
       mean-field neighbourhood term; each voxel takes its most probable label.  One
       caudate/CSF partial-volume class per side (``partial_volume``) holds the voxels that
       mix caudate and ventricle: its mean and variance follow from the two pure classes
       (uniform mixing fraction), its prior is the geometric mean of theirs, and its voxels
       are labelled caudate.  Without it, the border of the caudate with the lateral
       ventricle -- darker than the tight caudate Gaussian allows at 1-2 mm -- went to CSF,
       and the caudate came out 10-20 % too small.

    Measured on three real IXI T1s against DLMUSE reference labels (benchmark script
    ``benchmarks/bench_preprocess.py``), the mean caudate/putamen Dice goes from 0.77 (atlas
    through the MNI152 affine) to 0.79 (step 1), 0.84 (step 2) and 0.89 (step 3; 0.86 without
    the partial-volume classes, the caudate 0.82 against 0.88 with them).  Tried and
    dropped: demons and B-spline non-linear registration of the subject to the MNI152 template
    or to the synthetic atlas image (0.60-0.79: they align intensities, not the atlas's
    boundaries); one local affine for both sides (0.83 before refinement, 0.855 after).

Reference regions
    ``occipital``: calcarine cortex, cuneus, lingual gyrus, occipital pole, inferior, middle and
    superior occipital gyri and occipital fusiform gyrus of the Neuromorphometrics atlas (both
    sides).  ``cerebellum``: cerebellar cortex and white matter (both sides) and the vermal
    lobules I-X.  "Whole brain minus striatum" is the brain mask minus the striatum labels.

Vascular territories (ACA, MCA, PCA; left/right)
    Cortical and deep Neuromorphometrics regions are grouped by their main arterial supply
    (:data:`TERRITORY_GROUPS`); cerebral white matter, which the atlas does not split, takes
    the territory of the nearest grouped grey-matter voxel of the same hemisphere.  Cerebellum,
    brainstem, ventricles and CSF belong to no territory (label 0).  This is a simplification
    of the variable watershed borders (e.g. the caudate head is partly ACA-supplied, the
    posterior inferior temporal gyrus partly PCA-supplied); it is meant for simulating
    territorial perfusion defects, not for clinical use.

Tissues (GM, WM, CSF probability maps)
    The nilearn MNI152 2009a GM and WM probability maps, carried by the T1w-to-MNI152 affine
    and smoothed, are the priors of a three-class Gaussian mixture fitted by EM to the T1w
    intensities inside the brain mask.  The CSF prior is derived, since nilearn ships none:
    ``clip(1 - GM - WM, 0, 1)`` inside the brain mask.

Slice levels (S1's CER, BG, COR)
    Axial slices of the native grid (third voxel axis, inferior to superior): ``CER`` where the
    cerebellum's cross-section is at least ``level_fraction`` of its largest one; ``BG`` the
    same for caudate + putamen; ``COR`` from ``cortex_margin_mm`` above the top of the lateral
    ventricles to the highest slice whose brain cross-section is still ``level_fraction`` of the
    largest brain cross-section.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage as ndi

from .config import CORE_FRAGMENT, core_defaults, declared
from .errors import ConfigError, ProcessingError
from .io import save_image, write_json, write_table, write_text
from .labels import LEVELS, REFERENCE, STRIATUM, TERRITORIES, TISSUES, dseg_tsv
from .preprocess.register import (
    Grid,
    RegistrationSettings,
    crop_to_mask,
    downsample,
    image_on_grid,
    load_transform,
    register,
    resample,
    save_transform_pair,
    to_sitk,
)
from .resources import resource_path

log = logging.getLogger(__name__)

ATLASES = ("neuromorphometrics",)
LOCAL_MODES: tuple[str, ...] = tuple(declared(CORE_FRAGMENT, "anatomy.local_affine")["enum"])

# Neuromorphometrics numbers of the structures of labels.STRIATUM (same order).
NMM_STRIATUM = {1: 37, 2: 36, 3: 58, 4: 57, 5: 56, 6: 55}
NMM_LATERAL_VENTRICLES = (51, 52)
NMM_WHITE_MATTER = (35, 40, 41, 44, 45, 61, 62, 69)
NMM_CSF = (4, 11, 46, 49, 50, 51, 52)
NMM_THALAMUS = (59, 60)
NMM_CEREBELLUM = (38, 39, 40, 41, 71, 72, 73)
NMM_OCCIPITAL_ABBR = ("Calc", "Cun", "IOG", "LiG", "MOG", "OCP", "OFuG", "SOG")
NMM_CEREBRAL_WM = {"Right": 44, "Left": 45}

#: Which Neuromorphometrics region (abbreviation or structure name after ``Right_``/``Left_``)
#: goes to which vascular territory.  White matter takes the nearest territory of its side.
TERRITORY_GROUPS: dict[str, tuple[str, ...]] = {
    "ACA": ("ACgG", "MCgG", "MFC", "MSFG", "SFG", "SMC", "MPrG", "MPoG", "PCu", "GRe", "MOrG",
            "SCA", "FRP", "Basal_Forebrain"),
    "MCA": ("AIns", "PIns", "AOrG", "LOrG", "POrG", "FO", "CO", "PO", "OpIFG", "TrIFG", "OrIFG",
            "MFG", "PrG", "PoG", "SMG", "AnG", "SPL", "STG", "MTG", "ITG", "TMP", "PP", "PT", "TTG",
            "Amygdala", "Caudate", "Putamen", "Pallidum", "Accumbens_Area"),
    "PCA": ("Calc", "Cun", "LiG", "OCP", "IOG", "SOG", "MOG", "OFuG", "FuG", "PHG", "Ent", "PCgG",
            "Hippocampus", "Thalamus_Proper"),
}


# The declared options (options.yaml); the fields take their defaults from them.
_DECLARED = core_defaults("anatomy")


@dataclass
class AnatomySettings:
    """Settings of the anatomy stage (the config's ``anatomy`` section)."""

    atlas: str = _DECLARED["atlas"]
    refine_striatum: bool = _DECLARED["refine_striatum"]
    local_affine: str = _DECLARED["local_affine"]
    local_margin_mm: float = _DECLARED["local_margin_mm"]
    max_local_shift_mm: float = _DECLARED["max_local_shift_mm"]
    local_levels: int = _DECLARED["local_levels"]
    local_sampling_fraction: float = _DECLARED["local_sampling_fraction"]
    prior_sigma_mm: float = _DECLARED["prior_sigma_mm"]
    em_iterations: int = _DECLARED["em_iterations"]
    mrf_strength: float = _DECLARED["mrf_strength"]
    roi_margin_mm: float = _DECLARED["roi_margin_mm"]
    partial_volume: bool = _DECLARED["partial_volume"]
    partial_volume_weight: float = _DECLARED["partial_volume_weight"]
    tissue_prior_sigma_mm: float = _DECLARED["tissue_prior_sigma_mm"]
    tissue_em_iterations: int = _DECLARED["tissue_em_iterations"]
    level_fraction: float = _DECLARED["level_fraction"]
    cortex_margin_mm: float = _DECLARED["cortex_margin_mm"]

    @classmethod
    def from_config(cls, cfg: dict | None) -> AnatomySettings:
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"anatomy: unknown keys {sorted(unknown)}; known: "
                              f"{sorted(cls.__dataclass_fields__)}")
        out = cls(**cfg)
        if out.local_affine not in LOCAL_MODES:
            raise ConfigError(f"anatomy.local_affine: {out.local_affine!r} is not one of {LOCAL_MODES}")
        if out.atlas not in ATLASES:
            raise ConfigError(f"anatomy.atlas: {out.atlas!r} is not one of {ATLASES}")
        if not 0 < out.level_fraction < 1:
            raise ConfigError("anatomy.level_fraction must be between 0 and 1")
        if out.local_levels not in (1, 2):
            raise ConfigError(f"anatomy.local_levels must be 1 or 2, not {out.local_levels}")
        if not 0 < out.local_sampling_fraction <= 1:
            raise ConfigError("anatomy.local_sampling_fraction must be in (0, 1]")
        if not out.partial_volume_weight > 0:
            raise ConfigError(f"anatomy.partial_volume_weight must be > 0, not {out.partial_volume_weight}; "
                              "to switch the partial-volume classes off set anatomy.partial_volume: false")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# atlas-space resources (computed once per process)
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def atlas_labels() -> tuple[nib.Nifti1Image, dict[int, str]]:
    """The Neuromorphometrics label image and its ``{number: name}`` table."""
    img = nib.load(str(resource_path("atlas_neuromorphometrics")))
    table = pd.read_csv(resource_path("labels_neuromorphometrics"))
    names = {int(i): str(n) for i, n in zip(table["index"], table["name"])}
    data = np.asanyarray(img.dataobj).astype(np.int16)
    out = nib.Nifti1Image(data, img.affine)
    return out, names


def _split_name(name: str) -> tuple[str | None, str]:
    """``Right_ACgG_anterior_cingulate_gyrus`` -> (``Right``, ``ACgG``); ``Right_Thalamus_Proper``
    -> (``Right``, ``Thalamus_Proper``).

    Cortical names are ``<side>_<abbreviation>_<lower-case description>``; subcortical ones
    are ``<side>_<Capitalised_Words>``.
    """
    for side in ("Right", "Left"):
        if name.startswith(side + "_"):
            parts = name[len(side) + 1:].split("_")
            if len(parts) > 1 and parts[1].islower():
                return side, parts[0]
            return side, "_".join(parts)
    return None, name


def _lut(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    lut = np.zeros(size, dtype=np.int16)
    for k, v in mapping.items():
        lut[k] = v
    return lut


@functools.lru_cache(maxsize=1)
def synthetic_atlas_image() -> sitk.Image:
    """A T1-like image drawn from the atlas labels (the fixed image of the atlas registration).

    WM 1.0, pallidum 0.85, thalamus 0.8, caudate/putamen 0.65, other grey matter 0.6,
    CSF 0.2, outside the brain 0, smoothed by 0.7 voxel to soften the label edges.
    """
    img, _ = atlas_labels()
    data = np.asanyarray(img.dataobj)
    lut = np.full(256, 0.6, dtype=np.float32)
    lut[0] = 0.0
    lut[list(NMM_WHITE_MATTER)] = 1.0
    lut[list(NMM_CSF)] = 0.2
    lut[[55, 56]] = 0.85
    lut[list(NMM_THALAMUS)] = 0.8
    lut[[36, 37, 57, 58]] = 0.65
    synth = ndi.gaussian_filter(lut[data], 0.7)
    return to_sitk(nib.Nifti1Image(synth.astype(np.float32), img.affine))


# Neuromorphometrics structures that steer the local affine of each side.
LOCAL_STRUCTURES = {"L": (37, 58, 56, 52), "R": (36, 57, 55, 51)}


@functools.lru_cache(maxsize=8)
def _local_mask(margin_mm: float, side: str | None = None) -> sitk.Image:
    """Atlas-space mask of the deep grey matter and lateral ventricles (one side or both)."""
    img, _ = atlas_labels()
    data = np.asanyarray(img.dataobj)
    labels = LOCAL_STRUCTURES[side] if side else LOCAL_STRUCTURES["L"] + LOCAL_STRUCTURES["R"]
    deep = np.isin(data, labels)
    vox = np.linalg.norm(img.affine[:3, :3], axis=0)
    dist = ndi.distance_transform_edt(~deep, sampling=vox)
    return to_sitk(nib.Nifti1Image((dist <= margin_mm).astype(np.uint8), img.affine), None)


def territory_atlas_lut() -> dict[int, int]:
    """Neuromorphometrics number -> :data:`labels.TERRITORIES` number of the grouped regions."""
    _, names = atlas_labels()
    out: dict[int, int] = {}
    for number, name in names.items():
        side, key = _split_name(name)
        if side is None:
            continue
        for terr, keys in TERRITORY_GROUPS.items():
            if key in keys:
                out[number] = _territory_number(terr, side)
    return out


def _territory_number(terr: str, side: str) -> int:
    name = f"{terr}_{'L' if side == 'Left' else 'R'}"
    for k, v in TERRITORIES.items():
        if v == name:
            return k
    raise KeyError(name)


@functools.lru_cache(maxsize=1)
def territory_atlas() -> nib.Nifti1Image:
    """Vascular territories on the atlas grid (grey matter grouped, white matter by proximity)."""
    img, _ = atlas_labels()
    data = np.asanyarray(img.dataobj)
    terr = _lut(territory_atlas_lut())[data]
    vox = np.linalg.norm(img.affine[:3, :3], axis=0)
    for side, wm in NMM_CEREBRAL_WM.items():
        side_labels = [k for k, v in TERRITORIES.items() if v.endswith("_L" if side == "Left" else "_R")]
        seeds = np.isin(terr, side_labels)
        _, idx = ndi.distance_transform_edt(~seeds, sampling=vox, return_indices=True)
        sel = data == wm
        terr[sel] = terr[tuple(i[sel] for i in idx)]
    return nib.Nifti1Image(terr.astype(np.int16), img.affine)


def reference_atlas_lut() -> dict[int, int]:
    """Neuromorphometrics number -> :data:`labels.REFERENCE` number."""
    _, names = atlas_labels()
    out = {n: 2 for n in NMM_CEREBELLUM}
    for number, name in names.items():
        side, key = _split_name(name)
        if side is not None and key in NMM_OCCIPITAL_ABBR:
            out[number] = 1
    return out


# --------------------------------------------------------------------------------------------
# registration to the atlas
# --------------------------------------------------------------------------------------------
def _striatum_centre(side: str | None) -> np.ndarray:
    img, _ = atlas_labels()
    labels = LOCAL_STRUCTURES[side][:3] if side else LOCAL_STRUCTURES["L"][:3] + LOCAL_STRUCTURES["R"][:3]
    ijk = np.argwhere(np.isin(np.asanyarray(img.dataobj), labels)).mean(0)
    return (img.affine @ np.r_[ijk, 1.0])[:3] * np.array([-1.0, -1.0, 1.0])  # LPS


def register_atlas(t1_brain: nib.Nifti1Image, template_transform: sitk.Transform, *,
                   settings: AnatomySettings, registration: RegistrationSettings,
                   subject: str | None = None) -> dict:
    """Global then local (striatal) affines of the subject's brain to the synthetic atlas image.

    Returns ``{"global": result, "L": result, "R": result, "local_qc": {...}}``; every
    transform maps atlas points to subject points (the direction that pulls atlas labels into
    the subject).  With ``local_affine: hemisphere`` each side has its own local affine; with
    ``joint`` both sides share one; with ``none`` both are the global affine.  A local affine
    that moves the striatum more than ``max_local_shift_mm`` from where the global affine put
    it is rejected (the global one is used, and the QC says so).
    """
    fixed = synthetic_atlas_image()
    # the atlas is drawn at 1.5 mm: a finer moving image only costs smoothing time at each level
    moving = downsample(to_sitk(t1_brain), 1.5)
    glob_settings = RegistrationSettings(**{**registration.as_dict(), "resolution_mm": 2.0,
                                            "shrink_factors": (2, 1), "smoothing_sigmas": (1.0, 0.0)})
    glob = register(fixed, moving, dof=12, settings=glob_settings, initial=template_transform,
                    subject=subject, what="affine registration to the atlas")
    out: dict = {"global": glob, "L": glob, "R": glob, "local_qc": {}}
    if settings.local_affine == "none":
        return out
    # started from the global affine, a local affine needs no coarse level of its own
    levels = ((2, 1.0), (1, 0.0))[-settings.local_levels:]
    local_settings = RegistrationSettings(**{
        **registration.as_dict(), "resolution_mm": 0.0,
        "sampling_fraction": settings.local_sampling_fraction, "learning_rate": 0.5,
        "shrink_factors": tuple(f for f, _ in levels), "smoothing_sigmas": tuple(g for _, g in levels),
        "require_convergence": False})
    sides = ("L", "R") if settings.local_affine == "hemisphere" else (None,)
    for side in sides:
        res = register(fixed, moving, dof=12, settings=local_settings, initial=glob.transform,
                       fixed_mask=_local_mask(float(settings.local_margin_mm), side), subject=subject,
                       what=f"local affine registration of the {'left' if side == 'L' else 'right' if side else ''} striatum")
        centre = _striatum_centre(side)
        shift = float(np.linalg.norm(np.asarray(res.transform.TransformPoint(tuple(centre)))
                                     - np.asarray(glob.transform.TransformPoint(tuple(centre)))))
        accepted = shift <= settings.max_local_shift_mm
        if not accepted:
            log.warning("subject %s: local affine (%s) moved the striatum by %.1f mm (> %.1f mm); "
                        "using the global affine there", subject, side or "both", shift,
                        settings.max_local_shift_mm)
        for key in ((side,) if side else ("L", "R")):
            out[key] = res if accepted else glob
            out["local_qc"][key] = {**res.summary(), "shift_mm": round(shift, 2), "accepted": accepted}
    return out


# --------------------------------------------------------------------------------------------
# label propagation and EM refinement
# --------------------------------------------------------------------------------------------
def _pull_labels(grid: Grid, transform: sitk.Transform) -> np.ndarray:
    """Atlas labels on ``grid`` (nearest neighbour) through ``transform`` (grid pts -> atlas pts)."""
    img, _ = atlas_labels()
    out = resample(img, grid, [transform], interpolation="nearest", dtype=np.int16)
    return np.asanyarray(out.dataobj)


def _striatum_indices(grid: Grid, transform: sitk.Transform) -> np.ndarray:
    """Voxel indices (float) on ``grid`` of the atlas striatum carried into the subject.

    ``transform`` maps subject points to atlas points; it is inverted (affine) to map the
    atlas striatum's voxel centres into the subject, which is far cheaper than resampling the
    whole label image.
    """
    img, _ = atlas_labels()
    ijk = np.argwhere(np.isin(np.asanyarray(img.dataobj), list(NMM_STRIATUM.values())))
    world = (img.affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    lps = world * np.array([-1.0, -1.0, 1.0])
    inv = transform.GetInverse()
    subj = np.array([inv.TransformPoint(tuple(p)) for p in lps[::4]]) * np.array([-1.0, -1.0, 1.0])
    vox = (np.linalg.inv(grid.affine) @ np.c_[subj, np.ones(len(subj))].T).T[:, :3]
    return np.round(vox).astype(int)


def _sub_grid(grid: Grid, lo: np.ndarray, hi: np.ndarray) -> Grid:
    affine = grid.affine.copy()
    affine[:3, 3] = (grid.affine @ np.r_[lo, 1.0])[:3]
    return Grid(tuple(int(v) for v in (hi - lo)), affine)


def _striatum_classes(data: np.ndarray) -> np.ndarray:
    """Atlas numbers -> EM classes: 0-5 striatum (STRIATUM order), 6 WM, 7 CSF, 8 outside, 9 other GM."""
    c = np.full(data.shape, 9, dtype=np.int8)
    for i, k in enumerate(NMM_STRIATUM.values()):
        c[data == k] = i
    c[np.isin(data, NMM_WHITE_MATTER)] = 6
    c[np.isin(data, NMM_CSF)] = 7
    c[data == 0] = 8
    return c


N_CLASSES = 10


@functools.lru_cache(maxsize=1)
def _class_onehots() -> list[sitk.Image]:
    img, _ = atlas_labels()
    classes = _striatum_classes(np.asanyarray(img.dataobj))
    return [to_sitk(nib.Nifti1Image((classes == k).astype(np.float32), img.affine))
            for k in range(N_CLASSES)]


def _posterior(x: np.ndarray, prior: np.ndarray, mu: np.ndarray, var: np.ndarray,
               extra: np.ndarray | None = None) -> np.ndarray:
    loglik = -0.5 * (x[:, None] - mu) ** 2 / var - 0.5 * np.log(var)
    if extra is not None:
        loglik = loglik + extra
    loglik -= loglik.max(1, keepdims=True)
    post = prior * np.exp(loglik)
    post /= post.sum(1, keepdims=True)
    return post


def _pv_params(mu: np.ndarray, var: np.ndarray, pairs: tuple[tuple[int, int], ...]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Means and variances of the partial-volume classes of ``pairs`` of pure classes.

    A voxel that holds a fraction ``f`` of class ``a`` and ``1 - f`` of class ``b``, ``f``
    uniform on [0, 1], has mean ``(mu_a + mu_b) / 2`` and variance
    ``(var_a + var_b) / 2 + (mu_a - mu_b)**2 / 12`` (noise plus the spread of the mixing).
    """
    if not pairs:
        return mu, var
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    pv_mu = 0.5 * (mu[a] + mu[b])
    pv_var = 0.5 * (var[a] + var[b]) + (mu[a] - mu[b]) ** 2 / 12.0
    return np.r_[mu, pv_mu], np.r_[var, pv_var]


def _merge_pv(post: np.ndarray, pairs: tuple[tuple[int, int], ...], into: tuple[int, ...]) -> np.ndarray:
    """Posterior of the pure classes, each partial-volume class added to its ``into`` class."""
    k = post.shape[1] - len(pairs)
    out = post[:, :k].copy()
    for j, c in enumerate(into):
        out[:, c] += post[:, k + j]
    return out


def _em(x: np.ndarray, prior: np.ndarray, iterations: int, mrf: float = 0.0,
        neighbours=None, pv_pairs: tuple[tuple[int, int], ...] = (),
        pv_into: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-mixture EM with a voxel-wise prior.

    Returns the posterior ``(n, k)`` and the class means and variances.  With ``mrf > 0`` a
    mean-field term ``mrf * neighbours(posterior)`` (the class frequencies around each voxel)
    is added to the log-likelihood at every iteration.

    ``pv_pairs`` adds one partial-volume class per pair ``(a, b)`` of pure classes: the last
    ``len(pv_pairs)`` columns of ``prior`` are their priors; their means and variances are
    not fitted but follow from those of ``a`` and ``b`` (:func:`_pv_params`), and the pure
    classes are fitted on the pure posteriors only.  The returned posterior has the pure
    classes only, each partial-volume class added to its ``pv_into`` class (the label it
    takes), and so has ``neighbours`` its argument.
    """
    n_pv = len(pv_pairs)
    if len(pv_into) != n_pv:
        raise ValueError("pv_into needs one target class per partial-volume pair")
    k = prior.shape[1] - n_pv
    w = prior[:, :k]
    var_floor = 1e-3 * float(x.var()) + 1e-12
    post = prior
    mu = var = None
    for _ in range(max(1, iterations)):
        wsum = w.sum(0) + 1e-12
        mu = (w * x[:, None]).sum(0) / wsum
        var = (w * (x[:, None] - mu) ** 2).sum(0) / wsum + var_floor
        mu_all, var_all = _pv_params(mu, var, pv_pairs)
        post = _posterior(x, prior, mu_all, var_all)
        if mrf > 0 and neighbours is not None:
            nb = neighbours(_merge_pv(post, pv_pairs, pv_into))
            if n_pv:  # a partial-volume class has the neighbourhood of the label it takes
                nb = np.concatenate([nb, nb[:, list(pv_into)]], 1)
            post = _posterior(x, prior, mu_all, var_all, mrf * nb)
        w = post[:, :k]
    return _merge_pv(post, pv_pairs, pv_into), mu, var


# EM classes of each side (STRIATUM order: caudate, putamen, pallidum)
_SIDE_CLASSES = {"L": (0, 2, 4), "R": (1, 3, 5)}

#: Partial-volume classes of the striatum refinement: (structure, neighbour) pairs of EM
#: classes; a voxel of the pair's partial-volume class is labelled as the structure.  The
#: caudate lines the lateral ventricle, and at the 1-2 mm of clinical T1s its border voxels
#: are caudate/CSF mixtures darker than either pure class's Gaussian allows.
PV_PAIRS: tuple[tuple[int, int], ...] = ((0, 7), (1, 7))


def segment_striatum(t1: nib.Nifti1Image, mask: nib.Nifti1Image,
                     transforms: sitk.Transform | dict[str, sitk.Transform], *,
                     settings: AnatomySettings, subject: str | None = None) -> tuple[np.ndarray, dict]:
    """Striatum labels (labels.STRIATUM numbering) on the grid of ``t1``.

    ``transforms`` maps the subject's points to atlas points: one transform, or one per side
    (``{"L": ..., "R": ...}``), in which case each side's structures take their prior from their
    own transform and the surrounding tissues the mean of both.  Returns the label array and
    numbers for the QC table.
    """
    if not isinstance(transforms, dict):
        transforms = {"L": transforms, "R": transforms}
    grid = Grid.of(t1)
    vox = np.asarray(grid.spacing)
    # the ROI: bounding box of the propagated striatum, grown by the prior smoothing + margin
    idx = np.concatenate([_striatum_indices(grid, transforms[side]) for side in ("L", "R")])
    pad = np.ceil((settings.roi_margin_mm + 3 * settings.prior_sigma_mm) / vox).astype(int) + 2
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, grid.shape)
    if np.any(hi <= lo):
        raise ProcessingError("the atlas striatum does not land inside the subject's image after "
                              "registration to the atlas", subject=subject,
                              hint="Check the registration QC figure of this subject")
    sub = _sub_grid(grid, lo, hi)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))

    def pulled(tx: sitk.Transform) -> np.ndarray:
        return np.stack([np.asanyarray(resample(oh, sub, [tx], interpolation="linear",
                                                default=1.0 if k == 8 else 0.0).dataobj)
                         for k, oh in enumerate(_class_onehots())], axis=-1)

    if transforms["L"] is transforms["R"]:
        prior = pulled(transforms["L"])
    else:
        p_left, p_right = pulled(transforms["L"]), pulled(transforms["R"])
        prior = 0.5 * (p_left + p_right)
        for side, p in (("L", p_left), ("R", p_right)):
            for k in _SIDE_CLASSES[side]:
                prior[..., k] = p[..., k]
    if settings.prior_sigma_mm > 0:
        sig = settings.prior_sigma_mm / vox
        prior = np.stack([ndi.gaussian_filter(prior[..., k], sig) for k in range(N_CLASSES)], -1)
    prior = np.clip(prior, 1e-4, None)
    prior /= prior.sum(-1, keepdims=True)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    sub_labels = np.zeros(sub.shape, dtype=np.uint8)
    m = np.asanyarray(mask.dataobj)[sl] > 0
    if not settings.refine_striatum:
        best = np.argmax(prior, -1)
        for i, k in enumerate(STRIATUM):
            sub_labels[(best == i) & m] = k
        labels[sl] = sub_labels
        return labels, {"em": False}
    near = ndi.distance_transform_edt(prior[..., :6].sum(-1) <= 0.01, sampling=vox) <= settings.roi_margin_mm
    roi = near & m
    x = np.asanyarray(t1.dataobj)[sl][roi].astype(np.float32)
    scale = float(np.percentile(x, 99)) or 1.0
    x = x / np.float32(scale)
    pr = prior[roi]
    pairs = PV_PAIRS if settings.partial_volume else ()
    if pairs:
        # a partial-volume class is likely where both of its pure classes are
        pv = np.stack([settings.partial_volume_weight * np.sqrt(pr[:, a] * pr[:, b]) for a, b in pairs], 1)
        pr = np.concatenate([pr, pv], 1)
        pr /= pr.sum(1, keepdims=True)

    def neighbours(post: np.ndarray) -> np.ndarray:
        full = np.zeros(sub.shape + (N_CLASSES,), dtype=np.float32)
        full[roi] = post
        return np.stack([ndi.uniform_filter(full[..., k], 3) for k in range(N_CLASSES)], -1)[roi]

    post, _, _ = _em(x, pr, settings.em_iterations, settings.mrf_strength, neighbours,
                     pv_pairs=pairs, pv_into=tuple(a for a, _ in pairs))
    best = np.argmax(post, 1)
    roi_labels = np.zeros(best.shape, dtype=np.uint8)
    for i, k in enumerate(STRIATUM):
        roi_labels[best == i] = k
    sub_labels[roi] = roi_labels
    labels[sl] = sub_labels
    info = {"em": True, "roi_voxels": int(roi.sum()),
            "class_means": [round(float(v), 4) for v in
                            ((post * x[:, None]).sum(0) / (post.sum(0) + 1e-12))]}
    return labels, info


def tissue_probabilities(t1: nib.Nifti1Image, mask: nib.Nifti1Image, template_transform: sitk.Transform,
                         *, settings: AnatomySettings) -> dict[str, np.ndarray]:
    """GM/WM/CSF probability maps on the grid of ``t1`` (zero outside the brain mask).

    ``template_transform`` maps the subject's points to MNI152 points.
    """
    grid = Grid.of(t1)
    m_full = np.asanyarray(mask.dataobj) > 0
    idx = np.argwhere(m_full)
    lo = np.maximum(idx.min(0) - 1, 0)
    hi = np.minimum(idx.max(0) + 2, grid.shape)
    sub = _sub_grid(grid, lo, hi)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    m = m_full[sl]
    vox = np.asarray(grid.spacing)
    priors = []
    for name in ("mni152_gm", "mni152_wm"):
        img = nib.load(str(resource_path(name)))
        p = np.asanyarray(resample(img, sub, [template_transform], interpolation="linear").dataobj) / 255.0
        if settings.tissue_prior_sigma_mm > 0:
            p = ndi.gaussian_filter(p, settings.tissue_prior_sigma_mm / vox)
        priors.append(np.clip(p, 0, 1))
    csf = np.clip(1.0 - priors[0] - priors[1], 0, 1)
    prior = np.stack([priors[0], priors[1], csf], -1)[m]
    prior = np.clip(prior, 1e-3, None)
    prior /= prior.sum(1, keepdims=True)
    x = np.asanyarray(t1.dataobj)[sl][m].astype(np.float64)
    x = x / (float(np.percentile(x, 99)) or 1.0)
    # fit the mixture on a regular subsample (every 7th voxel), then label every voxel once
    _, mu, var = _em(x[::7], prior[::7], settings.tissue_em_iterations)
    # float32 for the ~10^6 brain voxels (the fit above is float64): half the time, same labels
    post = _posterior(x.astype(np.float32), prior.astype(np.float32), mu.astype(np.float32),
                      var.astype(np.float32))
    out = {}
    for i, name in enumerate(TISSUES):
        full = np.zeros(grid.shape, dtype=np.float32)
        block = np.zeros(sub.shape, dtype=np.float32)
        block[m] = post[:, i]
        full[sl] = block
        out[name] = full
    return out


# --------------------------------------------------------------------------------------------
# slice levels
# --------------------------------------------------------------------------------------------
def slice_levels(striatum: np.ndarray, reference: np.ndarray, ventricles: np.ndarray,
                 mask: np.ndarray, affine: np.ndarray, *, fraction: float = 0.5,
                 cortex_margin_mm: float = 4.0, space: str = "T1w",
                 subject: str | None = None) -> pd.DataFrame:
    """S1's axial levels CER/BG/COR as slice ranges along the grid's third axis.

    Returns one row per level: ``z_start`` and ``z_stop`` (voxel indices along axis 2, stop
    exclusive, the contract of the simulation and dataset stages), the number of slices, the
    world z (mm) of the first and last slice centres, the space and the rule that placed it.
    """
    def band(area: np.ndarray, what: str) -> tuple[int, int]:
        if area.max() <= 0:
            raise ProcessingError(f"no {what} voxels on the grid; cannot place the {what} level",
                                  subject=subject, hint="Check the anatomy QC figure")
        keep = np.nonzero(area >= fraction * area.max())[0]
        return int(keep.min()), int(keep.max())

    z_mm = abs(float(affine[2, 2])) or 1.0
    cer = band((reference == 2).sum((0, 1)).astype(float), "cerebellum")
    bg = band(np.isin(striatum, (1, 2, 3, 4)).sum((0, 1)).astype(float), "caudate/putamen")
    brain_area = mask.sum((0, 1)).astype(float)
    vz = np.nonzero(ventricles.sum((0, 1)))[0]
    top_ventricle = int(vz.max()) if vz.size else bg[1]
    cor_first = top_ventricle + int(np.ceil(cortex_margin_mm / z_mm))
    above = np.nonzero(brain_area >= fraction * brain_area.max())[0]
    cor_last = int(above.max()) if above.size else cor_first
    if cor_last < cor_first:
        cor_first, cor_last = cor_last, cor_last
    rows = []
    defs = {
        "CER": f"cerebellum cross-section >= {fraction:g} x its maximum",
        "BG": f"caudate+putamen cross-section >= {fraction:g} x its maximum",
        "COR": f"{cortex_margin_mm:g} mm above the lateral ventricles up to brain cross-section "
               f">= {fraction:g} x its maximum",
    }
    for level, (a, b) in zip(LEVELS, (cer, bg, (cor_first, cor_last))):
        za = float((affine @ np.array([0, 0, a, 1.0]))[2])
        zb = float((affine @ np.array([0, 0, b, 1.0]))[2])
        rows.append({"level": level, "z_start": a, "z_stop": b + 1, "n_slices": b - a + 1,
                     "z_start_mm": round(za, 2), "z_last_mm": round(zb, 2), "space": space,
                     "definition": defs[level]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# the whole stage
# --------------------------------------------------------------------------------------------
@dataclass
class Anatomy:
    """All anatomy of one subject on its native grid."""

    grid: Grid
    striatum: np.ndarray
    reference: np.ndarray
    territories: np.ndarray
    tissues: dict[str, np.ndarray]
    levels: pd.DataFrame
    atlas_global: sitk.Transform
    atlas_local: dict[str, sitk.Transform]
    qc: dict


def build_anatomy(t1: nib.Nifti1Image, mask: nib.Nifti1Image, template_transform: sitk.Transform, *,
                  subject: str | None = None, settings: AnatomySettings | dict | None = None,
                  registration: RegistrationSettings | dict | None = None) -> Anatomy:
    """Compute every anatomy output of one subject.

    ``t1`` and ``mask`` are the subject's T1w (head or brain) and brain mask on the same grid
    (normally the native 256 x 256 x 192 grid).  ``template_transform`` is the T1w-to-MNI152
    affine as saved by the registration step (MNI152 points -> T1w points).
    """
    if not isinstance(settings, AnatomySettings):
        settings = AnatomySettings.from_config(settings)
    if not isinstance(registration, RegistrationSettings):
        registration = RegistrationSettings.from_config(registration)
    t_start = time.perf_counter()
    grid = Grid.of(t1)
    m = np.asanyarray(mask.dataobj) > 0
    brain = image_on_grid(np.where(m, np.asanyarray(t1.dataobj), 0).astype(np.float32), grid)
    t0 = time.perf_counter()
    regs = register_atlas(crop_to_mask(brain, mask), template_transform, settings=settings,
                          registration=registration, subject=subject)
    t_reg = time.perf_counter() - t0
    to_atlas_global = regs["global"].transform.GetInverse()
    to_atlas_local = {side: regs[side].transform.GetInverse() for side in ("L", "R")}
    if regs["L"] is regs["R"]:
        to_atlas_local["R"] = to_atlas_local["L"]
    t0 = time.perf_counter()
    striatum, em_info = segment_striatum(t1, mask, to_atlas_local, settings=settings, subject=subject)
    t_em = time.perf_counter() - t0
    t0 = time.perf_counter()
    nmm = _pull_labels(grid, to_atlas_global)
    reference = (_lut(reference_atlas_lut())[nmm] * m).astype(np.uint8)
    terr_img = resample(territory_atlas(), grid, [to_atlas_global], interpolation="nearest", dtype=np.int16)
    territories = (np.asanyarray(terr_img.dataobj) * m).astype(np.uint8)
    ventricles = np.isin(nmm, NMM_LATERAL_VENTRICLES)
    t_labels = time.perf_counter() - t0
    t0 = time.perf_counter()
    tissues = tissue_probabilities(t1, mask, template_transform.GetInverse(), settings=settings)
    t_tissue = time.perf_counter() - t0
    levels = slice_levels(striatum, reference, ventricles, m, grid.affine,
                          fraction=settings.level_fraction, cortex_margin_mm=settings.cortex_margin_mm,
                          subject=subject)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    qc = {
        "subject": subject,
        "atlas_global": regs["global"].summary(),
        "atlas_local": regs["local_qc"],
        "striatum_refinement": em_info,
        "volumes_ml": {name: round(float((striatum == k).sum()) * voxel_ml, 3)
                       for k, name in STRIATUM.items()},
        "seconds": {"atlas_registration": round(t_reg, 2), "striatum": round(t_em, 2),
                    "labels": round(t_labels, 2), "tissues": round(t_tissue, 2),
                    "total": round(time.perf_counter() - t_start, 2)},
        "settings": settings.as_dict(),
    }
    for k, name in STRIATUM.items():
        if not (striatum == k).any():
            raise ProcessingError(f"the {name} label is empty after refinement", subject=subject,
                                  hint="Check the anatomy QC figure; try anatomy.refine_striatum: false")
    return Anatomy(grid, striatum, reference, territories, tissues, levels, regs["global"].transform,
                   {side: regs[side].transform for side in ("L", "R")}, qc)


ANATOMY_OUTPUTS = ("striatum", "striatum_tsv", "reference", "reference_tsv", "territories",
                   "territories_tsv", "gm", "wm", "csf", "levels", "xfm_atlas", "xfm_atlas_inverse",
                   "xfm_striatum_L", "xfm_striatum_L_inverse", "xfm_striatum_R", "xfm_striatum_R_inverse",
                   "qc")


def write_anatomy(anatomy: Anatomy, paths: dict[str, str | Path]) -> None:
    """Write every output of :class:`Anatomy` to the paths named by :data:`ANATOMY_OUTPUTS`."""
    missing = [k for k in ANATOMY_OUTPUTS if k not in paths]
    if missing:
        raise ConfigError(f"write_anatomy: output paths missing for {missing}")
    g = anatomy.grid
    save_image(image_on_grid(anatomy.striatum.astype(np.uint8), g), paths["striatum"])
    write_text(dseg_tsv(STRIATUM), paths["striatum_tsv"])
    save_image(image_on_grid(anatomy.reference.astype(np.uint8), g), paths["reference"])
    write_text(dseg_tsv(REFERENCE), paths["reference_tsv"])
    save_image(image_on_grid(anatomy.territories.astype(np.uint8), g), paths["territories"])
    write_text(dseg_tsv(TERRITORIES), paths["territories_tsv"])
    for key, name in zip(("gm", "wm", "csf"), TISSUES):
        save_image(image_on_grid(anatomy.tissues[name].astype(np.float32), g), paths[key])
    write_table(anatomy.levels, paths["levels"], what="anatomy level table", allow_missing=True)
    save_transform_pair(anatomy.atlas_global, paths["xfm_atlas"], paths["xfm_atlas_inverse"])
    for side in ("L", "R"):
        save_transform_pair(anatomy.atlas_local[side], paths[f"xfm_striatum_{side}"],
                            paths[f"xfm_striatum_{side}_inverse"])
    write_json(anatomy.qc, paths["qc"])


def run_anatomy(t1_path: str | Path, mask_path: str | Path, template_xfm_path: str | Path,
                outputs: dict[str, str | Path], *, subject: str | None = None,
                settings: dict | None = None, registration: dict | None = None) -> dict:
    """File-level entry point of the anatomy stage (what the workflow rule calls)."""
    from .io import load_image

    t1 = load_image(t1_path, subject=subject, reorient=False)
    mask = load_image(mask_path, subject=subject, reorient=False, check_values=False)
    if t1.shape[:3] != mask.shape[:3] or not np.allclose(t1.affine, mask.affine, atol=1e-4):
        raise ProcessingError(f"{t1_path} and {mask_path} are not on the same grid", subject=subject,
                              hint="Rerun the register_native rule for this subject")
    anatomy = build_anatomy(t1, mask, load_transform(template_xfm_path), subject=subject,
                            settings=settings, registration=registration)
    write_anatomy(anatomy, outputs)
    log.info("subject %s: anatomy done in %.1f s", subject, anatomy.qc["seconds"]["total"])
    return anatomy.qc
