"""Turning a prediction's normalised values into physical units without looking at its target.

A dataset stores every slice and channel as ``x_norm = x * gain + bias`` with the slice's own
constants (:func:`spectsynth.datasets.normalise_gain_bias`), so ``x = x_norm * scale + offset``
with ``scale = 1 / gain`` and ``offset = -bias / gain``.  A network predicts the target channel
in *its* normalised units; the target slice's constants, however, are computed from the target
image itself and are unknown when the network is applied to a new patient.  Undoing a
prediction's normalisation with them would hand the prediction the target's brightness (a
network that outputs one image for every slice would then correlate with the target almost
perfectly).

:class:`ScaleCalibration` maps a prediction to physical units with what a user has at
prediction time: the *input* slice's own scale and constants fitted on the *training split*
only (:func:`fit_scale_calibration`)::

    log(target scale) = a + b * log(input scale)       (least squares over the training slices)
    target offset     = r * target scale                (r: mean offset/scale of the training targets)
    prediction        = prediction_norm * target scale + target offset

The log-log line keeps every predicted scale positive however far a test slice lies from the
training ones; the offset ratio is exact for the (-1, 1) normalisations of slices whose
minimum is 0 (``max_pm1``: r = 1) and for S0's background normalisation (r = 0, and the
target's scale equals the input's by construction, so a = 0, b = 1).  Only training slices
whose gains are not zero are used.  Its :meth:`~ScaleCalibration.describe` text goes into
every table that holds calibrated values (column ``calibration``) and into the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import EvaluationError

CALIBRATION_NAME = "training-split fit of the target's scale on the input's scale"


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x``; a constant ``x`` gives the mean of ``y`` (b = 0)."""
    if np.ptp(x) == 0:
        return float(y.mean()), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


@dataclass(frozen=True)
class ScaleCalibration:
    """Constants fitted on the training split: the target's scale from the input's, and the
    target's offset as a fixed fraction of its scale."""

    input_channel: str
    target_channel: str
    n_train: int
    log_scale_intercept: float
    log_scale_slope: float
    offset_ratio: float

    def describe(self) -> str:
        return (f"{CALIBRATION_NAME} ({self.n_train} training slices): {self.target_channel} scale = "
                f"{np.exp(self.log_scale_intercept):.4g} x ({self.input_channel} scale)^{self.log_scale_slope:.4g}, "
                f"offset = {self.offset_ratio:.4g} x scale")

    def constants(self, input_gain, input_bias, *, experiment: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Per-slice ``(scale, offset)`` of the target channel from the input's gain (and bias)."""
        g = np.asarray(input_gain, dtype=np.float64)
        if np.any(g <= 0):
            raise EvaluationError(f"{int((g <= 0).sum())} input slices have gain 0 (no signal); their "
                                  "prediction cannot be calibrated", experiment=experiment,
                                  hint="Exclude blank slices from the dataset")
        scale = np.exp(self.log_scale_intercept + self.log_scale_slope * np.log(1.0 / g))
        return scale, self.offset_ratio * scale

    def apply(self, normalised: np.ndarray, input_gain, input_bias, *, experiment: str = "") -> np.ndarray:
        """``(N, ...)`` normalised target-channel slices -> physical units, slice by slice."""
        scale, offset = self.constants(input_gain, input_bias, experiment=experiment)
        arr = np.asarray(normalised, dtype=np.float64)
        shape = (len(scale),) + (1,) * (arr.ndim - 1)
        return arr * scale.reshape(shape) + offset.reshape(shape)


def fit_scale_calibration(index: pd.DataFrame, input_channel: str, target_channel: str, *,
                          experiment: str = "", splits: Sequence[str] = ("train",)) -> ScaleCalibration:
    """Fit :class:`ScaleCalibration` on the rows of ``index`` (a dataset's ``index.tsv``) in
    ``splits`` (the training split only, by default), from their gain/bias columns."""
    cols = [f"{k}_{c}" for c in (input_channel, target_channel) for k in ("gain", "bias")]
    missing = [c for c in cols + ["split"] if c not in index.columns]
    if missing:
        raise EvaluationError(f"the dataset index lacks {missing}", experiment=experiment,
                              hint="Rebuild the dataset (its index records every slice's gain and bias)")
    rows = index[index["split"].isin(list(splits))]
    g_in = rows[f"gain_{input_channel}"].to_numpy(float)
    g_t = rows[f"gain_{target_channel}"].to_numpy(float)
    ok = (g_in > 0) & (g_t > 0)
    if ok.sum() < 2:
        raise EvaluationError(f"the {'/'.join(splits)} split holds {int(ok.sum())} slices with signal in "
                              f"{input_channel} and {target_channel}; the calibration needs at least 2",
                              experiment=experiment, hint="Give the dataset more training subjects")
    b_t = rows[f"bias_{target_channel}"].to_numpy(float)[ok]
    g_in, g_t = g_in[ok], g_t[ok]
    a, b = _line(np.log(1.0 / g_in), np.log(1.0 / g_t))
    ratio = float(np.mean(-b_t))      # offset / scale = (-bias / gain) / (1 / gain)
    return ScaleCalibration(input_channel, target_channel, int(ok.sum()), a, b, ratio)
