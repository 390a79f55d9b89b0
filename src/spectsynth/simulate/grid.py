"""Camera grids in the subject's world space, partial-volume maps and the head model.

A *camera grid* is the voxel grid of a reconstructed SPECT/PET volume: axes along the
subject's RAS+ world axes (the camera rotates about the inferior-superior axis), isotropic
voxels, centred on the head.  The simulator works on a *fine grid* that splits every
camera voxel into ``factor**3`` sub-voxels (by default no coarser than 2 mm), so that
activity maps keep the anatomy's detail and the camera's voxel size acts as a box
detector response.

Anatomy maps reach the fine grid as partial-volume fractions: the mean of the 1 mm map
over the footprint of each fine voxel (box pre-filter, then linear sampling at the voxel
centres).  Camera-grid weights for quantification are the block means of the fine maps,
so a weighted mean on the camera grid equals a plain mean over the 1 mm label of the
image upsampled by nearest neighbour.

The head model (for attenuation and the field-of-view checks) grows shells around the
filled brain mask: CSF (water), skull (cortical bone) and scalp (water).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .. import quant
from ..errors import ConfigError
from ..labels import REFERENCE, STRIATUM, TERRITORIES
from .anatomy import Anatomy

# Linear attenuation coefficients (1/cm) of water and cortical bone.
MU_PER_CM = {159.0: {"water": 0.147, "bone": 0.276}, 140.0: {"water": 0.153, "bone": 0.292}}


def mu_at(energy_keV: float) -> dict[str, float]:
    """Attenuation coefficients at the tabulated energy closest to ``energy_keV``."""
    key = min(MU_PER_CM, key=lambda e: abs(e - energy_keV))
    if abs(key - energy_keV) > 5:
        raise ConfigError(f"no attenuation coefficients for {energy_keV} keV (tabulated: "
                          f"{', '.join(str(k) for k in MU_PER_CM)} keV)")
    return MU_PER_CM[key]


@dataclass(frozen=True)
class Grid:
    """An isotropic voxel grid aligned with the RAS+ world axes."""

    shape: tuple[int, int, int]
    voxel_mm: float
    origin: tuple[float, float, float]  # world position (mm) of the centre of voxel (0, 0, 0)

    @property
    def affine(self) -> np.ndarray:
        a = np.diag([self.voxel_mm, self.voxel_mm, self.voxel_mm, 1.0])
        a[:3, 3] = self.origin
        return a

    @property
    def centre(self) -> np.ndarray:
        return np.asarray(self.origin) + (np.asarray(self.shape) - 1) / 2.0 * self.voxel_mm

    @property
    def extent_mm(self) -> np.ndarray:
        return np.asarray(self.shape, float) * self.voxel_mm

    def refine(self, factor: int) -> Grid:
        """The grid that splits every voxel into ``factor**3`` sub-voxels (same edges)."""
        f = int(factor)
        fine = self.voxel_mm / f
        origin = np.asarray(self.origin) - self.voxel_mm / 2.0 + fine / 2.0
        return Grid(tuple(int(s) * f for s in self.shape), fine, tuple(float(v) for v in origin))

    def axis_mm(self, axis: int) -> np.ndarray:
        """World coordinate (mm) of the voxel centres along one axis."""
        return self.origin[axis] + np.arange(self.shape[axis]) * self.voxel_mm

    def slices_in(self, z_lo: float, z_hi: float) -> tuple[int, int]:
        """Slice range [start, stop) whose centres lie within world z in [z_lo, z_hi]."""
        z = self.axis_mm(2)
        idx = np.nonzero((z >= z_lo) & (z <= z_hi))[0]
        if idx.size == 0:
            k = int(np.argmin(np.abs(z - (z_lo + z_hi) / 2)))
            return k, k + 1
        return int(idx[0]), int(idx[-1]) + 1


def block_sum(data: np.ndarray, factor: int) -> np.ndarray:
    """Sum non-overlapping ``factor**3`` blocks (fine grid -> camera grid)."""
    f = int(factor)
    if f == 1:
        return np.asarray(data)
    nx, ny, nz = (s // f for s in data.shape)
    return data[: nx * f, : ny * f, : nz * f].reshape(nx, f, ny, f, nz, f).sum(axis=(1, 3, 5))


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    return block_sum(data, factor) / float(int(factor) ** 3)


def nonzero_bbox(data: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """First and last index along every axis of the non-zero voxels (``None`` when there is
    none): ``np.argwhere(data).min(axis=0)`` / ``.max(axis=0)``, from one projection per axis
    instead of the list of every non-zero voxel (a brain mask holds millions)."""
    mask = np.asarray(data) != 0
    lo, hi = [], []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        lo.append(hit[0])
        hi.append(hit[-1])
    return np.array(lo, dtype=np.intp), np.array(hi, dtype=np.intp)


def brain_extent_mm(anat: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box (lower, upper corner, mm) of the brain mask, voxel edges included."""
    first, last = nonzero_bbox(anat.brain)
    lo, hi = first - 0.5, last + 0.5
    corners = np.array([[a, b, c, 1.0] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    world = (np.asarray(anat.affine) @ corners.T).T[:, :3]
    return world.min(axis=0), world.max(axis=0)


def head_thickness_mm(head_cfg: dict) -> float:
    return float(head_cfg["csf_mm"]) + float(head_cfg["bone_mm"]) + float(head_cfg["scalp_mm"])


def camera_grid(anat: Anatomy, matrix: int, voxel_mm: float, head_cfg: dict, *, what: str = "SPECT") -> Grid:
    """A cubic ``matrix**3`` grid of ``voxel_mm`` voxels centred on the subject's head.

    Raises :class:`ConfigError` when the head (brain plus the head model's shells) does not
    fit into the field of view.
    """
    lo, hi = brain_extent_mm(anat)
    t = head_thickness_mm(head_cfg)
    head = (hi - lo) + 2 * t
    fov = matrix * voxel_mm
    if np.any(head > fov):
        raise ConfigError(
            f"subject {anat.subject}: the {what} grid is too small for the head: field of view "
            f"{matrix} x {voxel_mm:g} mm = {fov:g} mm, but the head (brain plus {t:g} mm of scalp and skull) "
            f"spans {head[0]:.0f} x {head[1]:.0f} x {head[2]:.0f} mm; increase simulate.{what.lower()}.matrix "
            f"or simulate.{what.lower()}.voxel_mm")
    # Centre on the brain's bounding box (rounded to 1 um so that the grid is reproducible).
    centre = np.round((lo + hi) / 2.0, 3)
    origin = centre - (matrix - 1) / 2.0 * voxel_mm
    return Grid((int(matrix),) * 3, float(voxel_mm), tuple(float(v) for v in origin))


def pv_resample(data: np.ndarray, src_affine: np.ndarray, grid: Grid, *, bbox_pad: int = 2) -> np.ndarray:
    """Partial-volume fractions (footprint means) of a source map on ``grid``.

    The source is box-filtered with the size of one target voxel (in source voxels), then
    sampled linearly at the target voxel centres.  Only the bounding box of the map's
    non-zero voxels is processed.
    """
    src = np.asarray(data, dtype=np.float32)
    box = nonzero_bbox(src)
    out_shape = grid.shape
    if box is None:
        return np.zeros(out_shape, np.float32)
    src_vox = np.sqrt((np.asarray(src_affine)[:3, :3] ** 2).sum(axis=0))
    size = np.maximum(1, np.rint(grid.voxel_mm / src_vox).astype(int))
    pad = size + bbox_pad
    lo = np.maximum(box[0] - pad, 0)
    hi = np.minimum(box[1] + pad + 1, src.shape)
    crop = src[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if np.any(size > 1):
        crop = ndimage.uniform_filter(crop, size=tuple(int(s) for s in size), mode="constant")
    shift = np.eye(4)
    shift[:3, 3] = lo
    m = np.linalg.inv(np.asarray(src_affine, float) @ shift) @ grid.affine
    # An even box of size s at index i covers i - s/2 .. i + s/2 - 1: its centre is i - 1/2.
    offset = m[:3, 3] + np.where(size % 2 == 0, 0.5, 0.0)
    out = ndimage.affine_transform(crop, m[:3, :3], offset=offset, output_shape=out_shape, order=1,
                                   mode="constant", cval=0.0, prefilter=False)
    return np.clip(out, 0.0, None).astype(np.float32)


def _midline_x(anat: Anatomy) -> float:
    """World x of the midline: halfway between the left and right striatum's centroids."""
    xs = []
    for names in (("caudate_L", "putamen_L"), ("caudate_R", "putamen_R")):
        idx = [k for k, v in STRIATUM.items() if v in names]
        pts = np.argwhere(np.isin(anat.striatum, idx))
        xs.append((np.asarray(anat.affine) @ np.append(pts.mean(axis=0), 1.0))[0])
    return float(np.mean(xs))


@dataclass
class PreparedAnatomy:
    """One subject's anatomy on one camera grid: everything the tracers and physics need."""

    anatomy: Anatomy
    camera: Grid
    fine: Grid
    factor: int
    fine_maps: dict[str, np.ndarray]
    camera_weights: dict[str, np.ndarray]
    head: np.ndarray                      # fine-grid head mask (brain + shells)
    bone: np.ndarray                      # fine-grid skull fraction
    scalp: np.ndarray                     # fine-grid scalp shell (extracerebral uptake)
    midline_x: float
    levels_mm: dict[str, tuple[float, float]]
    putamen_rank: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.anatomy.subject

    def mu_map(self, energy_keV: float) -> np.ndarray:
        """Camera-grid attenuation map (1/cm) at ``energy_keV``."""
        mu = mu_at(energy_keV)
        fine = np.where(self.head, mu["water"], 0.0) + self.bone * (mu["bone"] - mu["water"])
        return block_mean(fine.astype(np.float32), self.factor).astype(np.float32)

    def level_slices(self) -> dict[str, tuple[int, int]]:
        """Camera-grid slice range [start, stop) of every anatomical level."""
        return {k: self.camera.slices_in(*v) for k, v in self.levels_mm.items()}

    def side_mask_fine(self, side: str) -> np.ndarray:
        x = self.fine.axis_mm(0)[:, None, None]
        return np.broadcast_to((x < self.midline_x) if side == "L" else (x >= self.midline_x), self.fine.shape)

    def side_mask_camera(self, side: str) -> np.ndarray:
        x = self.camera.axis_mm(0)[:, None, None]
        return np.broadcast_to((x < self.midline_x) if side == "L" else (x >= self.midline_x), self.camera.shape)


def fine_factor(voxel_mm: float, max_fine_mm: float) -> int:
    return max(1, int(np.ceil(voxel_mm / max_fine_mm - 1e-6)))


def _putamen_rank(frac: np.ndarray, fine: Grid) -> np.ndarray:
    """Posterior (0) to anterior (1) rank of every fine voxel of a putamen, weighted by its fraction."""
    w_y = frac.sum(axis=(0, 2)).astype(np.float64)
    total = w_y.sum()
    if total <= 0:
        return np.zeros_like(frac)
    cdf = (np.cumsum(w_y) - w_y / 2.0) / total
    return np.broadcast_to(cdf[None, :, None], frac.shape).astype(np.float32)


def tissue_cores(anat: Anatomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM and CSF core masks of an anatomy (:func:`spectsynth.quant.tissue_core_masks`) on
    its own grid. They do not depend on the camera grid: computed once per anatomy and kept on
    it, so that a job preparing two grids (simulate_pet: PET and SPECT) smooths the maps once."""
    if anat.tissue_cores is None:
        gm_mask, wm_mask = quant.tissue_core_masks(anat.gm * anat.brain, anat.wm * anat.brain, tuple(anat.voxel_mm))
        csf_mask, _ = quant.tissue_core_masks(anat.csf * anat.brain, np.zeros_like(anat.csf), tuple(anat.voxel_mm))
        anat.tissue_cores = (gm_mask, wm_mask, csf_mask)
    return anat.tissue_cores


def prepare(anat: Anatomy, matrix: int, voxel_mm: float, head_cfg: dict, *, max_fine_mm: float = 2.0,
            what: str = "SPECT") -> PreparedAnatomy:
    """Bring an anatomy onto a camera grid (and its fine grid): fractions, weights, head model."""
    camera = camera_grid(anat, matrix, voxel_mm, head_cfg, what=what)
    factor = fine_factor(voxel_mm, max_fine_mm)
    fine = camera.refine(factor)
    A = anat.affine
    maps: dict[str, np.ndarray] = {}
    maps["brain"] = pv_resample(anat.brain, A, fine)
    for key in ("gm", "wm", "csf"):
        maps[key] = pv_resample(getattr(anat, key) * anat.brain, A, fine)
    for idx, name in STRIATUM.items():
        maps[name] = pv_resample(anat.striatum == idx, A, fine)
    for idx, name in REFERENCE.items():
        maps[name] = pv_resample(anat.reference == idx, A, fine)
    maps["striatum_any"] = pv_resample(anat.striatum > 0, A, fine)
    maps["brain_minus_striatum"] = np.clip(maps["brain"] - maps["striatum_any"], 0, None)
    for idx, name in TERRITORIES.items():
        maps[name] = pv_resample(anat.territories == idx, A, fine)
    gm_mask, wm_mask, csf_mask = tissue_cores(anat)
    maps["gm_mask"] = pv_resample(gm_mask, A, fine)
    maps["wm_mask"] = pv_resample(wm_mask, A, fine)
    maps["csf_mask"] = pv_resample(csf_mask, A, fine)
    # Head model on the fine grid.
    inside = ndimage.binary_fill_holes(maps["brain"] >= 0.5)
    dist = ndimage.distance_transform_edt(~inside, sampling=fine.voxel_mm)
    csf, bone_t = float(head_cfg["csf_mm"]), float(head_cfg["bone_mm"])
    head = dist <= head_thickness_mm(head_cfg)
    bone = ((dist > csf) & (dist <= csf + bone_t)).astype(np.float32)
    scalp = ((dist > csf + bone_t) & head).astype(np.float32)
    weights = {k: block_mean(v, factor).astype(np.float32) for k, v in maps.items()}
    midline = _midline_x(anat)
    prep = PreparedAnatomy(anatomy=anat, camera=camera, fine=fine, factor=factor, fine_maps=maps,
                           camera_weights=weights, head=head, bone=bone, scalp=scalp, midline_x=midline,
                           levels_mm=anat.level_z_mm())
    for side in ("L", "R"):
        prep.putamen_rank[side] = _putamen_rank(maps[f"putamen_{side}"], fine)
    return prep


def check_orbit(prep: PreparedAnatomy, radius_mm: float) -> None:
    """Refuse a camera orbit whose radius does not clear the head."""
    x = prep.fine.axis_mm(0) - prep.camera.centre[0]
    y = prep.fine.axis_mm(1) - prep.camera.centre[1]
    r = np.sqrt(x[:, None] ** 2 + y[None, :] ** 2)
    head_xy = prep.head.any(axis=2)
    r_head = float(r[head_xy].max()) if head_xy.any() else 0.0
    if r_head >= radius_mm:
        raise ConfigError(
            f"subject {prep.subject}: the camera orbit radius {radius_mm:g} mm does not clear the head "
            f"(head reaches {r_head:.0f} mm from the axis of rotation); increase "
            "simulate.projection.radius_mm")
