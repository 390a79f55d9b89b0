"""The demo cohort: realistic T1w MRIs of synthetic subjects, built offline.

Every subject starts from the MNI152 2009a head T1 that nilearn ships and gets an anatomy
of its own, driven by its age and sex (``participants.tsv``):

* head and brain size: an isotropic scaling to an intracranial volume (ICV) drawn around the
  sex's published mean (``icv_ml_female``/``icv_ml_male``, Matsumae et al. 1996, J Neurosurg
  84:982: 1289 +- 111 mL in women, 1469 +- 102 mL in men) with a within-sex log-SD ``icv_sd``,
  plus a volume-neutral per-axis head shape (``scale_sd``);
* ventricles that grow with age: each lateral ventricle is expanded by a log-volume factor
  ``ventricle_age_slope * (age - ventricle_reference_age)`` plus a shared and a side-specific
  random part, so ventricular volume varies several-fold across an adult cohort;
* sulcal CSF that grows with age: the template's CSF spaces (sulci and the brain surface)
  are widened by ``atrophy_mm_per_decade`` per decade above ``atrophy_reference_age`` (plus
  ``atrophy_sd_mm``), the tissue they take becoming CSF;
* striatal volume and shape: each striatum gets its own log-volume factor around
  ``striatum_mean_factor`` (the template's caudate + putamen are 0.46 % of its ICV, adults' about
  0.6 %), with ``local_volume_sd`` (left and right correlated), shrinking by ``striatum_age_slope``
  per year, and its own per-axis shape (``striatum_shape_sd``);
* left/right asymmetry: the hemispheres are widened or narrowed against each other
  (``hemisphere_asymmetry_sd``), with a front-to-back torque (``petalia_sd``);
* a random smooth non-linear deformation (a cubic B-spline with random control-point
  displacements);
* for ``n_resected`` subjects drawn from the seed (post-surgical patients, which only S2's unseen
  test set takes), a surgical resection: an anterior temporal lobectomy cavity of a random side,
  filled with CSF;
* a random head pose (rotations up to ``max_rotation_deg``, shifts up to ``max_shift_mm``);
* a smooth multiplicative bias field and Rician noise;
* a scanner-like native grid and orientation (sagittal slices, e.g. 1 x 1 x 1.2 mm, stored
  with axis codes P-S-R as many scanners export sagittal T1s).

The true mapping from each subject's scanner space to MNI152 space is kept as an ITK
transform (``.h5``) plus its affine part in JSON, so that later stages can measure their
registration error.  The cohort is deterministic: the same seed gives byte-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..config import fragment_defaults
from ..io import save_image, write_json, write_table, write_text
from ..paths import bids
from ..resources import resource_path
from .cohort import DEFAULT_N_SUBJECTS, DEFAULT_SEED, resected_labels, subject_labels  # noqa: F401

log = logging.getLogger(__name__)


# The declared options (options.yaml); the fields take their defaults from them.
_DECLARED = fragment_defaults(Path(__file__).with_name("options.yaml"), "inputs")["demo"]


@dataclass
class DemoParams:
    """Settings of the demo cohort (mirrors ``inputs.demo`` in the config schema)."""

    n_subjects: int = _DECLARED["n_subjects"]
    seed: int = _DECLARED["seed"]
    voxel_mm: tuple[float, float, float] = tuple(_DECLARED["voxel_mm"])  # A-P, S-I, L-R (sagittal slices)
    fov_mm: tuple[float, float, float] = tuple(_DECLARED["fov_mm"])
    max_rotation_deg: float = _DECLARED["max_rotation_deg"]
    max_shift_mm: float = _DECLARED["max_shift_mm"]
    deformation_mm: float = _DECLARED["deformation_mm"]
    control_spacing_mm: float = _DECLARED["control_spacing_mm"]
    local_volume_sd: float = _DECLARED["local_volume_sd"]
    field_spacing_mm: float = _DECLARED["field_spacing_mm"]
    scale_sd: float = _DECLARED["scale_sd"]
    icv_ml_female: float = _DECLARED["icv_ml_female"]
    icv_ml_male: float = _DECLARED["icv_ml_male"]
    icv_sd: float = _DECLARED["icv_sd"]
    ventricle_age_slope: float = _DECLARED["ventricle_age_slope"]
    ventricle_reference_age: float = _DECLARED["ventricle_reference_age"]
    ventricle_sd: float = _DECLARED["ventricle_sd"]
    ventricle_asymmetry_sd: float = _DECLARED["ventricle_asymmetry_sd"]
    atrophy_mm_per_decade: float = _DECLARED["atrophy_mm_per_decade"]
    atrophy_reference_age: float = _DECLARED["atrophy_reference_age"]
    atrophy_sd_mm: float = _DECLARED["atrophy_sd_mm"]
    striatum_age_slope: float = _DECLARED["striatum_age_slope"]
    striatum_mean_factor: float = _DECLARED["striatum_mean_factor"]
    striatum_shape_sd: float = _DECLARED["striatum_shape_sd"]
    striatum_asymmetry_sd: float = _DECLARED["striatum_asymmetry_sd"]
    hemisphere_asymmetry_sd: float = _DECLARED["hemisphere_asymmetry_sd"]
    petalia_sd: float = _DECLARED["petalia_sd"]
    n_resected: int = _DECLARED["n_resected"]
    resection_semi_axes_mm: tuple[float, float, float] = tuple(_DECLARED["resection_semi_axes_mm"])
    bias_strength: float = _DECLARED["bias_strength"]
    noise_fraction: float = _DECLARED["noise_fraction"]
    age_range: tuple[float, float] = tuple(_DECLARED["age_range"])
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict) -> DemoParams:
        keys = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in keys}
        return cls(**kwargs)


# Tissue layers added around the brain (outer distance from the brain surface in mm,
# T1w intensity relative to white matter).  The MNI152 T1 that nilearn ships is skull-
# stripped; a T1w from a scanner is not, and brain extraction must be exercised.
HEAD_LAYERS = (
    (2.0, 0.10),   # CSF and meninges
    (4.0, 0.04),   # inner table of the skull (cortical bone: no signal)
    (6.5, 0.35),   # diploe (fatty marrow)
    (8.5, 0.04),   # outer table
    (11.5, 0.40),  # temporal muscle / galea
    (15.0, 0.85),  # subcutaneous fat (bright on T1w)
    (16.5, 0.45),  # skin
)


def _brain_mask(data: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    wm = float(np.percentile(data[data > 0], 95))
    brain = ndimage.binary_fill_holes(ndimage.gaussian_filter(data, 1.0) > 0.05 * wm)
    return ndimage.binary_closing(brain, iterations=3)


def _head_layers(data: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Scalp and skull layers at distance ``dist`` (mm) outside the brain (0 inside)."""
    from scipy import ndimage

    wm = float(np.percentile(data[data > 0], 95))
    head = np.zeros_like(data, dtype=np.float32)
    inner = 0.0
    for outer, rel in HEAD_LAYERS:
        head[(dist > inner) & (dist <= outer)] = rel * wm
        inner = outer
    return ndimage.gaussian_filter(head, 0.6)


def add_head(data: np.ndarray, spacing_mm: float = 1.0) -> np.ndarray:
    """Wrap a skull-stripped T1w in CSF, skull, muscle, fat and skin layers."""
    from scipy import ndimage

    brain = _brain_mask(data)
    dist = ndimage.distance_transform_edt(~brain, sampling=spacing_mm)
    return np.where(brain, data, _head_layers(data, dist)).astype(np.float32)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


@dataclass
class TemplateParts:
    """The padded MNI152 T1 and the template-space maps the demo anatomy is made from."""

    data: np.ndarray        # skull-stripped T1 (padded), RAS voxel order
    affine: np.ndarray      # RAS affine of ``data``
    head: np.ndarray        # synthetic scalp/skull layers outside the brain (0 inside)
    brain: np.ndarray       # filled brain mask of the template (what the head layers wrap)
    icv: np.ndarray         # intracranial mask: the brain mask plus the CSF/meninges layer
    tissue: np.ndarray      # grey + white matter fraction (nilearn MNI152 probability maps)
    csf_dist: np.ndarray    # distance (mm) of every brain voxel from the nearest sulcal CSF / surface
    ventricles: np.ndarray  # lateral and third ventricles (template CSF in a central box)
    striatum: dict          # side -> caudate + putamen mask (Neuromorphometrics, on the template grid)
    csf_level: float        # T1 intensity of the template's ventricular CSF
    ras: tuple              # world x, y, z (mm) of every voxel (broadcastable)
    vent_dist: dict         # side -> (flat indices, sorted distances mm) of tissue a ventricle may grow into

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


_TEMPLATE_CACHE: dict[str, object] = {}
# Central box (MNI152 RAS, mm) that holds the lateral and third ventricles.
VENTRICLE_BOX = {"x": (-30.0, 30.0), "y": (-45.0, 30.0), "z": (-5.0, 35.0)}


def template_parts() -> TemplateParts:
    """The MNI152 T1 with synthetic head layers and its template-space maps (cached)."""
    if "parts" not in _TEMPLATE_CACHE:
        from scipy import ndimage

        img = nib.as_closest_canonical(nib.load(str(resource_path("mni152_t1"))))
        pad = 20
        data = np.pad(np.asarray(img.dataobj, dtype=np.float32), pad)
        aff = img.affine.copy()
        aff[:3, 3] -= aff[:3, :3] @ np.full(3, pad)
        zoom = float(np.mean(img.header.get_zooms()[:3]))
        brain = _brain_mask(data)
        dist_out = ndimage.distance_transform_edt(~brain, sampling=zoom)
        head = np.where(brain, 0.0, _head_layers(data, dist_out)).astype(np.float32)
        icv = dist_out <= HEAD_LAYERS[0][0]
        del dist_out
        prob = {}
        for key in ("gm", "wm"):
            m = nib.load(str(resource_path(f"mni152_{key}")))
            arr = np.asarray(m.dataobj, dtype=np.float32)
            prob[key] = np.pad(arr / max(float(arr.max()), 1e-6), pad)
        tissue = np.clip(prob["gm"] + prob["wm"], 0.0, 1.0) * brain
        i, j, k = (np.arange(n, dtype=np.float32) for n in data.shape)
        ras = (aff[0, 0] * i[:, None, None] + aff[0, 3], aff[1, 1] * j[None, :, None] + aff[1, 3],
               aff[2, 2] * k[None, None, :] + aff[2, 3])
        box = ((ras[0] > VENTRICLE_BOX["x"][0]) & (ras[0] < VENTRICLE_BOX["x"][1])
               & (ras[1] > VENTRICLE_BOX["y"][0]) & (ras[1] < VENTRICLE_BOX["y"][1])
               & (ras[2] > VENTRICLE_BOX["z"][0]) & (ras[2] < VENTRICLE_BOX["z"][1]))
        inner = ndimage.binary_erosion(brain, iterations=3)
        csf = (1.0 - tissue > 0.5) & inner
        ventricles = csf & box
        # Sulcal CSF and the brain surface (not the ventricles) are where atrophy widens CSF.
        sulcal = (csf & ~box) | ~brain
        crop = _bbox(brain, 4)
        csf_dist = np.full(data.shape, 100.0, np.float32)
        csf_dist[crop] = ndimage.distance_transform_edt(~sulcal[crop], sampling=zoom)
        atlas = nib.load(str(resource_path("atlas_neuromorphometrics")))
        m = np.linalg.inv(atlas.affine) @ aff
        lab = ndimage.affine_transform(np.asanyarray(atlas.dataobj).astype(np.int16), m[:3, :3], offset=m[:3, 3],
                                       output_shape=data.shape, order=0, mode="constant", cval=0)
        striatum = {"L": np.isin(lab, [37, 58]), "R": np.isin(lab, [36, 57])}
        # Ventricles grow into the periventricular tissue of their own side (not the striatum),
        # nearest voxels first: the distance of every such voxel from its ventricle, sorted.
        vent_dist = {}
        left = np.broadcast_to(ras[0] < 0, data.shape)
        for side, sel in (("L", left), ("R", ~left)):
            own = ventricles & sel
            crop = _bbox(own, int(np.ceil(26.0 / zoom)))
            dist = np.full(data.shape, np.inf, np.float32)
            dist[crop] = ndimage.distance_transform_edt(~own[crop], sampling=zoom)
            ok = inner & sel & ~striatum["L"] & ~striatum["R"] & (dist > 0) & (dist <= 25.0)
            flat = np.flatnonzero(ok)
            d = dist.ravel()[flat]
            order = np.argsort(d, kind="stable")
            vent_dist[side] = (flat[order], d[order].astype(np.float32), int(own.sum()))
        _TEMPLATE_CACHE["parts"] = TemplateParts(
            data=data, affine=aff, head=head, brain=brain, icv=icv, tissue=tissue.astype(np.float32),
            csf_dist=csf_dist, ventricles=ventricles, striatum=striatum,
            csf_level=float(np.median(data[ventricles])), ras=ras, vent_dist=vent_dist)
    return _TEMPLATE_CACHE["parts"]  # type: ignore[return-value]


def _load_template() -> sitk.Image:
    """The MNI152 T1 with synthetic head layers, padded so the head fits (cached)."""
    if "t1" not in _TEMPLATE_CACHE:
        t = template_parts()
        _TEMPLATE_CACHE["t1"] = _nib_to_sitk(np.where(t.brain, t.data, t.head).astype(np.float32), t.affine)
    return _TEMPLATE_CACHE["t1"]  # type: ignore[return-value]


def resection_cavity(t: TemplateParts, side: str, semi_axes_mm) -> np.ndarray:
    """Template-space fraction of an anterior temporal lobectomy cavity on one side.

    An ellipsoid around the anterior temporal lobe (temporal pole, amygdala and hippocampal
    head; MNI152 centre x = +-38, y = +2, z = -27 mm) within the intracranial mask, with a
    1 mm soft edge.
    """
    from scipy import ndimage

    cx = -38.0 if side == "L" else 38.0
    a, b, c = (float(v) for v in semi_axes_mm)
    r = np.sqrt(((t.ras[0] - cx) / a) ** 2 + ((t.ras[1] - 2.0) / b) ** 2 + ((t.ras[2] + 27.0) / c) ** 2)
    inside = (r <= 1.0) & t.brain
    return np.clip(ndimage.gaussian_filter(inside.astype(np.float32), 0.5), 0.0, 1.0) * t.brain


def subject_template(t: TemplateParts, atrophy_mm: float, cavity: np.ndarray | None,
                     ventricle_factors: Mapping[str, float] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1, tissue fraction, ventricles) of the template with the subject's CSF spaces and cavity.

    Each lateral ventricle grows by its factor (volume, at least 1) into the periventricular
    tissue of its side, nearest voxels first (ex-vacuo enlargement); tissue within
    ``atrophy_mm`` of sulcal CSF or the brain surface becomes CSF (a 1 mm partial-volume
    ramp); the cavity, if any, is CSF.
    """
    keep = np.clip(t.csf_dist - float(atrophy_mm), 0.0, 1.0) if atrophy_mm > 0 else np.ones_like(t.csf_dist)
    keep = np.where(t.brain, keep, 1.0)
    ventricles = t.ventricles.copy()
    for side, factor in (ventricle_factors or {}).items():
        flat, dist, n0 = t.vent_dist[side]
        n_new = int(round((max(float(factor), 1.0) - 1.0) * n0))
        if n_new <= 0:
            continue
        n_new = min(n_new, len(flat))
        grown = flat[:n_new]
        ventricles.ravel()[grown] = True
        keep.ravel()[grown] = 0.0
    if cavity is not None:
        keep = keep * (1.0 - cavity)
    data = np.where(t.data > t.csf_level, t.csf_level + (t.data - t.csf_level) * keep, t.data)
    if cavity is not None:
        data = data * (1.0 - cavity) + t.csf_level * cavity
    data = np.where(t.brain, data, t.head).astype(np.float32)
    return data, (t.tissue * keep).astype(np.float32), ventricles


def _nib_to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """RAS+ NIfTI array/affine -> SimpleITK image (LPS physical space)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    im = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    im.SetSpacing(tuple(float(s) for s in spacing))
    im.SetOrigin(tuple(float(o) for o in lps[:3, 3]))
    im.SetDirection(tuple(float(d) for d in direction.ravel()))
    return im


def _sitk_affine(im: sitk.Image) -> np.ndarray:
    """The RAS+ NIfTI affine of a SimpleITK image."""
    direction = np.asarray(im.GetDirection()).reshape(3, 3)
    spacing = np.asarray(im.GetSpacing())
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = im.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


# Centres and Gaussian widths (MNI152 RAS, mm) of the regions whose size and shape vary on
# their own through the deformation: each striatum (caudate + putamen).  (The ventricles grow
# in the template itself, see :func:`subject_template`.)
LOCAL_REGIONS = {
    "striatum_L": ((-21.0, 6.0, 3.0), (12.0, 16.0, 12.0)),
    "striatum_R": ((21.0, 6.0, 3.0), (12.0, 16.0, 12.0)),
}
_FLIP = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS


@dataclass
class AnatomyDraw:
    """The random anatomy of one demo subject (besides its pose and B-spline deformation)."""

    icv_target_ml: float
    shape_log: list[float]            # volume-neutral per-axis log scaling of the head
    local_log: dict[str, list[float]]  # striatum -> per-axis log scaling (sum = log volume factor)
    ventricle_factors: dict[str, float]  # side -> volume factor of the lateral ventricle
    hemisphere_asymmetry: float       # left minus right relative width
    petalia: float                    # change of that asymmetry from back (-) to front (+) over 70 mm
    atrophy_mm: float
    resection_side: str | None

    def as_dict(self) -> dict:
        return {"icv_target_ml": round(self.icv_target_ml, 2), "shape_log": [round(v, 5) for v in self.shape_log],
                "volume_factors": {k: round(float(np.exp(sum(v))), 4) for k, v in self.local_log.items()}
                | {f"ventricle_{k}": round(v, 4) for k, v in self.ventricle_factors.items()},
                "local_log_axes": {k: [round(x, 5) for x in v] for k, v in self.local_log.items()},
                "hemisphere_asymmetry": round(self.hemisphere_asymmetry, 5), "petalia": round(self.petalia, 5),
                "atrophy_mm": round(self.atrophy_mm, 4), "resection_side": self.resection_side}


def draw_anatomy(index: int, p: DemoParams, age: float, sex: str, resected: bool) -> AnatomyDraw:
    """Age-, sex- and seed-driven anatomy of demo subject ``index`` (its own random stream)."""
    rng = np.random.default_rng([p.seed, index, 3])
    z = rng.standard_normal(16)
    icv = (p.icv_ml_male if sex == "M" else p.icv_ml_female) * float(np.exp(p.icv_sd * z[0]))
    shape = p.scale_sd * z[1:4]
    shape = (shape - shape.mean()).tolist()
    local: dict[str, list[float]] = {}
    vents: dict[str, float] = {}
    vent = p.ventricle_age_slope * (age - p.ventricle_reference_age) + p.ventricle_sd * z[4]
    vasym = p.ventricle_asymmetry_sd * z[5]
    stri = (np.log(p.striatum_mean_factor) + p.striatum_age_slope * (age - p.atrophy_reference_age)
            + p.local_volume_sd * z[6])
    sasym = p.striatum_asymmetry_sd * z[7]
    for side, sign in (("L", 1.0), ("R", -1.0)):
        vents[side] = float(np.exp(np.clip(vent + sign * vasym / 2, 0.0, np.log(8.0))))
        ls = float(np.clip(stri + sign * sasym / 2, np.log(0.6), np.log(2.0)))
        sh = p.striatum_shape_sd * z[8:11] if side == "L" else p.striatum_shape_sd * z[11:14]
        local[f"striatum_{side}"] = (ls / 3 + sh - sh.mean()).tolist()
    atrophy = max(0.0, p.atrophy_mm_per_decade * (age - p.atrophy_reference_age) / 10 + p.atrophy_sd_mm * z[14])
    side = str(rng.choice(["L", "R"])) if resected else None
    return AnatomyDraw(icv, shape, local, vents, float(p.hemisphere_asymmetry_sd * z[15]),
                       float(p.petalia_sd * rng.standard_normal()), float(atrophy), side)


def _deformation_field(template: sitk.Image, p: DemoParams, rng: np.random.Generator,
                       draw: AnatomyDraw | None = None) -> sitk.Image:
    """Random smooth displacement field (mm, LPS) on a coarse grid over the template.

    The subject's image at template point ``q`` shows the template at ``q + d(q)``.  ``d`` is
    a cubic B-spline with random control-point displacements (global smooth shape variation),
    plus, from ``draw``: for every region of :data:`LOCAL_REGIONS` an expansion or shrinkage
    ``-k * (q - c) * w(q)`` (per axis, ``k = 1 - exp(-log factor)``, ``w`` a Gaussian window),
    which scales the region's volume by its factor; and a left/right asymmetry that widens
    one hemisphere against the other, with a front-to-back torque (petalia).  Each expansion
    is free of folds (its Jacobian determinant stays above ``(1 - k)^3 > 0``).
    """
    mesh = [max(1, int(round(sz * sp / p.control_spacing_mm))) for sz, sp in
            zip(template.GetSize(), template.GetSpacing())]
    bspline = sitk.BSplineTransformInitializer(template, mesh, 3)
    bspline.SetParameters(tuple(rng.normal(0.0, p.deformation_mm, size=len(bspline.GetParameters()))))
    size = [int(np.ceil(sz * sp / p.field_spacing_mm)) + 1 for sz, sp in
            zip(template.GetSize(), template.GetSpacing())]
    spacing = [p.field_spacing_mm] * 3
    field = sitk.TransformToDisplacementField(bspline, sitk.sitkVectorFloat64, size,
                                              template.GetOrigin(), spacing, template.GetDirection())
    disp = sitk.GetArrayFromImage(field)  # (z, y, x, 3), LPS mm
    if draw is not None:
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1)
        direction = np.asarray(template.GetDirection()).reshape(3, 3)
        pts = np.asarray(template.GetOrigin()) + (idx * spacing) @ direction.T  # (x, y, z, 3) LPS
        pts = pts.transpose(2, 1, 0, 3)
        for name, (centre_ras, sigma_ras) in LOCAL_REGIONS.items():
            k = 1.0 - np.exp(-np.asarray(draw.local_log[name]))
            rel = pts - np.asarray(centre_ras) * _FLIP
            w = np.exp(-0.5 * np.sum((rel / np.asarray(sigma_ras)) ** 2, axis=-1))[..., None]
            disp = disp - k * rel * w
        # Hemispheric asymmetry about the midline (RAS x = 0): the left hemisphere is wider by
        # a = asymmetry + petalia * y / 70 mm than the right one.
        x_ras, y_ras = -pts[..., 0], -pts[..., 1]
        a = draw.hemisphere_asymmetry + draw.petalia * np.clip(y_ras / 70.0, -1.5, 1.5)
        s_side = np.where(x_ras < 0, 1.0 + a / 2, 1.0 - a / 2)
        disp[..., 0] = disp[..., 0] - (1.0 - 1.0 / s_side) * pts[..., 0]
    out = sitk.GetImageFromArray(disp, isVector=True)
    out.CopyInformation(field)
    return out


def native_grid(p: DemoParams, centre_ras: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of the sagittal scanner grid (axis codes P, S, R)."""
    vox = np.asarray(p.voxel_mm, dtype=float)  # sizes along A-P, S-I, L-R
    fov = np.asarray(p.fov_mm, dtype=float)
    shape = tuple(int(round(f / v)) for f, v in zip(fov, vox))
    # voxel axes: i -> posterior, j -> superior, k -> right
    axes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T  # columns in RAS
    aff = np.eye(4)
    aff[:3, :3] = axes * vox
    centre_vox = (np.asarray(shape) - 1) / 2.0
    aff[:3, 3] = centre_ras - aff[:3, :3] @ centre_vox
    return shape, aff


@dataclass
class DemoSubject:
    label: str
    image: nib.Nifti1Image
    truth: dict
    transform: sitk.Transform  # maps subject scanner (LPS) points to MNI152 (LPS) points
    pose: sitk.AffineTransform  # first part of ``transform``
    field: sitk.Image  # displacement field (LPS mm) on a grid in MNI152 space, second part
    age: float
    sex: str
    resection: np.ndarray | None = None  # cavity mask on the scanner grid (uint8), zeros if none


def _warp(volume: np.ndarray, affine: np.ndarray, ref: sitk.Image, tx: sitk.Transform) -> np.ndarray:
    """A template-space map resampled (linear) onto the grid of ``ref`` through the true transform."""
    moved = sitk.Resample(_nib_to_sitk(np.asarray(volume, np.float32), affine), ref, tx, sitk.sitkLinear, 0.0,
                          sitk.sitkFloat32)
    return sitk.GetArrayFromImage(moved).transpose(2, 1, 0)


def true_volumes(parts: TemplateParts, tissue: np.ndarray, ventricles: np.ndarray, cavity: np.ndarray | None,
                 affine: np.ndarray,
                 shape: tuple[int, ...], tx: sitk.Transform, step_mm: float = 2.0) -> dict[str, float]:
    """True volumes (mL) of the subject's compartments: template maps carried by its true transform.

    Sampled on a ``step_mm`` version of the scanner grid (volumes, not images).
    """
    vox = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    factor = np.maximum(1, np.rint(step_mm / vox)).astype(int)
    coarse = affine.copy()
    coarse[:3, :3] = affine[:3, :3] * factor
    coarse[:3, 3] = (affine @ np.r_[(factor - 1) / 2.0, 1.0])[:3]
    cshape = tuple(int(np.ceil(n / f)) for n, f in zip(shape, factor))
    ref = _nib_to_sitk(np.zeros(cshape, np.float32), coarse)
    ml = float(abs(np.linalg.det(coarse[:3, :3]))) / 1000.0
    maps = {"icv": parts.icv.astype(np.float32), "brain_tissue": tissue, "ventricles": ventricles.astype(np.float32),
            "striatum_L": parts.striatum["L"], "striatum_R": parts.striatum["R"],
            "hemisphere_L": tissue * (parts.ras[0] < 0), "hemisphere_R": tissue * (parts.ras[0] >= 0)}
    if cavity is not None:
        maps["resection"] = cavity
    out = {k: round(float(_warp(v, parts.affine, ref, tx).sum()) * ml, 2) for k, v in maps.items()}
    out["csf"] = round(out["icv"] - out["brain_tissue"], 2)
    return out


def make_subject(index: int, p: DemoParams, template: sitk.Image | None = None, *,
                 resected: bool = False, label: str | None = None) -> DemoSubject:
    """Build demo subject number ``index`` (0-based), deterministic from ``p.seed``.

    ``resected`` gives the subject a resection cavity (see :func:`resected_subjects`).
    ``template`` overrides the anatomy entirely (no age-, sex- or resection-driven changes).
    ``label`` is the subject's label (default: its label in a cohort of ``p.n_subjects``).
    """
    parts = template_parts() if template is None else None
    rng = np.random.default_rng([p.seed, index])
    label = label or subject_labels(p.n_subjects)[index]
    age, sex = demographics(index, p)
    draw = draw_anatomy(index, p, age, sex, resected)
    cavity = None
    if parts is not None:
        cavity = resection_cavity(parts, draw.resection_side, p.resection_semi_axes_mm) if draw.resection_side else None
        t1, tissue, ventricles = subject_template(parts, draw.atrophy_mm, cavity, draw.ventricle_factors)
        template = _nib_to_sitk(t1, parts.affine)
        template_icv = float(parts.icv.sum()) * parts.voxel_ml
    else:
        template_icv = draw.icv_target_ml

    # --- pose (subject scanner space -> template space), in LPS as ITK wants it ---------
    angles = np.deg2rad(rng.uniform(-p.max_rotation_deg, p.max_rotation_deg, size=3))
    shift = rng.uniform(-p.max_shift_mm, p.max_shift_mm, size=3)
    iso = (draw.icv_target_ml / template_icv) ** (1.0 / 3.0)
    scales = iso * np.exp(np.asarray(draw.shape_log))
    rot = _rotation(*angles)
    centre_lps = np.asarray(template.TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2.0 for s in template.GetSize()]))
    pose = sitk.AffineTransform(3)
    pose.SetCenter(tuple(centre_lps))
    # subject -> template: undo the subject's head size and pose.
    pose.SetMatrix(tuple((rot @ np.diag(1.0 / scales)).ravel()))
    pose.SetTranslation(tuple(shift))

    # --- smooth non-linear deformation in template space ----------------------------------
    field = _deformation_field(template, p, rng, draw)
    true_tx = sitk.CompositeTransform([sitk.DisplacementFieldTransform(sitk.Image(field)), pose])
    # (pose applied first, then the deformation)

    # --- scanner grid ----------------------------------------------------------------------
    # Centre the field of view on where the template's head centre lands in scanner space.
    inv_pose = pose.GetInverse()
    centre_sub_lps = np.asarray(inv_pose.TransformPoint(tuple(centre_lps)))
    centre_sub_ras = centre_sub_lps * np.array([-1.0, -1.0, 1.0])
    shape, aff = native_grid(p, centre_sub_ras)
    ref = _nib_to_sitk(np.zeros(shape, dtype=np.float32), aff)
    moved = sitk.Resample(template, ref, true_tx, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    data = sitk.GetArrayFromImage(moved).transpose(2, 1, 0).astype(np.float64)
    data = np.clip(data, 0.0, None)
    resection_mask = np.zeros(shape, np.uint8)
    volumes = {}
    if parts is not None:
        if cavity is not None:
            resection_mask = (_warp(cavity, parts.affine, ref, true_tx) >= 0.5).astype(np.uint8)
        volumes = true_volumes(parts, tissue, ventricles, cavity, aff, shape, true_tx)

    # --- bias field and Rician noise ------------------------------------------------------
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    coef = rng.normal(0.0, 1.0, size=(3, 3))
    log_bias = sum(coef[a, 0] * grid[a] + coef[a, 1] * (grid[a] ** 2 - 1 / 3)
                   + coef[a, 2] * grid[a] * grid[(a + 1) % 3] for a in range(3))
    log_bias *= p.bias_strength / max(float(np.abs(log_bias).max()), 1e-6)
    data *= np.exp(log_bias)
    sigma = p.noise_fraction * float(np.percentile(data[data > 0], 95)) if np.any(data > 0) else 1.0
    n1 = rng.normal(0.0, sigma, size=shape)
    n2 = rng.normal(0.0, sigma, size=shape)
    data = np.sqrt((data + n1) ** 2 + n2 ** 2)
    scale = 1000.0 / max(float(np.percentile(data, 99.5)), 1e-6)
    data = np.clip(np.round(data * scale), 0, 32767).astype(np.int16)

    img = nib.Nifti1Image(data, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    img.header.set_xyzt_units("mm", "sec")

    pose_ras = _lps_affine_to_ras(pose)
    truth = {
        "subject": label,
        "seed": [p.seed, index],
        "age": age,
        "sex": sex,
        "rotation_deg": np.rad2deg(angles).round(4).tolist(),
        "shift_mm": shift.round(4).tolist(),
        "scales": scales.round(5).tolist(),
        "anatomy": draw.as_dict(),
        "volumes_ml": volumes,
        "resection": ({"resected": True, "side": draw.resection_side, "lobe": "temporal",
                       "procedure": "anterior temporal lobectomy",
                       "centre_mni_mm": [-38.0 if draw.resection_side == "L" else 38.0, 2.0, -27.0],
                       "semi_axes_mni_mm": list(p.resection_semi_axes_mm),
                       "volume_ml": volumes.get("resection"),
                       "reason": "inputs.demo.n_resected: a post-surgical patient (S2's unseen test set only)"} if draw.resection_side else {"resected": False}),
        "deformation_sd_mm": p.deformation_mm,
        "control_spacing_mm": p.control_spacing_mm,
        "affine_subject_to_mni_ras": pose_ras.round(6).tolist(),
        "note": "The full mapping from subject scanner points to MNI152 points (ITK, LPS) is the "
                "affine in the _desc-pose_xfm.tfm file followed by the displacement field in the "
                "_desc-deformation_xfm.nii.gz file; spectsynth.inputs.demo.load_true_transform "
                "composes them.",
    }
    return DemoSubject(label, img, truth, true_tx, pose, field, age, sex, resection_mask)


def demographics(index: int, p: DemoParams) -> tuple[float, str]:
    """Age and sex of demo subject ``index`` (its own random stream, independent of the image)."""
    rng = np.random.default_rng([p.seed, index, 1])
    age = float(np.round(rng.uniform(*p.age_range), 1))
    sex = str(rng.choice(["F", "M"]))
    return age, sex


def _lps_affine_to_ras(tx: sitk.AffineTransform) -> np.ndarray:
    """4x4 RAS matrix of an ITK affine transform (which works in LPS)."""
    m = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c = np.asarray(tx.GetCenter())
    t = np.asarray(tx.GetTranslation())
    lps = np.eye(4)
    lps[:3, :3] = m
    lps[:3, 3] = t + c - m @ c
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ lps @ flip


def write_subject(subj: DemoSubject, bids_root: str | Path) -> dict[str, Path]:
    """Write one subject into a BIDS dataset; return the written paths."""
    root = Path(bids_root)
    anat = root / f"sub-{subj.label}" / "anat"
    t1 = save_image(subj.image, anat / f"sub-{subj.label}_T1w.nii.gz")
    zooms = [float(z) for z in subj.image.header.get_zooms()[:3]]
    sidecar = write_json({
        "Modality": "MR",
        "MRAcquisitionType": "3D",
        "SliceOrientation": "sagittal",
        "Manufacturer": "spectsynth demo (simulated)",
        "MagneticFieldStrength": 3,
        "VoxelSizeMM": zooms,
        "GeneratedBy": "spectsynth.inputs.demo",
    }, anat / f"sub-{subj.label}_T1w.json")
    paths = truth_paths(root, subj.label)
    paths["pose"].parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(subj.pose, str(paths["pose"]))
    # A displacement-field image (ITK convention, LPS mm) is byte-reproducible, unlike HDF5.
    field = nib.Nifti1Image(
        sitk.GetArrayFromImage(subj.field).transpose(2, 1, 0, 3)[:, :, :, None, :].astype(np.float32),
        _sitk_affine(subj.field))
    field.header.set_intent("vector")
    save_image(field, paths["deformation"])
    js = write_json(subj.truth, paths["truth"])
    mask = subj.resection if subj.resection is not None else np.zeros(subj.image.shape, np.uint8)
    cav = nib.Nifti1Image(mask.astype(np.uint8), subj.image.affine)
    cav.set_qform(subj.image.affine, code=1)
    cav.set_sform(subj.image.affine, code=1)
    save_image(cav, paths["resection"])
    return {"T1w": t1, "sidecar": sidecar, "pose": paths["pose"],
            "deformation": paths["deformation"], "truth": js, "resection": paths["resection"]}


def truth_paths(bids_root: str | Path, label: str) -> dict[str, Path]:
    """Where the true transform of demo subject ``label`` is stored."""
    root = f"{bids_root}/derivatives/groundtruth"

    def xfm(**entities) -> Path:
        return Path(bids(root, subject=label, datatype="xfm", from_="T1w", to="MNI152", **entities,
                         suffix="xfm"))

    return {"pose": xfm(desc="pose", extension=".tfm"), "deformation": xfm(desc="deformation"),
            "truth": xfm(extension=".json"),
            "resection": Path(bids(root, subject=label, datatype="anat", desc="resection", suffix="mask"))}


def load_true_transform(bids_root: str | Path, label: str) -> sitk.Transform:
    """The true subject-to-MNI152 transform of a demo subject (ITK: maps LPS points)."""
    paths = truth_paths(bids_root, label)
    pose = sitk.ReadTransform(str(paths["pose"]))
    field = sitk.ReadImage(str(paths["deformation"]), sitk.sitkVectorFloat64)
    return sitk.CompositeTransform([sitk.DisplacementFieldTransform(field), pose])


def write_dataset_files(p: DemoParams, bids_root: str | Path) -> dict[str, Path]:
    """Write the dataset-level BIDS files (description, participants table)."""
    root = Path(bids_root)
    root.mkdir(parents=True, exist_ok=True)
    desc = write_json({
        "Name": "spectsynth demo cohort (simulated T1w MRIs from the MNI152 template)",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "Derived from the MNI ICBM152 2009a template (free use with acknowledgement)",
        "GeneratedBy": [{"Name": "spectsynth", "Description": f"demo cohort, seed {p.seed}"}],
    }, root / "dataset_description.json")
    (root / "derivatives" / "groundtruth").mkdir(parents=True, exist_ok=True)
    write_json({
        "Name": "true subject-to-MNI152 transforms of the demo cohort",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "spectsynth"}],
    }, root / "derivatives" / "groundtruth" / "dataset_description.json")
    rows = ["participant_id\tage\tsex"]
    for i, label in enumerate(subject_labels(p.n_subjects)):
        age, sex = demographics(i, p)
        rows.append(f"sub-{label}\t{age}\t{sex}")
    tsv = root / "participants.tsv"
    write_text("\n".join(rows) + "\n", tsv)
    pj = write_json({
        "age": {"Description": "age of the simulated participant", "Units": "years"},
        "sex": {"Description": "sex of the simulated participant",
                "Levels": {"F": "female", "M": "male"}},
    }, root / "participants.json")
    return {"description": desc, "participants": tsv, "participants_json": pj}



def resected_subjects(p: DemoParams) -> set[str]:
    """Demo subjects with a resection: ``n_resected`` of the cohort, drawn from the demo's seed.

    A property of the cohort (which patients had surgery), not of any study's split: S2 puts
    these subjects into its unseen test set, every other study leaves them out
    (:attr:`spectsynth.studies.base.Study.resected_split`).
    """
    return resected_labels(p.n_subjects, p.seed, p.n_resected)


def participant_ages(config: Mapping, subjects: list[str]) -> dict[str, float | None]:
    """Age of every subject: the demo's own demographics, or a BIDS dataset's participants.tsv.

    ``None`` where unknown (DICOM input, no table or no age column); the simulator then leaves
    the age terms out (of the global uptake level and of the DaT normal SBR).
    """
    from .participants import subject_age

    inputs = dict(config.get("inputs") or {})
    source = inputs.get("source", "demo")
    if source == "demo":
        p = DemoParams.from_config(dict(inputs.get("demo") or {}))
        labels = subject_labels(p.n_subjects)
        return {s: demographics(labels.index(s), p)[0] if s in labels else None for s in subjects}
    if source == "bids":
        root = (inputs.get("bids") or {}).get("root")
        table = str(Path(root) / "participants.tsv") if root else None
        return {s: subject_age(table, s) for s in subjects}
    return {s: None for s in subjects}


# Settings of inputs.demo that say which subjects the cohort has, not what a subject looks like.
COHORT_KEYS = ("n_subjects", "n_resected")


def subject_settings(demo_cfg: Mapping) -> dict:
    """The ``inputs.demo`` settings a subject's images depend on: the section without
    :data:`COHORT_KEYS`, whose effect on one subject (its label, whether it is resected) is passed
    to :func:`build_subject` by itself, so that a larger cohort leaves the existing subjects
    alone."""
    return {k: v for k, v in dict(demo_cfg).items() if k not in COHORT_KEYS}


def build_subject(index: int, demo_cfg: dict, bids_root: str | Path, *, label: str | None = None,
                  resected: bool | None = None) -> dict[str, Path]:
    """Make demo subject ``index`` from the ``inputs.demo`` config section and write it
    (resected when it is one of :func:`resected_subjects`). ``label`` and ``resected``, when given,
    are the subject's own (the workflow passes them with :func:`subject_settings`); otherwise they
    follow from the section's cohort size and ``n_resected``."""
    p = DemoParams.from_config(demo_cfg)
    if label is None:
        if not 0 <= index < p.n_subjects:
            raise ValueError(f"demo subject index {index} outside 0..{p.n_subjects - 1}")
        label = subject_labels(p.n_subjects)[index]
    if resected is None:
        resected = label in resected_subjects(p)
    subj = make_subject(index, p, resected=bool(resected), label=label)
    log.info("demo subject %s: rotation %s deg, shift %s mm, scales %s", subj.label,
             subj.truth["rotation_deg"], subj.truth["shift_mm"], subj.truth["scales"])
    return write_subject(subj, bids_root)


def build_dataset_files(demo_cfg: dict, bids_root: str | Path) -> dict[str, Path]:
    """Dataset-level BIDS files of the demo cohort from the ``inputs.demo`` config section."""
    return write_dataset_files(DemoParams.from_config(demo_cfg), bids_root)


def registration_error(bids_root: str | Path, label: str, estimated_xfm: str | Path,
                       template_mask: str | Path, n_points: int = 4000) -> dict:
    """Error of an estimated T1w->MNI152 registration of a demo subject, in mm.

    ``estimated_xfm`` follows the ITK resampling convention of the workflow's
    ``from-T1w_to-MNI152_mode-image`` files (it maps MNI152 points to subject points);
    the true transform maps subject points to MNI152 points.  For points ``q`` spread over
    the brain mask in MNI152 space the error is ``|true(estimated(q)) - q|``: how far the
    anatomy the registration put at ``q`` really lies from it.  It includes the subject's
    non-linear deformation that an affine registration cannot undo (the residual an
    affine method leaves on this cohort).
    """
    true_tx = load_true_transform(bids_root, label)
    est = sitk.ReadTransform(str(estimated_xfm))
    mask = nib.load(str(template_mask))
    idx = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    if len(idx) == 0:
        raise ValueError(f"subject {label}: template-space brain mask {template_mask} is empty")
    step = max(1, len(idx) // n_points)
    idx = idx[::step]
    ras = nib.affines.apply_affine(mask.affine, idx)
    lps = ras * np.array([-1.0, -1.0, 1.0])
    err = np.array([np.linalg.norm(np.asarray(true_tx.TransformPoint(est.TransformPoint(tuple(q))))
                                   - q) for q in lps])
    return {"subject": label, "n_points": int(len(err)), "mean_mm": round(float(err.mean()), 3),
            "median_mm": round(float(np.median(err)), 3),
            "p95_mm": round(float(np.percentile(err, 95)), 3),
            "max_mm": round(float(err.max()), 3)}


def registration_error_table(bids_root: str | Path, labels: list[str], xfms: list[str | Path],
                             masks: list[str | Path], out_tsv: str | Path) -> Path:
    """:func:`registration_error` of every demo subject as one TSV."""
    import pandas as pd

    rows = [registration_error(bids_root, s, x, m) for s, x, m in zip(labels, xfms, masks)]
    df = pd.DataFrame(rows)
    out_tsv = write_table(df, out_tsv, what="registration error of the demo subjects", allow_missing=True)
    log.info("registration error over %d demo subjects: mean %.2f mm (per subject %s)", len(df),
             df["mean_mm"].mean(), ", ".join(f"{v:.2f}" for v in df["mean_mm"]))
    return out_tsv
