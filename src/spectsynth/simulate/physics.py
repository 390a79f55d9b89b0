"""Imaging physics: two paths behind one interface.

``ImageDomainPhysics`` (default, fast): activity on the fine grid -> 3-D Gaussian point
spread function of the system FWHM -> summed into the camera's voxels (box detector
response) -> Poisson counts at a given total -> optional Gaussian post-filter.

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
    """Gaussian PSF, camera voxels, Poisson counts, optional post-filter."""

    name = "image"

    def __init__(self, fwhm_mm: float, post_filter_fwhm_mm: float = 0.0, modality: str = "spect"):
        if fwhm_mm < 0 or post_filter_fwhm_mm < 0:
            raise ConfigError(f"FWHM must be >= 0 mm (got system {fwhm_mm}, post-filter {post_filter_fwhm_mm})")
        self.fwhm_mm = float(fwhm_mm)
        self.post_filter_fwhm_mm = float(post_filter_fwhm_mm)
        self.modality = modality
        self.last_detected_counts = float("nan")

    @property
    def calibration_is_exact(self) -> bool:
        return True

    def _expected(self, activity: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        blurred = gaussian(activity, self.fwhm_mm, prep.fine.voxel_mm)
        return block_sum(blurred, prep.factor).astype(np.float64)

    def linear_response(self, activity: np.ndarray, prep: PreparedAnatomy) -> np.ndarray:
        return gaussian(self._expected(activity, prep), self.post_filter_fwhm_mm, prep.camera.voxel_mm)

    def image(self, activity: np.ndarray, prep: PreparedAnatomy, *, total_counts: float,
              rng: np.random.Generator | None) -> np.ndarray:
        lam = self._expected(activity, prep)
        total = lam.sum()
        if not total > 0:
            raise ConfigError(f"subject {prep.subject}: the activity map is empty; nothing to image")
        lam *= float(total_counts) / total
        counts = rng.poisson(lam).astype(np.float32) if rng is not None else lam.astype(np.float32)
        self.last_detected_counts = float(counts.sum())
        return gaussian(counts, self.post_filter_fwhm_mm, prep.camera.voxel_mm).astype(np.float32)

    def describe(self) -> dict:
        return {"path": "image", "modality": self.modality, "fwhm_mm": self.fwhm_mm,
                "post_filter_fwhm_mm": self.post_filter_fwhm_mm}


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


def make_physics(cfg: dict, modality: str, energy_keV: float, *, threads: int | None = None) -> Physics:
    """The physics of a resolved ``simulate`` config for ``modality`` ("spect" or "pet").

    PET always uses the image-domain model (no PET projector is part of the pipeline).
    """
    if modality == "pet":
        c = cfg["pet"]
        return ImageDomainPhysics(c["fwhm_mm"], c["post_filter_fwhm_mm"], modality="pet")
    if modality != "spect":
        raise ConfigError(f"unknown modality {modality!r}; expected 'spect' or 'pet'")
    if cfg["physics"] == "projection":
        return ProjectionPhysics(cfg["projection"], energy_keV, threads=threads)
    c = cfg["spect"]
    return ImageDomainPhysics(c["fwhm_mm"], c["post_filter_fwhm_mm"], modality="spect")
