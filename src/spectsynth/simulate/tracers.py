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
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import numpy as np

from .. import quant
from ..errors import ProcessingError
from .config import check_dat_parameters
from .grid import PreparedAnatomy
from .physics import Physics, gaussian

log = logging.getLogger(__name__)

STRIATAL = quant.STRIATAL_REGIONS
SUBJECT_STREAM = 1_000_000  # index of the random stream of per-subject (not per-image) draws


def rng_for(seed: int, subject: str, tracer: str, index: int) -> np.random.Generator:
    """The random generator of one image (or of a subject's own draws, ``index=SUBJECT_STREAM``)."""
    ss = np.random.SeedSequence([int(seed), zlib.crc32(subject.encode()), zlib.crc32(tracer.encode()), int(index)])
    return np.random.default_rng(ss)


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
@dataclass(frozen=True)
class DatDegradation:
    """One point of the S0 design: fractions of specific binding kept."""

    pbr: float = 1.0
    cbr: float = 1.0
    slr: float = 1.0
    design_set: str = "normal"

    @property
    def is_normal(self) -> bool:
        return self.pbr == 1.0 and self.cbr == 1.0 and self.slr == 1.0

    @property
    def desc(self) -> str:
        def f(v: float) -> str:
            return f"{v:.2f}".rstrip("0").rstrip(".").replace(".", "p")

        return f"pbr{f(self.pbr)}cbr{f(self.cbr)}slr{f(self.slr)}"


def dat_design(dat_cfg: dict, seed: int) -> list[DatDegradation]:
    """The degradations simulated for every subject: the normal first, then ``n_main``
    ("main", for training/testing) and ``n_validation`` ("validation") distinct points.

    Candidates are every (PBR, CBR, SLR) of the configured grids with CBR >= PBR (the
    putamen is affected before the caudate), not all three equal to 1; they are drawn
    without replacement in an order fixed by ``seed``, so every subject gets the same design.
    """
    g = dat_cfg["grid"]
    cands = [(p, c, s) for p in g["pbr"] for c in g["cbr"] for s in g["slr"]
             if c >= p and not (p == 1 and c == 1 and s == 1)]
    cands = sorted(set(cands))
    need = int(dat_cfg["n_main"]) + int(dat_cfg["n_validation"])
    if need > len(cands):
        from ..errors import ConfigError

        raise ConfigError(f"simulate.dat asks for {need} degradations (n_main + n_validation) but the "
                          f"PBR/CBR/SLR grid offers only {len(cands)} combinations with CBR >= PBR; add grid values "
                          "or lower the counts")
    order = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"dat-design")])).permutation(len(cands))
    chosen = [cands[i] for i in order[:need]]
    for p, c, s in chosen:
        check_dat_parameters(p, c, s)
    out = [DatDegradation()]
    for k, (p, c, s) in enumerate(chosen):
        out.append(DatDegradation(float(p), float(c), float(s),
                                  "main" if k < int(dat_cfg["n_main"]) else "validation"))
    return out


def putamen_retention(kept: float, rank: np.ndarray, gradient: float) -> tuple[np.ndarray, float]:
    """Voxel-wise fraction kept in a putamen whose mean fraction kept is ``kept``."""
    loss = 1.0 - float(kept)
    if loss <= 0:
        return np.ones_like(rank), 0.0
    g = min(float(gradient), float(kept) / loss) if kept > 0 else 0.0
    return np.clip(1.0 - loss * (1.0 + g * (1.0 - 2.0 * rank)), 0.0, 1.0).astype(np.float32), g


class DatModel:
    """DaT activity of one subject on one camera grid, calibrated to its physics."""

    tracer = "DaT"

    def __init__(self, prep: PreparedAnatomy, cfg: dict, physics: Physics, *, seed: int,
                 targets: dict[str, float] | None = None):
        self.prep = prep
        self.cfg = cfg["dat"]
        self.physics = physics
        self.reference = self.cfg["reference"]
        ns = self.cfg["nonspecific"]
        self.nonspecific = tissue_activity(prep, ns["gm"], ns["wm"], ns["csf"])
        self.targets = targets if targets is not None else self.subject_targets(seed)
        self.specific = self.calibrate()

    def subject_targets(self, seed: int) -> dict[str, float]:
        """The subject's own normal measured SBR: cohort mean + between-subject spread + asymmetry."""
        rng = rng_for(seed, self.prep.subject, self.tracer, SUBJECT_STREAM)
        z = rng.standard_normal(3)
        mean, sd = self.cfg["normal_sbr"], self.cfg["normal_sbr_sd"]
        caud = mean["caudate"] + sd["caudate"] * z[0]
        put = mean["putamen"] + sd["putamen"] * z[1]
        a = float(np.clip(self.cfg["normal_asymmetry_sd"] * z[2], -0.6, 0.6))
        return {"caudate_L": float(caud * (1 + a / 2)), "caudate_R": float(caud * (1 - a / 2)),
                "putamen_L": float(put * (1 + a / 2)), "putamen_R": float(put * (1 - a / 2))}

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

    def __init__(self, prep: PreparedAnatomy, cfg: dict, physics: Physics, *, gm_to_wm: float | None = None):
        self.prep = prep
        self.cfg = cfg["perfusion"]
        self.physics = physics
        self.tracer = self.cfg["tracer"]
        self.target = float(self.cfg["gm_wm_ratio"])
        self.gm_to_wm = float(gm_to_wm) if gm_to_wm is not None else self.calibrate()

    def normal_activity(self) -> np.ndarray:
        return tissue_activity(self.prep, self.gm_to_wm, 1.0, 0.0)

    def measured_ratio(self, image: np.ndarray) -> float:
        w = self.prep.camera_weights
        return quant.grey_white_ratio(image, w["gm_mask"], w["wm_mask"])

    def calibrate(self) -> float:
        """True GM:WM perfusion ratio that the physics turns into the target measured ratio."""
        w = self.prep.camera_weights
        m = self.prep.fine_maps
        yg = self.physics.linear_response(m["gm"], self.prep)
        yw = self.physics.linear_response(m["wm"], self.prep)
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
            img = self.physics.image(self.normal_activity(), self.prep,
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


def fdg_activity(prep: PreparedAnatomy, cfg: dict) -> np.ndarray:
    r = cfg["fdg"]["ratios"]
    return tissue_activity(prep, r["gm"], r["wm"], r["csf"])
