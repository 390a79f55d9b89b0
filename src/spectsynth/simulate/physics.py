"""Imaging physics: two paths behind one interface.

``ImageDomainPhysics`` (default, fast): activity on the fine grid -> 3-D Gaussian point
spread function of the system FWHM -> summed into the camera's voxels (box detector
response) -> a broad tail (scatter and septal penetration: a share ``tail_fraction`` of the
counts spread by a Gaussian of ``tail_fwhm_mm``) -> Poisson counts at a given total, with the
variance of the reconstruction (``noise_gain``: the reconstruction's noise variance over the
counting noise of the voxel; counts drawn at ``total / gain`` and scaled back) -> optional
Gaussian post-filter, which correlates the noise as a clinical post-filter does.

``ProjectionPhysics`` (realistic): PyTomography 3.4.0.  Activity summed into the camera
grid -> forward projection with attenuation (mu map from the head model) and the
distance-dependent collimator/detector response of a parallel-hole collimator -> Poisson
projections at a given total of detected counts -> OSEM with attenuation and PSF
modelling -> Gaussian post-filter.  PyTomography is imported only when this path is
used.  Optionally the per-view attenuation factors are computed once and kept
(``cache_attenuation``), which replaces PyTomography's recomputation in every forward and
back projection (same numbers, less time, more memory).

Both return float32 volumes on the camera grid in counts of the whole acquisition without
attenuation (the image-domain path has no attenuation; the projection path reconstructs
with attenuation correction), so their totals are comparable.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import types
import warnings
from abc import ABC, abstractmethod

import numpy as np
from scipy import ndimage

from ..errors import ConfigError
from .config import check_collimator
from .grid import PreparedAnatomy, block_sum, check_orbit

log = logging.getLogger(__name__)

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def gaussian(volume: np.ndarray, fwhm_mm: float, voxel_mm: float) -> np.ndarray:
    """Isotropic Gaussian filter of ``fwhm_mm`` (zero outside the volume)."""
    if fwhm_mm <= 0:
        return np.asarray(volume, dtype=np.float32)
    sigma = fwhm_mm * FWHM_TO_SIGMA / voxel_mm
    return ndimage.gaussian_filter(np.asarray(volume, dtype=np.float32), sigma, mode="constant", truncate=4.0)


class Physics(ABC):
    """One imaging chain: activity on the fine grid of ``prep`` -> image on its camera grid."""

    name: str = ""

    @abstractmethod
    def image(self, activity: np.ndarray, prep: PreparedAnatomy, *, total_counts: float,
              rng: np.random.Generator | None) -> np.ndarray:
        """Simulated image in counts; ``rng=None`` gives the noise-free (expected) image."""

    @abstractmethod
    def linear_response(self, activity: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        """A noise-free linear model of :meth:`image` (arbitrary scale), used for calibration."""

    @property
    def calibration_is_exact(self) -> bool:
        """True when :meth:`linear_response` is the expectation of :meth:`image` (up to scale)."""
        return False

    @abstractmethod
    def describe(self) -> dict:
        """The settings, for the ground-truth records."""


class ImageDomainPhysics(Physics):
    """Gaussian PSF, camera voxels, broad tail, Poisson counts (reconstruction variance), post-filter."""

    name = "image"

    def __init__(self, fwhm_mm: float, post_filter_fwhm_mm: float = 0.0, modality: str = "spect", *,
                 tail_fraction: float = 0.0, tail_fwhm_mm: float = 0.0, noise_gain: float = 1.0):
        if fwhm_mm < 0 or post_filter_fwhm_mm < 0 or tail_fwhm_mm < 0:
            raise ConfigError(f"FWHM must be >= 0 mm (got system {fwhm_mm}, post-filter {post_filter_fwhm_mm}, "
                              f"tail {tail_fwhm_mm})")
        if not 0.0 <= tail_fraction < 1.0:
            raise ConfigError(f"tail fraction must lie in [0, 1), got {tail_fraction}")
        if not noise_gain >= 1.0:
            raise ConfigError(f"noise gain must be >= 1 (1 = counting noise only), got {noise_gain}")
        self.fwhm_mm = float(fwhm_mm)
        self.post_filter_fwhm_mm = float(post_filter_fwhm_mm)
        self.modality = modality
        self.tail_fraction = float(tail_fraction)
        self.tail_fwhm_mm = float(tail_fwhm_mm)
        self.noise_gain = float(noise_gain)
        self.last_detected_counts = float("nan")

    @property
    def calibration_is_exact(self) -> bool:
        return True

    def _expected(self, activity: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        blurred = gaussian(activity, self.fwhm_mm, prep.fine.voxel_mm)
        cam = block_sum(blurred, prep.factor).astype(np.float64)
        if self.tail_fraction > 0 and self.tail_fwhm_mm > 0:
            # The tail is broad: the camera grid samples it well enough, at a fraction of the cost.
            tail = gaussian(cam, self.tail_fwhm_mm, prep.camera.voxel_mm).astype(np.float64)
            cam = (1.0 - self.tail_fraction) * cam + self.tail_fraction * tail
        return cam

    def linear_response(self, activity: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        return gaussian(self._expected(activity, prep), self.post_filter_fwhm_mm, prep.camera.voxel_mm)

    def image(self, activity: np.ndarray, prep: PreparedAnatomy, *, total_counts: float,
              rng: np.random.Generator | None) -> np.ndarray:
        lam = self._expected(activity, prep)
        total = lam.sum()
        if not total > 0:
            raise ConfigError(f"subject {prep.subject}: the activity map is empty; nothing to image")
        lam *= float(total_counts) / total
        if rng is None:
            counts = lam.astype(np.float32)
        elif self.noise_gain > 1.0:
            counts = (rng.poisson(lam / self.noise_gain) * self.noise_gain).astype(np.float32)
        else:
            counts = rng.poisson(lam).astype(np.float32)
        self.last_detected_counts = float(counts.sum())
        return gaussian(counts, self.post_filter_fwhm_mm, prep.camera.voxel_mm).astype(np.float32)

    def describe(self) -> dict:
        return {"path": "image", "modality": self.modality, "fwhm_mm": self.fwhm_mm,
                "post_filter_fwhm_mm": self.post_filter_fwhm_mm, "tail_fraction": self.tail_fraction,
                "tail_fwhm_mm": self.tail_fwhm_mm, "noise_gain": self.noise_gain}


def import_pytomography() -> types.SimpleNamespace:
    """Import the parts of PyTomography the projection path uses, leaving warnings as they were.

    ``import pytomography`` switches every Python warning off for the whole process and
    prints a line about the GPU; both are undone/silenced here.
    """
    saved = list(warnings.filters)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pytomography
            from pytomography.algorithms import OSEM
            from pytomography.io.SPECT import dicom
            from pytomography.likelihoods import PoissonLogLikelihood
            from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTProjMeta
            from pytomography.projectors.SPECT import SPECTSystemMatrix
            from pytomography.transforms.SPECT import SPECTAttenuationTransform, SPECTPSFTransform
            from pytomography.transforms.SPECT.attenuation import get_prob_of_detection_matrix
            from pytomography.utils import pad_object, rotate_detector_z
    except ImportError as exc:
        raise ConfigError(f"simulate.physics is 'projection' but PyTomography cannot be imported ({exc}); "
                          "install it with `pip install pytomography==3.4.0` keeping your torch version, or "
                          "choose simulate.physics: image") from exc
    finally:
        warnings.filters[:] = saved
        mutated = getattr(warnings, "_filters_mutated", None)
        if mutated is not None:
            mutated()
    return types.SimpleNamespace(
        pytomography=pytomography, OSEM=OSEM, dicom=dicom, PoissonLogLikelihood=PoissonLogLikelihood,
        SPECTObjectMeta=SPECTObjectMeta, SPECTProjMeta=SPECTProjMeta, SPECTSystemMatrix=SPECTSystemMatrix,
        SPECTAttenuationTransform=SPECTAttenuationTransform, SPECTPSFTransform=SPECTPSFTransform,
        get_prob_of_detection_matrix=get_prob_of_detection_matrix, pad_object=pad_object,
        rotate_detector_z=rotate_detector_z)


def _cached_attenuation(pt: types.SimpleNamespace):
    """A SPECTAttenuationTransform that computes each view's attenuation factors once."""

    class CachedAttenuationTransform(pt.SPECTAttenuationTransform):
        def configure(self, object_meta, proj_meta) -> None:  # noqa: D401 - PyTomography API
            super().configure(object_meta, proj_meta)
            amap = pt.pad_object(self.attenuation_map)
            self.cache = [pt.get_prob_of_detection_matrix(pt.rotate_detector_z(amap, angle), object_meta.dx)
                          for angle in proj_meta.angles]

        def forward(self, object_i, ang_idx):
            return object_i * self.cache[int(ang_idx)]

        def backward(self, object_i, ang_idx):
            return object_i * self.cache[int(ang_idx)]

    return CachedAttenuationTransform


class ProjectionPhysics(Physics):
    """PyTomography forward projection, Poisson projections and OSEM reconstruction."""

    name = "projection"

    def __init__(self, cfg: dict, energy_keV: float, *, threads: int | None = None, attenuation: bool = True,
                 cache_attenuation: bool | None = None, reuse_sensitivity: bool | None = None):
        check_collimator(cfg["collimator"])
        self.cfg = dict(cfg)
        if reuse_sensitivity is not None:
            self.cfg["reuse_sensitivity"] = bool(reuse_sensitivity)
        self.energy_keV = float(energy_keV)
        self.threads = threads
        self.attenuation = attenuation
        self.cache_attenuation = cfg["cache_attenuation"] if cache_attenuation is None else cache_attenuation
        self._pt: types.SimpleNamespace | None = None
        self._systems: dict[tuple, tuple] = {}
        self._sensitivity: dict[tuple, tuple] = {}
        self.last_cache_used = False
        self.last_detected_counts = float("nan")

    # -- PyTomography set-up -------------------------------------------------------
    def _lib(self) -> types.SimpleNamespace:
        if self._pt is None:
            pt = import_pytomography()
            import torch

            dev = self.cfg["device"]
            if dev == "cuda" and not torch.cuda.is_available():
                raise ConfigError("simulate.projection.device is 'cuda' but no CUDA GPU is available; "
                                  "use 'auto' or 'cpu'")
            if dev == "cpu":
                pt.pytomography.set_device("cpu")
            elif dev == "cuda":
                pt.pytomography.set_device("cuda")
            if self.threads:
                torch.set_num_threads(int(self.threads))
            self._pt = pt
        return self._pt

    def psf_fwhm_mm(self, distance_mm: float) -> float:
        """Collimator + intrinsic FWHM (mm) at a source-collimator distance."""
        pt = self._lib()
        meta = pt.dicom.get_psfmeta_from_scanner_params(
            self.cfg["collimator"], self.energy_keV,
            intrinsic_resolution_140keV=self.cfg["intrinsic_fwhm_mm"] / 10.0)
        sigma_cm = meta.sigma_fit(distance_mm / 10.0, *meta.sigma_fit_params)
        return float(sigma_cm) / FWHM_TO_SIGMA * 10.0

    def _check_grid(self, prep: PreparedAnatomy) -> None:
        shape = prep.camera.shape
        if shape[0] != shape[1]:
            raise ConfigError(f"the projection path needs a square transaxial matrix, got {shape[:2]}")
        if shape[2] < 2:
            raise ConfigError("the projection path needs at least 2 axial slices (PyTomography's rotation "
                              "fails on a single slice)")
        check_orbit(prep, float(self.cfg["radius_mm"]))

    def system_matrix(self, prep: PreparedAnatomy, *, attenuation: bool | None = None, psf: bool = True,
                      cache: bool | None = None):
        """The SPECT system matrix of ``prep``'s camera grid (built once, then reused)."""
        attenuation = self.attenuation if attenuation is None else attenuation
        cache = self.cache_attenuation if cache is None else cache
        key = (id(prep), attenuation, psf, cache)
        if key in self._systems:
            return self._systems[key][1]
        self._check_grid(prep)
        pt = self._lib()
        import torch

        dx_cm = prep.camera.voxel_mm / 10.0
        n = prep.camera.shape
        object_meta = pt.SPECTObjectMeta([dx_cm] * 3, list(n))
        views = int(self.cfg["views"])
        angles = np.linspace(0.0, 360.0, views, endpoint=False)
        radii = np.full(views, float(self.cfg["radius_mm"]) / 10.0)
        proj_meta = pt.SPECTProjMeta((n[1], n[2]), [dx_cm, dx_cm], angles, radii=radii)
        transforms = []
        used_cache = False
        if attenuation:
            mu = torch.tensor(prep.mu_map(self.energy_keV), dtype=torch.float32)
            if cache:
                pad = n[0] + 2 * int(np.ceil((np.sqrt(2) * n[0] - n[0]) / 2))
                gb = views * pad * pad * n[2] * 4 / 1e9
                if gb <= float(self.cfg["cache_max_gb"]):
                    transforms.append(_cached_attenuation(pt)(attenuation_map=mu))
                    used_cache = True
                else:
                    log.warning("attenuation cache would need %.1f GB (> simulate.projection.cache_max_gb = %g); "
                                "computing attenuation per view instead", gb, self.cfg["cache_max_gb"])
            if not used_cache:
                transforms.append(pt.SPECTAttenuationTransform(attenuation_map=mu))
        if psf:
            psf_meta = pt.dicom.get_psfmeta_from_scanner_params(
                self.cfg["collimator"], self.energy_keV,
                intrinsic_resolution_140keV=self.cfg["intrinsic_fwhm_mm"] / 10.0)
            transforms.append(pt.SPECTPSFTransform(psf_meta))
        system = pt.SPECTSystemMatrix(obj2obj_transforms=transforms, proj2proj_transforms=[],
                                      object_meta=object_meta, proj_meta=proj_meta)
        self.last_cache_used = used_cache
        # Keep a reference to prep so that its id stays unique while the system is cached.
        self._systems[key] = (prep, system)
        return system

    def forward_project(self, camera_activity: np.ndarray, prep: PreparedAnatomy, *,
                        attenuation: bool | None = None, psf: bool = True) -> np.ndarray:
        """Expected projections (views, transaxial, axial) of an activity on the camera grid."""
        import torch

        system = self.system_matrix(prep, attenuation=attenuation, psf=psf)
        with torch.no_grad():
            proj = system.forward(torch.as_tensor(np.ascontiguousarray(camera_activity), dtype=torch.float32))
        return proj.cpu().numpy().astype(np.float64)

    def reconstruct(self, projections: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        """OSEM reconstruction (attenuation and PSF modelled) of projections, camera grid.

        With ``reuse_sensitivity`` the back projections of ones of every subset (which depend
        only on the system) are computed by the first reconstruction of a grid and handed to
        the later ones instead of being recomputed.
        """
        pt = self._lib()
        import torch

        system = self.system_matrix(prep)
        device = pt.pytomography.device
        subsets = int(self.cfg["subsets"])
        g = torch.as_tensor(projections, dtype=torch.float32).to(device)
        likelihood = pt.PoissonLogLikelihood(system, g)
        key = (id(system), subsets)
        reuse = bool(self.cfg.get("reuse_sensitivity", False)) and subsets > 1
        if reuse and key in self._sensitivity:
            likelihood.norm_BPs = self._sensitivity[key][1]
            likelihood.n_subsets_previous = subsets
        with torch.no_grad():
            rec = pt.OSEM(likelihood)(int(self.cfg["iterations"]), subsets)
        if reuse and key not in self._sensitivity:
            self._sensitivity[key] = (system, likelihood.norm_BPs)
        return rec.cpu().numpy().astype(np.float32)

    # -- Physics interface -------------------------------------------------------------
    def image(self, activity: np.ndarray, prep: PreparedAnatomy, *, total_counts: float,
              rng: np.random.Generator | None) -> np.ndarray:
        obj = block_sum(np.asarray(activity, dtype=np.float64), prep.factor)
        proj = self.forward_project(obj, prep)
        total = proj.sum()
        if not total > 0:
            raise ConfigError(f"subject {prep.subject}: the projections are empty; nothing to reconstruct")
        proj *= float(total_counts) / total
        data = rng.poisson(proj).astype(np.float32) if rng is not None else proj.astype(np.float32)
        self.last_detected_counts = float(data.sum())
        # OSEM estimates counts per view interval (attenuation corrected); times the number of
        # views this is the whole acquisition, as the image-domain path reports it.
        rec = self.reconstruct(data, prep) * float(self.cfg["views"])
        return gaussian(rec, float(self.cfg["post_filter_fwhm_mm"]), prep.camera.voxel_mm).astype(np.float32)

    def effective_fwhm_mm(self) -> float:
        """Resolution of the collimator and detector at the centre of rotation."""
        return self.psf_fwhm_mm(float(self.cfg["radius_mm"]))

    def linear_response(self, activity: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        approx = ImageDomainPhysics(self.effective_fwhm_mm(), float(self.cfg["post_filter_fwhm_mm"]))
        return approx.linear_response(activity, prep)

    def describe(self) -> dict:
        keys = ("collimator", "intrinsic_fwhm_mm", "views", "radius_mm", "iterations", "subsets",
                "post_filter_fwhm_mm", "reuse_sensitivity")
        out = {"path": "projection", "modality": "spect", "energy_keV": self.energy_keV,
               "attenuation": self.attenuation, "cache_attenuation": bool(self.cache_attenuation)}
        out.update({k: self.cfg[k] for k in keys})
        return out


def make_physics(cfg: dict, modality: str, energy_keV: float, *, threads: int | None = None,
                 noise_gain: float | None = None, tail_fraction: float | None = None,
                 isotope: str | None = None) -> Physics:
    """The physics of a resolved ``simulate`` config for ``modality`` ("spect" or "pet").

    PET always uses the image-domain model (no PET projector is part of the pipeline).  The
    SPECT tail (scatter and septal penetration) is the isotope's (``spect.tail_fraction.<isotope>``,
    the tracer's :attr:`~.registry.Tracer.isotope`): 123I's high-energy photons penetrate a
    low-energy collimator's septa, 99mTc has scatter only; without ``isotope``, a photon energy
    above 150 keV counts as 123I and any other as 99mTc.  ``noise_gain`` and ``tail_fraction``
    override the modality's (a protocol of its own, e.g. DaT's).
    """
    if modality == "pet":
        c = cfg["pet"]
        return ImageDomainPhysics(c["fwhm_mm"], c["post_filter_fwhm_mm"], modality="pet",
                                  tail_fraction=c["tail_fraction"], tail_fwhm_mm=c["tail_fwhm_mm"],
                                  noise_gain=c["noise_gain"])
    if modality != "spect":
        raise ConfigError(f"unknown modality {modality!r}; expected 'spect' or 'pet'")
    if cfg["physics"] == "projection":
        return ProjectionPhysics(cfg["projection"], energy_keV, threads=threads)
    c = cfg["spect"]
    if tail_fraction is None:
        if isotope is None:  # callers that give only an energy
            isotope = "I-123" if energy_keV > 150.0 else "Tc-99m"
        if isotope not in c["tail_fraction"]:
            raise ConfigError(f"simulate.spect.tail_fraction has no entry for the isotope {isotope!r} (it has "
                              f"{', '.join(c['tail_fraction'])}); add one to the config schema and its defaults")
        tail_fraction = c["tail_fraction"][isotope]
    return ImageDomainPhysics(c["fwhm_mm"], c["post_filter_fwhm_mm"], modality="spect", tail_fraction=tail_fraction,
                              tail_fwhm_mm=c["tail_fwhm_mm"],
                              noise_gain=c["noise_gain"] if noise_gain is None else noise_gain)


# ---------------------------------------------------------------------------------------------
# What a physicist measures on the images: resolution and noise
# ---------------------------------------------------------------------------------------------
def _width_at(profile: np.ndarray, level: float, step_mm: float) -> float:
    """Full width (mm) of a single-peaked profile at ``level`` times its maximum (linear interpolation)."""
    p = np.asarray(profile, dtype=np.float64)
    k = int(np.argmax(p))
    h = level * p[k]
    left = k
    while left > 0 and p[left - 1] > h:
        left -= 1
    right = k
    while right < len(p) - 1 and p[right + 1] > h:
        right += 1
    if left == 0 or right == len(p) - 1:
        return float("nan")
    xl = left - (p[left] - h) / (p[left] - p[left - 1])
    xr = right + (p[right] - h) / (p[right] - p[right + 1])
    return float((xr - xl) * step_mm)


def measured_resolution(physics: Physics, prep: PreparedAnatomy) -> dict[str, float]:
    """FWHM, FWTM (mm) and tail of a line source imaged by ``physics`` on ``prep``'s grid, noise-free.

    As a physicist measures them: a line source along the axial direction through the centre
    of the field of view (a line of fine voxels), its image's transaxial profile summed over
    the slices, widths at half and a tenth of the maximum by linear interpolation (NEMA
    NU 1); the tail is the share of its counts beyond half the FWTM from it (10 % for a 2-D
    Gaussian; scatter and septal penetration raise it).  The source is placed at several sub-voxel offsets and the widths averaged, so the
    camera's voxel sampling does not bias them.
    """
    fine = prep.fine
    n = fine.shape
    widths_h, widths_t, tails = [], [], []
    for offset in range(prep.factor):
        act = np.zeros(n, np.float32)
        i = n[0] // 2 - prep.factor // 2 + offset
        act[i, n[1] // 2, n[2] // 4: 3 * n[2] // 4] = 1.0
        img = physics.linear_response(act, prep)
        plane = np.asarray(img, np.float64)[:, :, img.shape[2] // 3: 2 * img.shape[2] // 3].sum(axis=2)
        pk = np.unravel_index(int(np.argmax(plane)), plane.shape)
        prof = plane[:, pk[1]]
        widths_h.append(_width_at(prof, 0.5, prep.camera.voxel_mm))
        widths_t.append(_width_at(prof, 0.1, prep.camera.voxel_mm))
        # the tail: share of the line's counts farther from it than half the FWTM
        vx = prep.camera.voxel_mm
        ii, jj = np.meshgrid(np.arange(plane.shape[0]), np.arange(plane.shape[1]), indexing="ij")
        r = np.hypot(ii - pk[0], jj - pk[1]) * vx
        tails.append(float(plane[r > widths_t[-1] / 2].sum() / plane.sum()) if plane.sum() > 0 else float("nan"))
    return {"meas_fwhm_mm": round(float(np.nanmean(widths_h)), 3),
            "meas_fwtm_mm": round(float(np.nanmean(widths_t)), 3),
            "meas_tail_fraction": round(float(np.nanmean(tails)), 4)}


def image_properties(img: np.ndarray, expected: np.ndarray, prep: PreparedAnatomy) -> dict[str, float]:
    """Noise and signal properties of one image against its noise-free expectation.

    ``meas_noise_cv``: SD over mean of ``img - expected`` inside the deep white-matter core
    (camera weight of the WM core >= 0.9), the uniform region of the head; ``meas_wm_cv``: the
    plain CV of the image there (noise plus the physiology's own variation);
    ``extracerebral_fraction``: share of the image's signal outside the brain (camera brain
    weight < 0.5).
    """
    w = prep.camera_weights
    core = w["wm_mask"] >= 0.9
    if core.sum() < 20:
        core = w["wm_mask"] >= 0.5
    x, e = np.asarray(img, np.float64), np.asarray(expected, np.float64)
    mean = float(e[core].mean()) if core.any() else float("nan")
    out = {"meas_noise_cv": round(float(np.std(x[core] - e[core]) / mean), 5) if mean > 0 else float("nan"),
           "meas_wm_cv": round(float(np.std(x[core]) / np.mean(x[core])), 5) if core.any() else float("nan")}
    pos = np.clip(x, 0.0, None)
    total = float(pos.sum())
    out["extracerebral_fraction"] = round(float(pos[w["brain"] < 0.5].sum()) / total, 5) if total > 0 else float("nan")
    return out
