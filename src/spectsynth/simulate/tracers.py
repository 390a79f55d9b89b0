"""Activity maps of the tracers, their calibration, and the degradation/defect models.

All maps live on the fine grid of a :class:`~.grid.PreparedAnatomy`, built from the
partial-volume fractions of the anatomy's labels and tissue maps, in arbitrary units
where non-specific grey-matter uptake (DaT) or white-matter perfusion is 1.

DaT (123I-ioflupane)
    ``A = nonspecific + sum_r s_r * retained_r(x) * f_r(x)`` over r = caudate/putamen of
    each side.  Non-specific uptake follows the tissues (``dat.nonspecific``; none outside
    the brain).  ``s_r`` is *calibrated*: the four values are solved from a linear system so
    that the noise-free image, after the physics, measures the subject's normal SBR
    (occipital reference by default) — the true ratios come out higher than the measured
    ones by exactly the partial-volume loss of the chosen physics.  The image-domain
    physics is linear, so the solve is exact there; for the projection path the solve uses
    the collimator's resolution and is then refined with noise-free reconstructions.
    The subject's normal target (:func:`normal_sbr_targets`) is the cohort mean
    ``normal_sbr`` at ``reference_age`` times the age term
    ``1 - age_decline_per_decade * (age - reference_age) / 10`` (none when the age is unknown),
    plus a between-subject spread ``normal_sbr_sd`` and a left/right asymmetry, floored at
    :data:`MIN_TARGET_SBR`.  Defaults from normal databases: 5.5 % per decade (ENC-DAT,
    Varrone et al. 2013, 4-6.7 %; van Dyck et al. 2002, 6.6 %; Matsuda et al. 2018, 6.3 %) and
    a spread of about 14 % (normal caudate 3.15 +- 0.54, putamen 1.89 +- 0.26 in Lange et al.
    2014), so that a cohort aged 45-80 measures a CV of 14-16 %.
    Degradation: the less affected side keeps ``PBR`` of its putaminal and ``CBR`` of its
    caudate specific binding, the more affected side (random, seeded) keeps ``SLR`` times
    that.  Within each putamen the loss grows from anterior to posterior:
    ``retained(t) = 1 - L * (1 + G * (1 - 2t))`` with ``L = 1 - kept``, ``t`` the
    posterior(0)-to-anterior(1) rank of the voxel and ``G = min(putamen_gradient, kept / L)``,
    which keeps the mean exactly at ``kept`` and every voxel within [0, 1].

Perfusion (123I-IMP, 99mTc-HMPAO/ECD)
    ``A = c * GM + 1 * WM + 0 * CSF``, ``c`` calibrated so that the *measured* grey:white
    ratio of the noise-free image is ``perfusion.gm_wm_ratio``.  Defects multiply ``A`` by
    ``1 - D(x)``: ``D`` is the part of a vascular territory within a random radius of a
    random centre, smoothed by a Gaussian penumbra and scaled to a depth drawn from
    ``defect_depth``.  Unilateral defects optionally reduce the contralateral cerebellum
    (crossed cerebellar diaschisis) by ``diaschisis`` times their depth.

FDG
    ``A = 5 * GM + 1 * WM + 0 * CSF`` (Hoffman phantom convention, ``fdg.ratios``).

Which model a tracer uses, its isotope, its physiology kind and its default scalp uptake are
read from its entry in :mod:`.registry` (``Tracer.uptake``, ``Tracer.physiology``,
``Tracer.extracerebral``); see "Adding a tracer" there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import quant
from ..config import declared
from ..errors import ConfigError, ProcessingError
from ..inputs.participants import subject_age  # noqa: F401  (re-exported for the simulation rules)
from ..io import load_image
from ..labels import STRIATUM as STRIATUM_LABELS
from ..labels import TERRITORIES
from .anatomy import resample_to_grid
from .design import DatDegradation, check_dat_parameters, dat_design, rng_for  # noqa: F401  (re-exported)
from .grid import PreparedAnatomy, pv_resample
from .physics import Physics, gaussian
from .registry import DAT, FDG, tracer

log = logging.getLogger(__name__)

STRIATAL = quant.STRIATAL_REGIONS
SUBJECT_STREAM = 1_000_000  # index of the random stream of per-subject (not per-image) draws
# Lowest normal target SBR: a subject drawn far in the lower tail (or very old under a steep age
# decline) keeps this much specific binding, so that the calibration still finds a positive solution.
MIN_TARGET_SBR = 0.3


def _opposite(side: str) -> str:
    return "R" if side == "L" else "L"


def tissue_activity(prep: PreparedAnatomy, gm: float, wm: float, csf: float) -> np.ndarray:
    m = prep.fine_maps
    return (gm * m["gm"] + wm * m["wm"] + csf * m["csf"]).astype(np.float32)


def _weights(prep: PreparedAnatomy, fine: bool) -> dict[str, np.ndarray]:
    return prep.fine_maps if fine else prep.camera_weights


# ---------------------------------------------------------------------------------------
# DaT
# ---------------------------------------------------------------------------------------
def putamen_retention(kept: float, rank: np.ndarray, gradient: float) -> tuple[np.ndarray, float]:
    """Voxel-wise fraction kept in a putamen whose mean fraction kept is ``kept``."""
    loss = 1.0 - float(kept)
    if loss <= 0:
        return np.ones_like(rank), 0.0
    g = min(float(gradient), float(kept) / loss) if kept > 0 else 0.0
    return np.clip(1.0 - loss * (1.0 + g * (1.0 - 2.0 * rank)), 0.0, 1.0).astype(np.float32), g


def dat_age_term(dat_cfg: dict, age: float | None) -> float:
    """Factor of the normal SBR at ``age``: ``1 - age_decline_per_decade * (age - reference_age) / 10``.

    1 when the age is unknown; never below 0.1 (the target floor takes over long before).
    """
    if age is None:
        return 1.0
    decline = float(dat_cfg["age_decline_per_decade"])
    return max(1.0 - decline * (float(age) - float(dat_cfg["reference_age"])) / 10.0, 0.1)


def normal_sbr_targets(z: np.ndarray, dat_cfg: dict, age: float | None = None) -> tuple[dict[str, float], dict]:
    """A subject's normal measured SBR from its three standard normal draws ``z``.

    ``caudate = (mean_c + sd_c z0) * age_term``, ``putamen = (mean_p + sd_p z1) * age_term``, both
    split between the sides by the asymmetry ``a = clip(normal_asymmetry_sd z2, +-0.6)`` as
    ``x (1 +- a/2)``; every target is floored at :data:`MIN_TARGET_SBR`.  Returns the four targets
    and a record of the model (age, age term, the age-adjusted cohort mean, the SDs, the floor).
    """
    z = np.asarray(z, dtype=float)
    mean, sd = dat_cfg["normal_sbr"], dat_cfg["normal_sbr_sd"]
    term = dat_age_term(dat_cfg, age)
    caud = (mean["caudate"] + sd["caudate"] * z[0]) * term
    put = (mean["putamen"] + sd["putamen"] * z[1]) * term
    a = float(np.clip(dat_cfg["normal_asymmetry_sd"] * z[2], -0.6, 0.6))
    raw = {"caudate_L": caud * (1 + a / 2), "caudate_R": caud * (1 - a / 2),
           "putamen_L": put * (1 + a / 2), "putamen_R": put * (1 - a / 2)}
    targets = {r: float(max(v, MIN_TARGET_SBR)) for r, v in raw.items()}
    info = {"age": None if age is None else float(age), "reference_age": float(dat_cfg["reference_age"]),
            "age_decline_per_decade": float(dat_cfg["age_decline_per_decade"]), "age_term": float(term),
            "age_adjusted_mean": {k: float(mean[k] * term) for k in ("caudate", "putamen")},
            "sd": {k: float(sd[k]) for k in ("caudate", "putamen")}, "asymmetry": a,
            "floor": MIN_TARGET_SBR, "floored": sorted(r for r, v in raw.items() if v < MIN_TARGET_SBR)}
    return targets, info


class DatModel:
    """DaT activity of one subject on one camera grid, calibrated to its physics.

    The subject's age (``physiology.age``; none without a physiology) sets the age term of its
    normal targets.
    """

    tracer = DAT

    def __init__(self, prep: PreparedAnatomy, cfg: dict, physics: Physics, *, seed: int,
                 targets: dict[str, float] | None = None, physiology: SubjectPhysiology | None = None):
        self.prep = prep
        self.cfg = cfg["dat"]
        self.physics = physics
        self.reference = self.cfg["reference"]
        ns = self.cfg["nonspecific"]
        self.nonspecific = tissue_activity(prep, ns["gm"], ns["wm"], ns["csf"])
        if physiology is not None:  # a resection cavity takes no tracer
            self.nonspecific = (self.nonspecific * (1.0 - physiology.cavity(prep))).astype(np.float32)
        self.age = physiology.age if physiology is not None else None
        self.target_model: dict = {"source": "given"}
        self.targets = targets if targets is not None else self.subject_targets(seed)
        self.specific = self.calibrate()

    def subject_targets(self, seed: int) -> dict[str, float]:
        """The subject's own normal measured SBR: age-adjusted cohort mean + spread + asymmetry.

        Three standard normals from the subject's DaT stream, always drawn in the same order, so
        the age term changes no draw (see :func:`normal_sbr_targets`).
        """
        rng = rng_for(seed, self.prep.subject, self.tracer, SUBJECT_STREAM)
        targets, info = normal_sbr_targets(rng.standard_normal(3), self.cfg, self.age)
        self.target_model = {"source": "drawn"} | info
        if info["floored"]:
            log.warning("subject %s: DaT normal target SBR of %s floored at %.2f", self.prep.subject,
                        ", ".join(info["floored"]), MIN_TARGET_SBR)
        return targets

    def _solve(self) -> dict[str, float]:
        w = self.prep.camera_weights
        resp = [self.physics.linear_response(self.nonspecific, self.prep)]
        resp += [self.physics.linear_response(self.prep.fine_maps[r], self.prep) for r in STRIATAL]
        means = {name: np.array([quant.weighted_mean(y, w[name], name=name) for y in resp])
                 for name in (*STRIATAL, self.reference)}
        ref = means[self.reference]
        a = np.zeros((4, 4))
        b = np.zeros(4)
        for i, r in enumerate(STRIATAL):
            t = 1.0 + self.targets[r]
            a[i] = means[r][1:] - t * ref[1:]
            b[i] = t * ref[0] - means[r][0]
        s = np.linalg.solve(a, b)
        return {r: float(v) for r, v in zip(STRIATAL, s)}

    def calibrate(self) -> dict[str, float]:
        """Specific binding (relative to non-specific GM uptake = 1) giving the target normal SBR."""
        s = self._solve()
        refinements = 0 if self.physics.calibration_is_exact else int(
            getattr(self.physics, "cfg", {}).get("calibration_refinements", 0))
        for _ in range(refinements):
            self.specific = s
            img = self.physics.image(self.activity(DatDegradation(), "L")[0], self.prep,
                                     total_counts=float(self.cfg["total_counts"]), rng=None)
            meas = quant.sbr(img, self.prep.camera_weights, self.reference)
            s = {r: float(s[r] * self.targets[r] / meas[r]) if meas[r] > 0 else s[r] for r in STRIATAL}
        bad = {r: v for r, v in s.items() if not v > 0}
        if bad:
            raise ProcessingError(
                f"DaT calibration failed: the target normal SBR {self.targets} cannot be reached with this "
                f"resolution and grid (solved specific binding {bad})", subject=self.prep.subject,
                hint="Lower simulate.dat.normal_sbr or the FWHM, or use a finer camera grid")
        log.info("subject %s: DaT calibrated specific binding %s for target SBR %s", self.prep.subject,
                 {k: round(v, 3) for k, v in s.items()}, {k: round(v, 3) for k, v in self.targets.items()})
        return s

    def activity(self, deg: DatDegradation, affected_side: str) -> tuple[np.ndarray, dict]:
        """Activity map of a degradation; the more affected side is ``affected_side``."""
        check_dat_parameters(deg.pbr, deg.cbr, deg.slr)
        act = self.nonspecific.copy()
        kept = {}
        gradients = {}
        for side in ("L", "R"):
            factor = deg.slr if side == affected_side else 1.0
            kept[f"caudate_{side}"] = deg.cbr * factor
            kept[f"putamen_{side}"] = deg.pbr * factor
            f_c = self.prep.fine_maps[f"caudate_{side}"]
            act += self.specific[f"caudate_{side}"] * kept[f"caudate_{side}"] * f_c
            retained, g = putamen_retention(kept[f"putamen_{side}"], self.prep.putamen_rank[side],
                                            self.cfg["putamen_gradient"])
            gradients[side] = g
            act += self.specific[f"putamen_{side}"] * retained * self.prep.fine_maps[f"putamen_{side}"]
        return act.astype(np.float32), {"kept": kept, "gradient_applied": gradients}


# ---------------------------------------------------------------------------------------
# Perfusion
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Defect:
    """One territorial perfusion defect (world coordinates in mm)."""

    territory: str       # e.g. "MCA_L"
    depth: float         # fractional reduction in the core, 0..1
    radius_mm: float
    centre_mm: tuple[float, float, float]

    @property
    def side(self) -> str:
        return self.territory[-1]

    def as_dict(self) -> dict:
        return {"territory": self.territory, "depth": round(self.depth, 4), "radius_mm": round(self.radius_mm, 2),
                "centre_mm": [round(v, 2) for v in self.centre_mm]}


def draw_defects(prep: PreparedAnatomy, pattern: str, pf_cfg: dict, rng: np.random.Generator) -> list[Defect]:
    """Random defects of a pattern ("normal", "unilateral", "bilateral")."""
    if pattern == "normal":
        return []
    if pattern == "unilateral":
        sides = [str(rng.choice(["L", "R"]))]
    elif pattern == "bilateral":
        sides = ["L", "R"]
    else:
        raise ValueError(f"unknown perfusion pattern {pattern!r}")
    out = []
    for side in sides:
        terr = f"{rng.choice(pf_cfg['territories'])}_{side}"
        frac = prep.fine_maps[terr]
        flat = frac.ravel().astype(np.float64)
        total = flat.sum()
        if total <= 0:
            raise ProcessingError(f"vascular territory {terr} is empty on the simulation grid", subject=prep.subject,
                                  hint="Check the territories label image of the anatomy stage")
        idx = int(rng.choice(flat.size, p=flat / total))
        centre = prep.fine.affine @ np.append(np.unravel_index(idx, frac.shape), 1.0)
        depth = float(rng.uniform(*pf_cfg["defect_depth"]))
        radius = float(rng.uniform(*pf_cfg["defect_radius_mm"]))
        out.append(Defect(terr, depth, radius, tuple(float(v) for v in centre[:3])))
    return out


def _normalised_smooth(core: np.ndarray, fwhm_mm: float, voxel_mm: float) -> np.ndarray:
    sm = gaussian(core, fwhm_mm, voxel_mm) if fwhm_mm > 0 else core.astype(np.float32)
    peak = float(sm.max())
    return (sm / peak).astype(np.float32) if peak > 0 else sm


def defect_field(prep: PreparedAnatomy, defects: list[Defect], pf_cfg: dict) -> tuple[np.ndarray, dict]:
    """Fractional reduction map D (0 = none) of a list of defects, with diaschisis."""
    fine = prep.fine
    d = np.zeros(fine.shape, np.float32)
    x = fine.axis_mm(0)[:, None, None]
    y = fine.axis_mm(1)[None, :, None]
    z = fine.axis_mm(2)[None, None, :]
    for df in defects:
        cx, cy, cz = df.centre_mm
        ball = ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) <= df.radius_mm ** 2
        core = prep.fine_maps[df.territory] * ball
        d = np.maximum(d, df.depth * _normalised_smooth(core, pf_cfg["penumbra_fwhm_mm"], fine.voxel_mm))
    info = {"diaschisis_side": None, "diaschisis_depth": 0.0}
    if len(defects) == 1 and pf_cfg["diaschisis"] > 0:
        side = _opposite(defects[0].side)
        cb = prep.fine_maps["cerebellum"] * prep.side_mask_fine(side)
        depth = float(pf_cfg["diaschisis"]) * defects[0].depth
        d = np.maximum(d, depth * _normalised_smooth(cb, pf_cfg["penumbra_fwhm_mm"], fine.voxel_mm))
        info = {"diaschisis_side": side, "diaschisis_depth": round(depth, 4)}
    return np.clip(d, 0.0, 1.0), info


class PerfusionModel:
    """Perfusion activity of one subject on one camera grid, calibrated grey:white ratio."""

    def __init__(self, prep: PreparedAnatomy, cfg: dict, physics: Physics, *, gm_to_wm: float | None = None,
                 physiology: SubjectPhysiology | None = None, tracer: str | None = None,
                 gm_wm_ratio: float | None = None):
        self.prep = prep
        self.cfg = cfg["perfusion"]
        self.physics = physics
        self.tracer = tracer or self.cfg["tracer"]
        self.target = float(self.cfg["gm_wm_ratio"] if gm_wm_ratio is None else gm_wm_ratio)
        self.extracerebral = dict(cfg.get("physiology", {}).get("extracerebral", {}))
        self._scalp_uptake = extracerebral_uptake(self.extracerebral, self.tracer)
        self.physiology = physiology
        self.gm_to_wm = float(gm_to_wm) if gm_to_wm is not None else self.calibrate()
        self._modulation: dict[bool, np.ndarray] = {}

    @property
    def scalp_uptake(self) -> float:
        """Uptake of the scalp relative to white matter (``physiology.extracerebral`` of the tracer)."""
        return self._scalp_uptake

    def tissue_activity(self) -> np.ndarray:
        """Perfusion of the tissue classes (the calibrated grey:white contrast) and of the scalp."""
        act = tissue_activity(self.prep, self.gm_to_wm, 1.0, 0.0)
        if self.scalp_uptake > 0:
            act = act + self.scalp_uptake * self.prep.scalp
        return act.astype(np.float32)

    def normal_activity(self, *, focus: bool = False) -> np.ndarray:
        """The subject's perfusion without defects: tissues times its physiology (with the focus if asked)."""
        act = self.tissue_activity()
        if self.physiology is None:
            return act
        if focus not in self._modulation:
            self._modulation[focus] = self.physiology.modulation(self.prep, self.tracer, focus=focus)
        return (act * self._modulation[focus]).astype(np.float32)

    def measured_ratio(self, image: np.ndarray) -> float:
        w = self.prep.camera_weights
        return quant.grey_white_ratio(image, w["gm_mask"], w["wm_mask"])

    def calibrate(self) -> float:
        """True GM:WM perfusion ratio that the physics turns into the target measured ratio."""
        w = self.prep.camera_weights
        m = self.prep.fine_maps
        yg = self.physics.linear_response(m["gm"], self.prep)
        # white matter and the scalp (fixed relative to white matter): the part c does not scale
        yw = self.physics.linear_response(m["wm"] + self.scalp_uptake * self.prep.scalp, self.prep)
        g_g, g_w = (quant.weighted_mean(y, w["gm_mask"], name="GM") for y in (yg, yw))
        w_g, w_w = (quant.weighted_mean(y, w["wm_mask"], name="WM") for y in (yg, yw))
        denom = g_g - self.target * w_g
        c = (self.target * w_w - g_w) / denom if denom > 0 else -1.0
        if not c > 0:
            limit = g_g / w_g if w_g > 0 else float("inf")
            raise ProcessingError(
                f"perfusion calibration failed: a measured grey:white ratio of {self.target} is out of reach "
                f"with this resolution (at most {limit:.2f})", subject=self.prep.subject,
                hint="Lower simulate.perfusion.gm_wm_ratio or the FWHM")
        refinements = 0 if self.physics.calibration_is_exact else int(
            getattr(self.physics, "cfg", {}).get("calibration_refinements", 0))
        for _ in range(refinements):
            self.gm_to_wm = c
            img = self.physics.image(self.tissue_activity(), self.prep,
                                     total_counts=float(self.cfg["total_counts"]), rng=None)
            r = self.measured_ratio(img)
            # Measured ratio r(c) ~ (a c + b) / (d c + e); move c by the relative error in (r - 1).
            c = max(c * (self.target - 1.0) / (r - 1.0), 1.0) if r > 1 else c * 1.5
        log.info("subject %s: perfusion true GM:WM ratio %.3f for a measured %.2f", self.prep.subject, c, self.target)
        return float(c)

    def activity(self, defects: list[Defect]) -> tuple[np.ndarray, np.ndarray, dict]:
        """(defect activity, normal activity, info) for a list of defects."""
        normal = self.normal_activity()
        d, info = defect_field(self.prep, defects, self.cfg)
        return (normal * (1.0 - d)).astype(np.float32), normal, info | {"reduction": d}

    def level_patterns(self, act: np.ndarray, normal: np.ndarray) -> dict[str, dict]:
        """Pattern label of every anatomical level, from the true reduction of perfusion.

        A side counts as affected at a level when at least ``level_min_volume_ml`` of its
        brain within the level's slab is reduced by ``level_min_reduction`` or more; the
        pattern is normal, unilateral or bilateral by the number of affected sides.  Also
        gives, per side, that volume (mL) and the mean reduction within it.
        """
        out = {}
        brain = self.prep.fine_maps["brain"]
        z = self.prep.fine.axis_mm(2)
        voxel_ml = self.prep.fine.voxel_mm ** 3 / 1000.0
        thr = float(self.cfg["level_min_reduction"])
        min_ml = float(self.cfg["level_min_volume_ml"])
        with np.errstate(invalid="ignore", divide="ignore"):
            reduction = np.where(normal > 0, 1.0 - act / normal, 0.0)
        for level, (z0, z1) in self.prep.levels_mm.items():
            slab = (z >= z0) & (z <= z1)
            entry: dict[str, object] = {}
            affected = []
            for side in ("L", "R"):
                w = brain[:, :, slab] * self.prep.side_mask_fine(side)[:, :, slab]
                hit = (reduction[:, :, slab] >= thr) * w
                ml = float(hit.sum() * voxel_ml)
                depth = float((reduction[:, :, slab] * hit).sum() / hit.sum()) if hit.sum() > 0 else 0.0
                entry[f"defect_ml_{side}"] = round(ml, 2)
                entry[f"defect_depth_{side}"] = round(depth, 4)
                if ml >= min_ml:
                    affected.append(side)
            entry["pattern"] = ("normal", "unilateral", "bilateral")[len(affected)]
            out[level] = entry
        return out


def extracerebral_uptake(extracerebral: dict, name: str) -> float:
    """Scalp uptake of tracer ``name`` relative to white matter: ``physiology.extracerebral`` of the
    config when it names the tracer, else the tracer's registry default (one registered at run
    time), 0 without an ``extracerebral`` section or a default."""
    if not extracerebral:
        return 0.0
    default = tracer(name).extracerebral if name not in extracerebral else None
    return float(extracerebral.get(name, default or 0.0))


def fdg_activity(prep: PreparedAnatomy, cfg: dict, physiology: SubjectPhysiology | None = None, *,
                 focus: bool = True, tracer: str = FDG) -> np.ndarray:
    """FDG uptake: the tissue ratios times the subject's metabolic physiology (with its focus)."""
    r = cfg["fdg"]["ratios"]
    act = tissue_activity(prep, r["gm"], r["wm"], r["csf"])
    scalp = extracerebral_uptake(dict(cfg.get("physiology", {}).get("extracerebral", {})), tracer)
    if scalp > 0:  # scalp and muscle glucose uptake, relative to white matter
        act = (act + scalp * float(r["wm"]) * prep.scalp).astype(np.float32)
    if physiology is None:
        return act
    return (act * physiology.modulation(prep, tracer, focus=focus)).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Physiology the T1w does not show: regional and global variation, epileptic focus, resection
# ---------------------------------------------------------------------------------------
#: Regions of the between-subject regional variation: vascular territories (lobar scale),
#: cerebellar hemispheres and striata.  Each gets one random factor per subject and tracer.
VARIATION_REGIONS = ("ACA_L", "ACA_R", "MCA_L", "MCA_R", "PCA_L", "PCA_R", "cerebellum_L", "cerebellum_R",
                     "striatum_L", "striatum_R")
LOBES: tuple[str, ...] = tuple(declared(Path(__file__).with_name("options.yaml"), "simulate.physiology.focus.lobes")["items"]["enum"])
# Lobe boundaries relative to the subject's own landmarks (mm, RAS): u = |x - midline|,
# v = y - y_striatum, w = z - z_striatum, with the striatum centroid of both sides at
# MNI152 ~ (0, 6, 3).  Temporal: MCA/PCA cortex and white matter below the Sylvian level
# (w < -6, MNI z < -3), lateral to the pallidum (u > 20) and in front of the temporo-occipital
# junction (-62 < v < 22, MNI y -56..28).  Frontal: ACA/MCA tissue in front of the
# precentral sulcus (v > 12, MNI y > 18), outside the temporal box.
TEMPORAL_BOX = {"u_min": 20.0, "w_max": -6.0, "v_min": -62.0, "v_max": 22.0}
FRONTAL_V_MIN = 12.0


@dataclass(frozen=True)
class Focus:
    """An interictal epileptic focus: hypoperfusion (SPECT) and hypometabolism (FDG) in one lobe."""

    side: str
    lobe: str
    centre_mm: tuple[float, float, float]
    radius_perfusion_mm: float
    radius_metabolism_mm: float
    depth_perfusion: float
    depth_metabolism: float

    def radius(self, kind: str) -> float:
        return self.radius_perfusion_mm if kind == "perfusion" else self.radius_metabolism_mm

    def depth(self, kind: str) -> float:
        return self.depth_perfusion if kind == "perfusion" else self.depth_metabolism

    def as_dict(self) -> dict:
        return {"focus_side": self.side, "focus_lobe": self.lobe,
                "focus_centre_mm": ";".join(f"{v:.1f}" for v in self.centre_mm),
                "focus_radius_perfusion_mm": round(self.radius_perfusion_mm, 2),
                "focus_radius_metabolism_mm": round(self.radius_metabolism_mm, 2),
                "focus_depth_perfusion": round(self.depth_perfusion, 4),
                "focus_depth_metabolism": round(self.depth_metabolism, 4)}


def _world_axes(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (mm) of every voxel of a grid (broadcastable arrays for axis-aligned grids)."""
    a = np.asarray(affine, float)
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
    if np.allclose(a[:3, :3], np.diag(np.diag(a[:3, :3]))):
        return (a[0, 0] * i[:, None, None] + a[0, 3], a[1, 1] * j[None, :, None] + a[1, 3],
                a[2, 2] * k[None, None, :] + a[2, 3])
    ii, jj, kk = np.meshgrid(i, j, k, indexing="ij")
    return tuple(a[r, 0] * ii + a[r, 1] * jj + a[r, 2] * kk + a[r, 3] for r in range(3))


@dataclass(frozen=True)
class Landmarks:
    """The subject's own reference points (world mm): midline x and striatum centroid."""

    midline_x: float
    striatum_mm: tuple[float, float, float]

    @classmethod
    def of(cls, anat) -> Landmarks:
        TABLE = STRIATUM_LABELS
        cents = []
        for side in ("L", "R"):
            idx = [k for k, v in TABLE.items() if v in (f"caudate_{side}", f"putamen_{side}")]
            pts = np.argwhere(np.isin(anat.striatum, idx))
            if len(pts) == 0:
                raise ProcessingError(f"the {side} striatum is empty in the anatomy", subject=anat.subject,
                                      hint="Check the striatum labels of the anatomy stage (QC figure)")
            cents.append((np.asarray(anat.affine) @ np.append(pts.mean(axis=0), 1.0))[:3])
        c = np.mean(cents, axis=0)
        return cls(float(c[0]), tuple(float(v) for v in c))

    def lobe_box(self, lobe: str, side: str, x, y, z) -> np.ndarray:
        """Geometric part of a lobe (boolean, broadcast over the coordinate arrays)."""
        u = (x - self.midline_x) * (-1.0 if side == "L" else 1.0)
        v = y - self.striatum_mm[1]
        w = z - self.striatum_mm[2]
        t = TEMPORAL_BOX
        temporal = (u > t["u_min"]) & (w < t["w_max"]) & (v > t["v_min"]) & (v < t["v_max"])
        if lobe == "temporal":
            return temporal
        if lobe == "frontal":
            return (u > 0) & (v > FRONTAL_V_MIN) & ~temporal
        raise ValueError(f"unknown lobe {lobe!r}; choose one of {', '.join(LOBES)}")


LOBE_TERRITORIES = {"temporal": ("MCA", "PCA"), "frontal": ("ACA", "MCA")}


def lobe_fraction(maps: dict[str, np.ndarray], landmarks: Landmarks, lobe: str, side: str, x, y, z) -> np.ndarray:
    """Fraction of every voxel that belongs to a lobe: its territories within the lobe's box."""
    terr = sum(maps[f"{t}_{side}"] for t in LOBE_TERRITORIES[lobe])
    return (np.clip(terr, 0.0, 1.0) * landmarks.lobe_box(lobe, side, x, y, z)).astype(np.float32)


def _taper(dist: np.ndarray, radius: float) -> np.ndarray:
    """1 within half the radius, a cos^2 fall to 0 at the radius, 0 beyond."""
    t = np.clip((dist - 0.5 * radius) / (0.5 * radius), 0.0, 1.0)
    return (np.cos(0.5 * np.pi * t) ** 2).astype(np.float32)


class SubjectPhysiology:
    """One subject's physiology beyond the tissue classes (``simulate.physiology``).

    Multiplicative uptake field of tracer kind ``k`` (perfusion or metabolism):
    ``M_k(x) = G_k * R_k(x) * (1 - F_k(x)) * (1 - C(x))`` where

    * ``G_k = (1 + age_slope * (age - reference_age)) * exp(global_sd * z_k)`` is the global level;
    * ``R_k(x) = 1 + sum_r d_r,k w_r(x) / (sum_r w_r(x) + w_0(x))``: one factor per region of
      :data:`VARIATION_REGIONS` (``d = clip(regional_sd * z, +-regional_max)``), ``w_r`` the
      region's fraction smoothed by ``regional_fwhm_mm`` (``w_0`` the rest of the brain, factor 1),
      so the field is smooth and never leaves ``1 +- regional_max``;
    * every standard normal ``z`` of a tracer kind is ``sqrt(rho) z_shared + sqrt(1 - rho) z_own``
      with ``rho = tracer_correlation``: perfusion and metabolism share that part of their
      variance (their coupling) and are independent beyond it;
    * ``F_k`` is the epileptic focus (S2's images only): ``depth_k`` within half of ``radius_k``
      of the centre, a cos^2 fall to 0 at ``radius_k``, restricted to the focus's lobe and
      smoothed by ``focus.penumbra_fwhm_mm``;
    * ``C`` is the resection cavity (fraction of each voxel): no uptake there.

    Everything is drawn from the subject's own random streams, so the perfusion and the FDG
    rules (and every camera grid) see the same subject.
    """

    def __init__(self, anat, cfg: dict, *, seed: int, age: float | None = None,
                 resection: np.ndarray | None = None):
        self.anat = anat
        self.cfg = cfg["physiology"]
        self.seed = int(seed)
        self.subject = anat.subject
        self.age = None if age is None else float(age)
        self.resection = resection
        self.landmarks = Landmarks.of(anat)
        n = len(VARIATION_REGIONS)
        shared = rng_for(seed, self.subject, "physiology", SUBJECT_STREAM).standard_normal(n + 1)
        rho = float(self.cfg["tracer_correlation"])
        self.regional: dict[str, dict[str, float]] = {}
        self.global_level: dict[str, float] = {}
        age_term = 1.0
        if self.age is not None:
            age_term = 1.0 + float(self.cfg["global_age_slope"]) * (self.age - float(self.cfg["reference_age"]))
        for kind in ("perfusion", "metabolism"):
            own = rng_for(seed, self.subject, f"physiology-{kind}", SUBJECT_STREAM).standard_normal(n + 1)
            z = np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * own
            lim = float(self.cfg["regional_max"])
            self.regional[kind] = {r: float(np.clip(self.cfg["regional_sd"] * z[i], -lim, lim))
                                   for i, r in enumerate(VARIATION_REGIONS)}
            self.global_level[kind] = float(max(age_term, 0.1) * np.exp(self.cfg["global_sd"] * z[n]))
        self.focus = self._draw_focus() if self.cfg["focus"]["enabled"] else None
        self._sublobar: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # --- the focus -----------------------------------------------------------------------
    def _draw_focus(self) -> Focus:
        f = self.cfg["focus"]
        rng = rng_for(self.seed, self.subject, "epileptic-focus", SUBJECT_STREAM)
        side = str(rng.choice(["L", "R"]))
        lobes = list(f["lobes"])
        p = np.asarray([float(f["lobe_weights"].get(lb, 0.0)) for lb in lobes])
        lobe = str(lobes[int(rng.choice(len(lobes), p=p / p.sum()))]) if p.sum() > 0 else lobes[0]
        if self.resection is not None and self.resection.any():
            # A resected patient's focus was where the surgeon operated: that side, that lobe.
            pts = np.argwhere(self.resection > 0.5)
            cx = (np.asarray(self.anat.affine) @ np.append(pts.mean(axis=0), 1.0))[0]
            side = "L" if cx < self.landmarks.midline_x else "R"
            lobe = "temporal"
        a = self.anat
        step = 2  # every second anatomy voxel is enough to place a centre
        maps = {name: (a.territories[::step, ::step, ::step] == k) for k, name in TERRITORIES.items()}
        aff = np.asarray(a.affine) @ np.diag([step, step, step, 1.0])
        x, y, z = _world_axes(maps["ACA_L"].shape, aff)
        cand = lobe_fraction(maps, self.landmarks, lobe, side, x, y, z) * (a.gm[::step, ::step, ::step] > 0.5)
        flat = cand.ravel().astype(np.float64)
        if flat.sum() <= 0:
            raise ProcessingError(f"the {side} {lobe} lobe has no grey matter in the anatomy", subject=self.subject,
                                  hint="Check the territories and tissue maps of the anatomy stage")
        idx = int(rng.choice(flat.size, p=flat / flat.sum()))
        centre = aff @ np.append(np.unravel_index(idx, cand.shape), 1.0)
        r_p = float(rng.uniform(*f["radius_mm"]))
        r_m = r_p * float(rng.uniform(*f["metabolism_extent_ratio"]))
        return Focus(side, lobe, tuple(float(v) for v in centre[:3]), r_p, r_m,
                     float(rng.uniform(*f["depth_perfusion"])), float(rng.uniform(*f["depth_metabolism"])))

    def focus_reduction(self, prep: PreparedAnatomy, kind: str) -> np.ndarray:
        """Fractional reduction F_k of the focus on the fine grid of ``prep`` (zeros without a focus)."""
        fine = prep.fine
        if self.focus is None:
            return np.zeros(fine.shape, np.float32)
        fc = self.focus
        x, y, z = (fine.axis_mm(i) for i in range(3))
        x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]
        dist = np.sqrt((x - fc.centre_mm[0]) ** 2 + (y - fc.centre_mm[1]) ** 2 + (z - fc.centre_mm[2]) ** 2)
        lobe = lobe_fraction(prep.fine_maps, self.landmarks, fc.lobe, fc.side, x, y, z)
        core = fc.depth(kind) * _taper(dist, fc.radius(kind)) * lobe
        pen = float(self.cfg["focus"]["penumbra_fwhm_mm"])
        return np.clip(gaussian(core, pen, fine.voxel_mm), 0.0, 1.0).astype(np.float32)

    # --- the cavity ----------------------------------------------------------------------
    def cavity(self, prep: PreparedAnatomy) -> np.ndarray:
        """Fraction of every fine voxel inside the resection cavity (zeros without one)."""
        if self.resection is None or not np.any(self.resection):
            return np.zeros(prep.fine.shape, np.float32)
        return np.clip(pv_resample(self.resection.astype(np.float32), self.anat.affine, prep.fine), 0.0, 1.0)

    # --- the fields ----------------------------------------------------------------------
    def regional_field(self, prep: PreparedAnatomy, kind: str) -> np.ndarray:
        """R_k on the fine grid of ``prep``: smooth, within 1 +- regional_max."""
        return region_field(prep, self.regional[kind], float(self.cfg["regional_fwhm_mm"]))

    def sublobar_field(self, prep: PreparedAnatomy, kind: str) -> np.ndarray:
        """S_k on the fine grid of ``prep``: 1 + a smooth random field of ``sublobar_fwhm_mm`` inside
        the brain (SD ``sublobar_sd``, clipped at 3 SD), 1 outside.

        Drawn once per subject on its anatomy grid (every second voxel) in world space, so that
        every camera grid sees the same field; shared between perfusion and metabolism as the
        regional factors are (``tracer_correlation``)."""
        sd = float(self.cfg["sublobar_sd"])
        if sd <= 0:
            return np.ones(prep.fine.shape, np.float32)
        if kind not in self._sublobar:
            self._sublobar[kind] = self._draw_sublobar(kind)
        field, aff = self._sublobar[kind]
        s = resample_to_grid(field, aff, prep.fine.shape, prep.fine.affine, order=1)
        return (1.0 + np.clip(s, -3 * sd, 3 * sd) * np.clip(prep.fine_maps["brain"], 0.0, 1.0)).astype(np.float32)

    def _draw_sublobar(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        step = 2
        a = self.anat
        brain = np.asarray(a.brain[::step, ::step, ::step]) > 0.5
        aff = np.asarray(a.affine) @ np.diag([step, step, step, 1.0])
        vox = float(np.mean(a.voxel_mm)) * step
        fwhm = float(self.cfg["sublobar_fwhm_mm"])

        def unit_field(stream: str) -> np.ndarray:
            z = rng_for(self.seed, self.subject, stream, SUBJECT_STREAM).standard_normal(brain.shape)
            f = gaussian(z.astype(np.float32), fwhm, vox)
            sd_in = float(f[brain].std()) if brain.any() else float(f.std())
            return f / sd_in if sd_in > 0 else f

        rho = float(self.cfg["tracer_correlation"])
        field = np.sqrt(rho) * unit_field("sublobar") + np.sqrt(1.0 - rho) * unit_field(f"sublobar-{kind}")
        return (float(self.cfg["sublobar_sd"]) * field).astype(np.float32), aff

    @staticmethod
    def kind_of(name: str) -> str:
        """The physiology kind (perfusion or metabolism) that modulates tracer ``name`` (its registry entry)."""
        kind = tracer(name).physiology
        if kind is None:
            raise ConfigError(f"tracer {name} has no physiology kind in spectsynth.simulate.registry: its uptake "
                              "is not modulated by the subject's perfusion or metabolism")
        return kind

    def modulation(self, prep: PreparedAnatomy, tracer: str, *, focus: bool = False) -> np.ndarray:
        """M_k of ``tracer`` on the fine grid of ``prep`` (multiplies the tissue activity)."""
        kind = self.kind_of(tracer)
        m = self.global_level[kind] * self.regional_field(prep, kind) * self.sublobar_field(prep, kind)
        if focus:
            m = m * (1.0 - self.focus_reduction(prep, kind))
        return (m * (1.0 - self.cavity(prep))).astype(np.float32)

    def record(self, tracer: str, *, focus: bool) -> dict:
        """Truth-table columns of this physiology for one image of ``tracer``."""
        kind = self.kind_of(tracer)
        rec: dict[str, object] = {"physiology_kind": kind, "global_level": round(self.global_level[kind], 5),
                                  "age": self.age, "tracer_correlation": float(self.cfg["tracer_correlation"])}
        rec |= {f"regional_{r}": round(v, 5) for r, v in self.regional[kind].items()}
        rec["sublobar_sd"] = float(self.cfg["sublobar_sd"])
        rec["sublobar_fwhm_mm"] = float(self.cfg["sublobar_fwhm_mm"])
        fc = self.focus if focus else None
        rec["focus"] = fc is not None
        keys = Focus("L", "temporal", (0.0, 0.0, 0.0), 0, 0, 0, 0).as_dict()
        rec |= fc.as_dict() if fc is not None else {k: None for k in keys}
        res = self.resection is not None and bool(np.any(self.resection))
        rec["resected"] = res
        rec["resection_ml"] = (round(float(np.sum(self.resection > 0.5)) * float(np.prod(self.anat.voxel_mm)) / 1000.0,
                                     2) if res else 0.0)
        return rec


def region_field(prep: PreparedAnatomy, factors: dict[str, float], fwhm_mm: float) -> np.ndarray:
    """``1 + sum_r d_r w_r / (sum_r w_r + w_0)`` on the fine grid: one factor ``d_r`` per region of
    :data:`VARIATION_REGIONS` (missing ones 0), region fractions smoothed by ``fwhm_mm``."""
    m = prep.fine_maps
    vox = prep.fine.voxel_mm
    regions = {name: m[name] for name in VARIATION_REGIONS[:6]}
    for side in ("L", "R"):
        sm = prep.side_mask_fine(side)
        regions[f"cerebellum_{side}"] = m["cerebellum"] * sm
        regions[f"striatum_{side}"] = m["striatum_any"] * sm
    # The filter is linear: sum_r d_r G(w_r) = G(sum_r d_r w_r), and the weights with the rest of
    # the brain, sum_r w_r + max(brain - sum_r w_r, 0), sum to max(brain, sum_r w_r): two filters
    # instead of one per region.
    weighted = np.zeros(prep.fine.shape, np.float32)
    covered = np.zeros(prep.fine.shape, np.float32)
    for name, frac in regions.items():
        weighted += float(factors.get(name, 0.0)) * frac
        covered += frac
    num = gaussian(weighted, fwhm_mm, vox)
    den = gaussian(np.maximum(np.asarray(m["brain"], np.float32), covered), fwhm_mm, vox)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    return (1.0 + r).astype(np.float32)


@dataclass(frozen=True)
class PetSession:
    """The 15O-water PET's own session, on another day than the SPECT (S3's pair).

    Flow differs between days globally (``global``: log-normal, ``pet_session.global_sd``) and
    per vascular territory and cerebellar hemisphere (``territories``: ``territory_sd``); the
    PET's quantification has its own error: a calibration factor (cross-calibration of scanner
    and well counter, input-function scale: ``calibration_sd``) and a flow-dependent bias of
    the input function's delay and dispersion, ``(F / 50)^exponent`` (``flow_exponent_sd``).
    """

    global_factor: float
    territories: dict[str, float]
    calibration: float
    flow_exponent: float

    @classmethod
    def draw(cls, cfg: dict, seed: int, subject: str) -> PetSession:
        rng = rng_for(seed, subject, "pet-session", SUBJECT_STREAM)
        z = rng.standard_normal(len(VARIATION_REGIONS) + 3)
        terr = {r: float(cfg["territory_sd"] * z[i]) for i, r in enumerate(VARIATION_REGIONS[:8])}
        n = len(VARIATION_REGIONS)
        return cls(float(np.exp(cfg["global_sd"] * z[n])), terr, float(np.exp(cfg["calibration_sd"] * z[n + 1])),
                   float(cfg["flow_exponent_sd"] * z[n + 2]))

    def flow(self, flow: np.ndarray, prep: PreparedAnatomy, fwhm_mm: float) -> np.ndarray:
        """The true flow on the PET's day (global and territorial factors on the shared flow)."""
        return (np.asarray(flow, np.float64) * self.global_factor * region_field(prep, self.territories, fwhm_mm))

    def quantify(self, measured: np.ndarray) -> np.ndarray:
        """The PET analysis's flow image from the ideal one (its calibration and input-function bias)."""
        f = np.clip(np.asarray(measured, np.float64), 0.0, None)
        return (self.calibration * f * (np.maximum(f, 1e-3) / 50.0) ** self.flow_exponent).astype(np.float32)

    def record(self) -> dict:
        return {"pet_session_global": round(self.global_factor, 5),
                "pet_session_calibration": round(self.calibration, 5),
                "pet_session_flow_exponent": round(self.flow_exponent, 5),
                **{f"pet_session_{r}": round(v, 5) for r, v in self.territories.items()}}


def load_resection(path: str | None, anat) -> np.ndarray | None:
    """A resection-cavity mask (any grid in the subject's world space) on the anatomy grid, or None."""
    if not path:
        return None
    # Subjects without a resection have an all-zero mask: no signal is the expected content.
    img = load_image(path, subject=anat.subject, check_values=False)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if not data.any():
        return None
    if data.shape == anat.shape and np.allclose(img.affine, anat.affine, atol=1e-3):
        return data
    return np.clip(resample_to_grid(data, img.affine, anat.shape, anat.affine, order=1), 0.0, 1.0)
