"""Tracer kinetics of S3's CBF pair: one true flow map, each tracer's own uptake and quantification.

S3 compares 123I-IMP SPECT-CBF with 15O-water PET-CBF.  Both are reconstructed to
mL/100 g/min, but the two tracers reach that number through different physiology, and the
differences between the two maps should come from there rather than from a chosen contrast:

* **15O-water (PET)** is freely diffusible, but its first-pass extraction is incomplete at high
  flow.  The Renkin-Crone model gives the extraction ``E = 1 - exp(-PS / F)`` with a finite
  permeability-surface area product ``PS``; a one-tissue (Kety) analysis then measures
  ``K1 = E F`` and reports it as the flow.  Herscovitch et al. (J Cereb Blood Flow Metab 1987;
  7:527-542) measured ``PS_w = 104`` mL/100 g/min and a global ``E_w = 0.84`` in 17 normal
  subjects (global CBF 44.4 with water against 53.1 with 11C-butanol).
* **123I-IMP (SPECT)** has a very high first-pass extraction (taken as 1, as the quantification
  model assumes), but back-diffuses from the brain: a one-tissue model with ``K1 = F`` and
  ``k2 = F / Vd``, ``Vd`` the regional distribution volume.  The autoradiographic (ARG) method
  (Iida et al., J Nucl Med 1994; 35:2019-2030) turns one SPECT scan at mid-time 30-40 min
  into flow with a table look-up under a **fixed** ``Vd = 30`` mL/mL and a **standard** arterial
  input function scaled by one arterial blood sample at 10 min (Iida et al., Eur J Nucl Med 1994;
  21:1072-1084).  Its errors, which the simulation reproduces, come from the subject's true
  ``Vd`` (Iida: about +-7 % flow for +-10 % ``Vd``) and from the shape of the subject's input
  function, which the single calibration sample does not capture (about +-10 %).

:class:`CBFKinetics` draws one subject's kinetic parameters (seeded) and provides the tracer
uptake maps that go through the imaging physics and the quantification that turns the
reconstructed image back into mL/100 g/min.  Every parameter is recorded in the truth table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

#: Flow grid of the ARG look-up table (mL/100 g/min).
#: The SPECT tracer whose kinetics and quantification this module models (S3's SPECT-CBF).
SPECT_TRACER = "IMP"
FLOW_GRID = np.linspace(0.0, 250.0, 1001)
#: Time step of the convolution (min).
DT_MIN = 0.05


@dataclass(frozen=True)
class InputFunction:
    """Arterial input of IMP (octanol-extracted, arbitrary concentration units).

    A gamma-variate bolus peaking at ``peak_min`` plus a slow component from the release of IMP
    trapped in the lungs, rising with ``slow_rise_min`` and washing out with ``slow_decay_min``;
    ``amplitude`` scales the whole curve (injected activity, body size, cardiac output), which
    the calibrating blood sample corrects, while the shape parameters are what it cannot see.
    """

    amplitude: float = 1.0
    peak_min: float = 1.0
    shape: float = 3.0
    slow_fraction: float = 0.08
    slow_rise_min: float = 3.0
    slow_decay_min: float = 120.0

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        x = np.clip(t / self.peak_min, 0.0, None)
        bolus = x ** self.shape * np.exp(self.shape * (1.0 - x))
        slow = self.slow_fraction * (1.0 - np.exp(-t / self.slow_rise_min)) * np.exp(-t / self.slow_decay_min)
        return np.where(t >= 0, self.amplitude * (bolus + slow), 0.0)


def renkin_crone_extraction(flow: np.ndarray, ps: float) -> np.ndarray:
    """First-pass extraction ``1 - exp(-PS / F)`` (1 where the flow is 0)."""
    f = np.asarray(flow, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        e = 1.0 - np.exp(-float(ps) / np.where(f > 0, f, np.inf))
    return np.where(f > 0, e, 1.0)


def water_measured_flow(flow: np.ndarray, ps: float) -> np.ndarray:
    """Flow that a 15O-water analysis reports, ``K1 = E F`` (mL/100 g/min)."""
    f = np.asarray(flow, dtype=np.float64)
    return f * renkin_crone_extraction(f, ps)


def one_tissue_concentration(flow: np.ndarray, vd: np.ndarray | float, input_function: InputFunction,
                             t_min: float) -> np.ndarray:
    """Tissue concentration at ``t_min`` of a one-tissue tracer with ``K1 = F``, ``k2 = F / Vd``.

    ``C(t) = K1 * integral_0^t Ca(s) exp(-k2 (t - s)) ds``, flow in mL/100 g/min (``K1`` in
    mL/g/min), ``Vd`` in mL/mL; ``flow`` and ``vd`` broadcast against each other.
    """
    s = np.arange(0.0, float(t_min) + DT_MIN / 2, DT_MIN)
    ca = input_function(s)
    w = np.full(s.size, DT_MIN)
    w[0] = w[-1] = DT_MIN / 2                                      # trapezoid rule
    k1 = np.asarray(flow, dtype=np.float64) / 100.0
    k2 = k1 / np.asarray(vd, dtype=np.float64)
    shape = np.broadcast(k1, k2).shape
    k1b, k2b = np.broadcast_to(k1, shape).ravel(), np.broadcast_to(k2, shape).ravel()
    out = np.empty(k1b.size)
    decay_t = float(t_min) - s
    for lo in range(0, k1b.size, 4096):                            # bounded memory
        k2c = k2b[lo:lo + 4096, None]
        out[lo:lo + 4096] = k1b[lo:lo + 4096] * (np.exp(-k2c * decay_t[None, :]) * (ca * w)[None, :]).sum(1)
    return out.reshape(shape)


@dataclass(frozen=True)
class CBFKinetics:
    """One subject's kinetic parameters of the CBF pair and the two quantifications."""

    gm_flow: float                     # true mean grey-matter flow (mL/100 g/min)
    ps_water: float                    # 15O-water PS product (mL/100 g/min)
    vd_true: float                     # the subject's true IMP distribution volume (mL/mL)
    vd_assumed: float                  # the ARG method's fixed Vd (mL/mL)
    scan_mid_min: float                # SPECT mid-scan time after injection (min)
    sample_min: float                  # time of the calibrating arterial sample (min)
    subject_input: InputFunction       # the subject's true arterial input
    standard_input: InputFunction      # the population's standard input
    cross_calibration: float           # SPECT well-counter cross-calibration error (factor)

    # ---------------------------------------------------------------- from the config
    @classmethod
    def draw(cls, cfg: Mapping, rng: np.random.Generator) -> CBFKinetics:
        """Draw one subject's parameters from ``simulate.cbf.kinetics`` (seeded ``rng``)."""
        std = InputFunction(**{k: float(v) for k, v in cfg["standard_input"].items()})
        var = cfg["input_variation"]

        def jitter(value: float, spread: float) -> float:
            return float(value * math.exp(rng.normal(0.0, float(spread))))

        subject = InputFunction(amplitude=jitter(std.amplitude, var["amplitude"]),
                                peak_min=jitter(std.peak_min, var["peak_min"]), shape=std.shape,
                                slow_fraction=jitter(std.slow_fraction, var["slow_fraction"]),
                                slow_rise_min=std.slow_rise_min,
                                slow_decay_min=jitter(std.slow_decay_min, var["slow_decay_min"]))
        gm_mean, gm_sd = cfg["gm_flow"]
        vd_mean, vd_sd = cfg["vd_true"]
        return cls(gm_flow=float(max(rng.normal(gm_mean, gm_sd), 0.3 * gm_mean)),
                   ps_water=float(cfg["ps_water"]),
                   vd_true=float(max(rng.normal(vd_mean, vd_sd), 5.0)),
                   vd_assumed=float(cfg["vd_assumed"]), scan_mid_min=float(cfg["scan_mid_min"]),
                   sample_min=float(cfg["sample_min"]), subject_input=subject, standard_input=std,
                   cross_calibration=float(math.exp(rng.normal(0.0, float(cfg["cross_calibration_sd"])))))

    # ------------------------------------------------------------------ true uptake
    def flow_map(self, relative: np.ndarray, gm_relative: float) -> np.ndarray:
        """True flow (mL/100 g/min) from a relative perfusion map whose grey matter is ``gm_relative``."""
        return np.asarray(relative, dtype=np.float64) * (self.gm_flow / float(gm_relative))

    def water_uptake(self, flow: np.ndarray) -> np.ndarray:
        """15O-water image before the camera, in the units the PET analysis reports (``E F``)."""
        return water_measured_flow(flow, self.ps_water).astype(np.float32)

    def imp_uptake(self, flow: np.ndarray) -> np.ndarray:
        """IMP tissue concentration at the SPECT mid-scan time (subject's input, true ``Vd``)."""
        f = np.asarray(flow, dtype=np.float64)
        # Exact per flow value on a fine grid, then interpolated: the map has millions of voxels.
        table = one_tissue_concentration(FLOW_GRID, self.vd_true, self.subject_input, self.scan_mid_min)
        return np.interp(f, FLOW_GRID, table).astype(np.float32)

    # ------------------------------------------------------------- quantification
    def calibration_factor(self) -> float:
        """The one arterial sample: scale of the standard input to the subject's at ``sample_min``."""
        return float(self.subject_input(np.array([self.sample_min]))[0]
                     / self.standard_input(np.array([self.sample_min]))[0])

    def arg_table(self) -> np.ndarray:
        """ARG look-up: concentration at mid-scan for every flow of :data:`FLOW_GRID`, under the
        standard input (calibrated by the one sample) and the fixed ``Vd``."""
        return self.calibration_factor() * one_tissue_concentration(
            FLOW_GRID, self.vd_assumed, self.standard_input, self.scan_mid_min)

    def imp_flow(self, concentration: np.ndarray) -> np.ndarray:
        """SPECT-CBF (mL/100 g/min) from a reconstructed IMP concentration image (ARG method)."""
        table = self.arg_table()
        # With back-diffusion the concentration at mid-scan saturates (and at very high flow
        # falls again): the look-up uses the rising branch, and saturates with it.
        top = int(np.argmax(table)) + 1
        if top < 2 or not np.all(np.diff(table[:top]) > 0):
            raise ValueError("the ARG look-up table does not rise with flow; check simulate.cbf.kinetics")
        c = np.asarray(concentration, dtype=np.float64) * self.cross_calibration
        return np.interp(np.clip(c, 0.0, None), table[:top], FLOW_GRID[:top]).astype(np.float32)

    def record(self) -> dict:
        """Flat truth-table entries (model names and every parameter)."""
        rec = {"kinetics_pet": "15O-water, Renkin-Crone extraction, K1 = E F",
               "kinetics_spect": "123I-IMP, one-tissue (K1 = F, k2 = F/Vd), ARG quantification",
               "true_gm_flow": round(self.gm_flow, 3), "ps_water": self.ps_water,
               "water_extraction_at_gm_flow": round(float(renkin_crone_extraction(self.gm_flow, self.ps_water)), 4),
               "vd_true": round(self.vd_true, 3), "vd_assumed": self.vd_assumed,
               "scan_mid_min": self.scan_mid_min, "sample_min": self.sample_min,
               "cross_calibration": round(self.cross_calibration, 4),
               "input_calibration": round(self.calibration_factor(), 5)}
        for who, fn in (("subject", self.subject_input), ("standard", self.standard_input)):
            rec.update({f"input_{who}_{k}": round(v, 4) for k, v in asdict(fn).items()})
        return rec


def reconstructed_to_activity(image: np.ndarray, activity: np.ndarray, factor: int) -> np.ndarray:
    """Counts image -> activity units (mean activity of a camera voxel's fine voxels).

    The physics scale the expected image to a set number of counts; a calibrated scanner knows
    the factor back to activity concentration (its sensitivity and the injected activity).  The
    simulation's equivalent is the ratio of the true total activity to the image's total, so the
    image keeps its noise, blur and partial-volume losses and only its global scale is restored.
    """
    img = np.asarray(image, dtype=np.float64)
    total = float(img.sum())
    if not total > 0:
        raise ValueError("the reconstructed image is empty; nothing to calibrate")
    scale = float(np.asarray(activity, dtype=np.float64).sum()) / total / float(factor) ** 3
    return (img * scale).astype(np.float32)


__all__ = ["CBFKinetics", "FLOW_GRID", "InputFunction", "one_tissue_concentration", "reconstructed_to_activity",
           "renkin_crone_extraction", "water_measured_flow"]
