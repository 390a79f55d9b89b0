"""Rigid and affine registration, ITK transform files and one-interpolation resampling.

Conventions
-----------
* Images travel as nibabel images in RAS+ world coordinates (what
  :func:`spectsynth.io.load_image` returns).  SimpleITK works in LPS; :func:`to_sitk` and
  :func:`from_sitk` convert without touching the voxel data, so the physical position of every
  voxel is kept exactly (also for oblique or sagittal acquisitions).
* A transform is stored the way ITK, ANTs and SimpleITK use it for resampling: the file
  ``from-A_to-B`` maps **points of space B to points of space A**, so that
  ``antsApplyTransforms -i A.nii.gz -r B.nii.gz -t from-A_to-B.tfm`` (or
  ``sitk.Resample(A, B, transform)``) moves an image from A into B.  The inverse file
  ``from-B_to-A`` is written next to it.
* :func:`resample` takes a *chain* of such transforms and resamples once: a PET image goes to
  the template through ``[T1w->MNI152, PET->T1w]`` composed into one transform, never through an
  intermediate image.

Registration uses SimpleITK's Mattes mutual information with a regular-step gradient descent
(not a step size re-estimated at every iteration, which diverged on some real T1s), about 10 %
random samples drawn with a fixed seed, the moving image's gradient taken at those samples only,
the optimisation on one thread (so reruns give bit-identical transforms; see :func:`register`),
three resolution levels and an initialisation from the image moments, which recovers head poses of +-15 degrees
and +-10 mm.  FSL FLIRT is the optional backend when ``FSLDIR`` is set.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..config import declared, fragment_defaults
from ..errors import ConfigError, ProcessingError, SpectsynthError
from ..io import atomic_output
from ..resources import resource_path

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = tuple(declared(Path(__file__).with_name("options.yaml"), "preprocess.registration.backend")["enum"])
INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,  # cubic (3rd-order) B-spline
}
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


# --------------------------------------------------------------------------------------------
# nibabel <-> SimpleITK
# --------------------------------------------------------------------------------------------
def to_sitk(img: nib.Nifti1Image, dtype: type | None = np.float32) -> sitk.Image:
    """Convert a nibabel image to SimpleITK, keeping every voxel's physical position.

    ``dtype=None`` keeps the stored data type (use it for label images).
    """
    data = np.asanyarray(img.dataobj)
    data = data.astype(dtype, copy=False) if dtype is not None else np.asarray(data)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    m = _LPS @ img.affine
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    out.SetSpacing(spacing.tolist())
    out.SetDirection((m[:3, :3] / spacing).ravel().tolist())
    out.SetOrigin(m[:3, 3].tolist())
    return out


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """The RAS+ voxel-to-world affine of a SimpleITK image."""
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = direction * spacing
    m[:3, 3] = image.GetOrigin()
    return _LPS @ m


def from_sitk(image: sitk.Image, dtype: type | None = None) -> nib.Nifti1Image:
    """Convert a SimpleITK image to a nibabel image (qform = sform = the image's affine)."""
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    affine = sitk_affine(image)
    out = nib.Nifti1Image(data, affine)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    return out


def affine_to_itk(ras_matrix: np.ndarray) -> sitk.AffineTransform:
    """An ITK (LPS) affine transform equal to a 4x4 RAS world-to-world matrix."""
    m = _LPS @ np.asarray(ras_matrix, dtype=float) @ _LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(m[:3, :3].ravel().tolist())
    tx.SetTranslation(m[:3, 3].tolist())
    return tx


def itk_to_affine(transform: sitk.Transform) -> np.ndarray:
    """The 4x4 RAS world-to-world matrix of a linear ITK transform (LPS points)."""
    tx = sitk.AffineTransform(3)
    if transform.GetDimension() != 3:
        raise SpectsynthError("only 3-D transforms can be converted")
    # Any linear transform (Euler, Similarity, Affine, composite of those) is captured by
    # mapping the origin and the three unit vectors.
    p0 = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    cols = [np.asarray(transform.TransformPoint(tuple(e))) - p0 for e in np.eye(3)]
    tx.SetMatrix(np.stack(cols, axis=1).ravel().tolist())
    tx.SetTranslation(p0.tolist())
    m = np.eye(4)
    m[:3, :3] = np.asarray(tx.GetMatrix()).reshape(3, 3)
    m[:3, 3] = tx.GetTranslation()
    return _LPS @ m @ _LPS


# --------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """An output voxel grid: shape and RAS+ affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray = field(repr=False)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    def empty(self, dtype: type = np.uint8) -> nib.Nifti1Image:
        """A zero image on this grid (used as the reference of a resampling)."""
        return image_on_grid(np.zeros(self.shape, dtype=dtype), self)

    def sitk_reference(self) -> sitk.Image:
        """A 1-voxel-cheap SimpleITK reference carrying this grid's geometry."""
        ref = sitk.Image([int(s) for s in self.shape], sitk.sitkUInt8)
        m = _LPS @ self.affine
        spacing = np.linalg.norm(m[:3, :3], axis=0)
        ref.SetSpacing(spacing.tolist())
        ref.SetDirection((m[:3, :3] / spacing).ravel().tolist())
        ref.SetOrigin(m[:3, 3].tolist())
        return ref

    @classmethod
    def of(cls, img: nib.Nifti1Image | sitk.Image) -> Grid:
        if isinstance(img, sitk.Image):
            return cls(tuple(int(s) for s in img.GetSize()), sitk_affine(img))
        return cls(tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, dtype=float))


def crop_to_mask(img: nib.Nifti1Image, mask: nib.Nifti1Image, margin: int = 4) -> nib.Nifti1Image:
    """``img`` cropped to the bounding box of ``mask`` (same grid) plus ``margin`` voxels."""
    m = np.asanyarray(mask.dataobj) > 0
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, m.shape)
    return img.slicer[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]


def image_on_grid(data: np.ndarray, grid: Grid) -> nib.Nifti1Image:
    """A NIfTI holding ``data`` on ``grid`` with qform = sform."""
    out = nib.Nifti1Image(data, grid.affine)
    out.set_qform(grid.affine, code=1)
    out.set_sform(grid.affine, code=1)
    return out


def native_grid(mask: nib.Nifti1Image, shape: Sequence[int] = (256, 256, 192),
                spacing: float = 1.0) -> Grid:
    """S2's native grid: RAS axes, ``shape`` voxels of ``spacing`` mm, centred on the brain.

    The centre is the centre of the brain mask's bounding box (in world coordinates), so the
    whole brain fits whatever the field of view of the scan was.
    """
    data = np.asanyarray(mask.dataobj) > 0
    if not data.any():
        raise SpectsynthError("the brain mask is empty; cannot centre the native grid")
    idx = np.argwhere(data)
    lo, hi = idx.min(0), idx.max(0)
    corners = np.array([[a, b, c, 1.0] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])])
    world = (mask.affine @ corners.T).T[:, :3]
    centre = (world.min(0) + world.max(0)) / 2
    shape = tuple(int(s) for s in shape)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - spacing * (np.asarray(shape) - 1) / 2
    return Grid(shape, affine)


def resolution_grid(grid: Grid, spacing: float) -> Grid:
    """The same field of view as ``grid`` sampled at ``spacing`` mm (for the 2 mm option)."""
    old = np.asarray(grid.spacing)
    if np.allclose(old, spacing):
        return grid
    extent = np.asarray(grid.shape) * old
    shape = tuple(int(np.ceil(e / spacing - 1e-6)) for e in extent)
    scale = spacing / old
    affine = grid.affine.copy()
    affine[:3, :3] = grid.affine[:3, :3] * scale
    # keep the outer edge of the first voxel where it was
    affine[:3, 3] = (grid.affine @ np.r_[(scale - 1) / 2, 1.0])[:3]
    return Grid(shape, affine)


# --------------------------------------------------------------------------------------------
# resampling and transforms
# --------------------------------------------------------------------------------------------
def chain(transforms: Sequence[sitk.Transform]) -> sitk.Transform:
    """Compose transforms applied to a point *in the given order* into one transform.

    ``chain([a, b])`` maps ``p`` to ``b(a(p))``.  For resampling, list them from the output
    (reference) space towards the input image's space, e.g. ``[T1w->MNI152, PET->T1w]``
    to carry a PET image into the template.
    """
    transforms = list(transforms)
    if not transforms:
        return sitk.Transform(3, sitk.sitkIdentity)
    if len(transforms) == 1:
        return transforms[0]
    return sitk.CompositeTransform(list(reversed(transforms)))


def resample(image: nib.Nifti1Image | sitk.Image, grid: Grid, transforms: Sequence[sitk.Transform] = (),
             interpolation: str = "bspline", default: float = 0.0, dtype: type = np.float32,
             clip_to_input_range: bool = True) -> nib.Nifti1Image:
    """Resample ``image`` onto ``grid`` through the chain ``transforms``, interpolating once.

    ``interpolation`` is ``bspline`` (3rd order), ``linear`` or ``nearest``.  Cubic B-splines
    overshoot at sharp edges; with ``clip_to_input_range`` the result is clipped to the
    input's value range so that, e.g., a PET image never gets negative activity.
    """
    if interpolation not in INTERPOLATORS:
        raise ConfigError(f"unknown interpolation {interpolation!r}; choose one of {sorted(INTERPOLATORS)}")
    src = image if isinstance(image, sitk.Image) else to_sitk(
        image, None if interpolation == "nearest" else np.float32)
    out_type = sitk.sitkFloat32 if interpolation != "nearest" else src.GetPixelID()
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(grid.sitk_reference())
    f.SetTransform(chain(transforms))
    f.SetInterpolator(INTERPOLATORS[interpolation])
    f.SetDefaultPixelValue(float(default))
    f.SetOutputPixelType(out_type)
    res = f.Execute(src)
    data = sitk.GetArrayFromImage(res).transpose(2, 1, 0)
    if clip_to_input_range and interpolation == "bspline":
        arr = sitk.GetArrayViewFromImage(src)
        lo, hi = float(arr.min()), float(arr.max())
        data = np.clip(data, min(lo, default), max(hi, default))
    return image_on_grid(data.astype(dtype, copy=False), grid)


def resample_mask(mask: nib.Nifti1Image, grid: Grid, transforms: Sequence[sitk.Transform] = ()
                  ) -> nib.Nifti1Image:
    """Resample a binary mask (linear interpolation of the 0/1 image, threshold 0.5)."""
    frac = resample(nib.Nifti1Image((np.asanyarray(mask.dataobj) > 0).astype(np.float32), mask.affine),
                    grid, transforms, interpolation="linear")
    return image_on_grid((np.asanyarray(frac.dataobj) >= 0.5).astype(np.uint8), grid)


def save_transform(transform: sitk.Transform, path: str | Path) -> Path:
    """Write an ITK transform file (``.tfm`` text or ``.h5``) atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        sitk.WriteTransform(transform, str(tmp))
    return path


def load_transform(path: str | Path) -> sitk.Transform:
    """Read an ITK transform file; a single linear transform comes back as itself."""
    path = Path(path)
    if not path.exists():
        raise SpectsynthError(f"{path}: transform file does not exist; rerun the registration step")
    tx = sitk.ReadTransform(str(path))
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        if comp.GetNumberOfTransforms() == 1:
            return comp.GetNthTransform(0)
    return tx


def save_transform_pair(transform: sitk.Transform, forward: str | Path, inverse: str | Path) -> None:
    """Write a linear transform and its exact inverse."""
    save_transform(transform, forward)
    save_transform(transform.GetInverse(), inverse)


# --------------------------------------------------------------------------------------------
# registration
# --------------------------------------------------------------------------------------------
# The declared options (options.yaml); the fields take their defaults from them.
_DECLARED = fragment_defaults(Path(__file__).with_name("options.yaml"), "preprocess")["registration"]


@dataclass
class RegistrationSettings:
    """Settings of one SimpleITK registration (the config's ``preprocess.registration``)."""

    backend: str = _DECLARED["backend"]
    histogram_bins: int = _DECLARED["histogram_bins"]
    sampling_fraction: float = _DECLARED["sampling_fraction"]
    seed: int = _DECLARED["seed"]
    learning_rate: float = _DECLARED["learning_rate"]
    min_step: float = _DECLARED["min_step"]
    relaxation: float = _DECLARED["relaxation"]
    iterations: int = _DECLARED["iterations"]
    shrink_factors: tuple[int, ...] = tuple(_DECLARED["shrink_factors"])
    smoothing_sigmas: tuple[float, ...] = tuple(_DECLARED["smoothing_sigmas"])
    resolution_mm: float = _DECLARED["resolution_mm"]
    initialization: str = _DECLARED["initialization"]
    min_mask_dice: float = _DECLARED["min_mask_dice"]
    require_convergence: bool = _DECLARED["require_convergence"]
    threads: int = 0

    @classmethod
    def from_config(cls, cfg: dict | None) -> RegistrationSettings:
        cfg = dict(cfg or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(cfg) - known
        if unknown:
            raise ConfigError(f"preprocess.registration: unknown keys {sorted(unknown)}; "
                              f"known: {sorted(known)}")
        out = cls(**cfg)
        out.shrink_factors = tuple(int(v) for v in out.shrink_factors)
        out.smoothing_sigmas = tuple(float(v) for v in out.smoothing_sigmas)
        if out.backend not in BACKENDS:
            raise ConfigError(f"preprocess.registration.backend: {out.backend!r} is not one of {BACKENDS}")
        if len(out.shrink_factors) != len(out.smoothing_sigmas):
            raise ConfigError("preprocess.registration: shrink_factors and smoothing_sigmas must have "
                              "the same length (one entry per resolution level)")
        if not 0 < out.sampling_fraction <= 1:
            raise ConfigError("preprocess.registration.sampling_fraction must be in (0, 1]")
        if out.initialization not in ("moments", "geometry"):
            raise ConfigError("preprocess.registration.initialization must be 'moments' or 'geometry'")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RegistrationResult:
    """A registration's transform (fixed points -> moving points) and its quality numbers."""

    transform: sitk.Transform
    metric: float
    iterations: int
    final_level_iterations: int
    stop_condition: str
    converged: bool
    seconds: float
    backend: str = "simpleitk"

    def summary(self) -> dict:
        return {"metric": float(self.metric), "iterations": int(self.iterations),
                "final_level_iterations": int(self.final_level_iterations),
                "converged": bool(self.converged), "stop_condition": self.stop_condition,
                "seconds": round(float(self.seconds), 3), "backend": self.backend}


def _set_threads(threads: int) -> None:
    if threads and threads > 0:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))


def downsample(image: sitk.Image, spacing: float) -> sitk.Image:
    """Gaussian-smooth then resample an image to isotropic ``spacing`` mm (same extent)."""
    old = np.asarray(image.GetSpacing())
    if np.all(old >= spacing - 1e-6):
        return image
    sigma = [float(np.sqrt(max(spacing ** 2 - o ** 2, 0.0)) / 2.3548) for o in old]
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma)
    size = [max(1, int(round(n * o / spacing))) for n, o in zip(image.GetSize(), old)]
    m = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin()) + m @ ((spacing - old) / 2)
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                         [spacing] * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)


def _image_centre(image: sitk.Image) -> np.ndarray:
    size = np.asarray(image.GetSize(), dtype=float)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist()))


def _centred(tx: sitk.AffineTransform, fixed: sitk.Image) -> sitk.AffineTransform:
    """The same mapping with its centre of rotation at the fixed image's centre.

    A centre far from the anatomy couples rotations with large translations and slows the
    optimiser down, so an initial transform read from a file is re-centred first.
    """
    a = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c_old = np.asarray(tx.GetCenter())
    t_old = np.asarray(tx.GetTranslation())
    c = _image_centre(fixed)
    # T(x) = A(x - c_old) + c_old + t_old = A(x - c) + c + t
    t = a @ (c - c_old) + c_old + t_old - c
    out = sitk.AffineTransform(3)
    out.SetMatrix(a.ravel().tolist())
    out.SetCenter(c.tolist())
    out.SetTranslation(t.tolist())
    return out


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


def _initial_transform(fixed: sitk.Image, moving: sitk.Image, dof: int, mode: str,
                       initial: sitk.Transform | None) -> sitk.Transform:
    if initial is not None:
        if dof == 6:
            aff = _centred(affine_to_itk(itk_to_affine(initial)), fixed)
            init = sitk.Euler3DTransform()
            init.SetCenter(aff.GetCenter())
            init.SetMatrix(_nearest_rotation(np.asarray(aff.GetMatrix()).reshape(3, 3)).ravel().tolist())
            init.SetTranslation(aff.GetTranslation())
            return init
        return _centred(affine_to_itk(itk_to_affine(initial)), fixed)
    kind = (sitk.CenteredTransformInitializerFilter.MOMENTS if mode == "moments"
            else sitk.CenteredTransformInitializerFilter.GEOMETRY)
    base = sitk.Euler3DTransform() if dof == 6 else sitk.AffineTransform(3)
    return sitk.CenteredTransformInitializer(fixed, moving, base, kind)


def register(fixed: sitk.Image, moving: sitk.Image, *, dof: int = 12,
             settings: RegistrationSettings | None = None, initial: sitk.Transform | None = None,
             fixed_mask: sitk.Image | None = None, subject: str | None = None,
             what: str = "registration") -> RegistrationResult:
    """Register ``moving`` to ``fixed`` with SimpleITK (6 dof rigid or 12 dof affine).

    Returns the transform mapping *fixed* points to *moving* points (the resampling direction:
    ``sitk.Resample(moving, fixed, result.transform)`` puts the moving image on the fixed grid).
    Raises :class:`ProcessingError` when the optimiser produced a non-finite transform, or, with
    ``require_convergence``, when the last level stopped on its iteration limit.
    """
    settings = settings or RegistrationSettings()
    if dof not in (6, 12):
        raise ConfigError(f"{what}: dof must be 6 (rigid) or 12 (affine), not {dof}")
    _set_threads(settings.threads)
    fixed_r = downsample(fixed, settings.resolution_mm) if settings.resolution_mm else fixed
    moving_f = sitk.Cast(moving, sitk.sitkFloat32)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(settings.histogram_bins))
    if settings.sampling_fraction < 1:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(float(settings.sampling_fraction), int(settings.seed))
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    # The moving image's gradient by central differences at the sampled points only, not a
    # smoothed gradient image of the whole moving image made again at every level: a PET's
    # rigid registration 3x faster, the T1w->MNI152 affine 1.4x, and on known poses no less
    # accurate (benchmarks/bench_preprocess.py; the scan QC of a tiny run).
    reg.MetricUseMovingImageGradientFilterOff()
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=float(settings.learning_rate), minStep=float(settings.min_step),
        numberOfIterations=int(settings.iterations), relaxationFactor=float(settings.relaxation),
        gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    reg.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(_initial_transform(fixed_r, moving_f, dof, settings.initialization, initial),
                            inPlace=False)
    counter = {"total": 0}

    def _count() -> None:
        counter["total"] += 1

    reg.AddCommand(sitk.sitkIterationEvent, _count)
    t0 = time.perf_counter()
    # The optimisation runs on one thread: ITK's Mattes MI adds the threads' partial sums in
    # the order the threads finish, so with two threads identical runs gave transforms that
    # differed in the 7th digit (and label maps, simulations and networks downstream). One
    # thread makes reruns bit-identical; smoothing and resampling keep settings.threads.
    threads_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        tx = reg.Execute(fixed_r, moving_f)
    except RuntimeError as exc:
        raise ProcessingError(f"{what} failed inside SimpleITK ({exc})", subject=subject,
                              hint="Check that both images show the same anatomy and have sensible "
                                   "headers") from exc
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads_before)
    seconds = time.perf_counter() - t0
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        tx = comp.GetNthTransform(comp.GetNumberOfTransforms() - 1)
    stop = reg.GetOptimizerStopConditionDescription()
    last = int(reg.GetOptimizerIteration())
    converged = "Maximum number of iterations" not in stop
    params = np.asarray(tx.GetParameters(), dtype=float)
    metric = float(reg.GetMetricValue())
    if not np.all(np.isfinite(params)) or not np.isfinite(metric):
        raise ProcessingError(f"{what} diverged (non-finite transform or metric {metric})",
                              subject=subject, hint="Check the input image for corrupt voxels")
    if not converged and settings.require_convergence:
        raise ProcessingError(
            f"{what} did not converge: the last level stopped after {last} iterations "
            f"(limit {settings.iterations}); final metric {metric:.4f}",
            subject=subject,
            hint="Inspect the input T1w (orientation, field of view, artefacts); if it is fine, "
                 "raise preprocess.registration.iterations")
    if not converged:
        log.warning("subject %s: %s stopped at its iteration limit (%d); metric %.4f",
                    subject, what, last, metric)
    return RegistrationResult(tx, metric, counter["total"], last, stop, converged, seconds)


def mask_overlap(fixed_mask: sitk.Image, moving_mask: sitk.Image, transform: sitk.Transform) -> float:
    """Dice of ``fixed_mask`` and ``moving_mask`` carried onto the fixed grid by ``transform``."""
    warped = sitk.Resample(sitk.Cast(moving_mask > 0, sitk.sitkFloat32), fixed_mask, transform,
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    a = sitk.GetArrayViewFromImage(fixed_mask) > 0
    b = sitk.GetArrayViewFromImage(warped) >= 0.5
    denom = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / denom if denom else 0.0


def check_overlap(dice: float, threshold: float, *, subject: str | None, what: str) -> None:
    """Stop the subject when the brain-mask overlap after registration is below ``threshold``."""
    if not np.isfinite(dice) or dice < threshold:
        raise ProcessingError(
            f"{what} landed badly: brain-mask Dice with the target is {dice:.3f}, below the "
            f"threshold {threshold:.3f}",
            subject=subject,
            hint="Look at this subject's brain mask and T1w (wrong orientation, failed brain "
                 "extraction, unusual field of view); lower preprocess.registration.min_mask_dice "
                 "only if the result is checked by eye")


# --------------------------------------------------------------------------------------------
# FSL FLIRT backend
# --------------------------------------------------------------------------------------------
def fsl_dir(what: str = "the fsl backend") -> Path:
    """``$FSLDIR`` if FSL is installed, else a :class:`ConfigError` that says what to do."""
    value = os.environ.get("FSLDIR", "").strip()
    if not value:
        raise ConfigError(
            f"{what} was chosen in the config but FSLDIR is not set, so FSL cannot be found. "
            "Install FSL and set FSLDIR, or choose the default backend (deepbet for brain "
            "extraction, simpleitk for registration)")
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(f"{what}: FSLDIR={value} is not a directory. Fix FSLDIR or choose the default "
                          "backend")
    return path


def fsl_tool(name: str, what: str) -> Path:
    tool = fsl_dir(what) / "bin" / name
    if not tool.exists():
        raise ConfigError(f"{what}: {tool} does not exist; FSLDIR points to an incomplete FSL "
                          "installation. Fix FSLDIR or choose the default backend")
    return tool


def register_flirt(fixed: nib.Nifti1Image, moving: nib.Nifti1Image, *, dof: int = 12,
                   subject: str | None = None, cost: str = "mutualinfo",
                   what: str = "registration") -> RegistrationResult:
    """Register with FSL FLIRT and return the equivalent ITK transform (fixed -> moving points).

    FLIRT's matrix lives in FSL's scaled-voxel coordinates; fslpy converts it to a RAS
    world-to-world matrix (moving world -> fixed world), which is inverted and turned into LPS.
    """
    tool = fsl_tool("flirt", f"{what} with the fsl backend")
    try:
        from fsl.data.image import Image as FslImage
        from fsl.transform.flirt import fromFlirt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(f"{what}: the fsl backend needs the Python package fslpy "
                          "(pip install fslpy)") from exc
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spectsynth-flirt-") as tmp:
        src, ref, mat = Path(tmp, "moving.nii.gz"), Path(tmp, "fixed.nii.gz"), Path(tmp, "moving2fixed.mat")
        nib.save(moving, src)
        nib.save(fixed, ref)
        cmd = [str(tool), "-in", str(src), "-ref", str(ref), "-omat", str(mat), "-dof", str(dof),
               "-cost", cost, "-searchcost", cost]
        env = dict(os.environ, FSLOUTPUTTYPE="NIFTI_GZ")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0 or not mat.exists():
            raise ProcessingError(f"{what}: FLIRT failed (exit {proc.returncode}): "
                                  f"{(proc.stderr or proc.stdout).strip()[-500:]}", subject=subject,
                                  hint="Run the printed FLIRT command by hand to see why")
        flirt_mat = np.loadtxt(mat)
        world = fromFlirt(flirt_mat, FslImage(str(src)), FslImage(str(ref)), "world", "world")
    seconds = time.perf_counter() - t0
    tx = affine_to_itk(np.linalg.inv(world))
    return RegistrationResult(tx, float("nan"), 0, 0, "FLIRT finished", True, seconds, backend="fsl")


def template_image() -> nib.Nifti1Image:
    """The nilearn MNI152 2009a symmetric T1 (brain only)."""
    return nib.load(str(resource_path("mni152_t1")))
