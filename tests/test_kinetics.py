"""Tracer kinetics of S3's CBF pair: each tracer's modelled uptake follows its model across the
flow range, the ARG quantification recovers the flow when its assumptions hold, and the
simulated pair is in mL/100 g/min with the parameters in its truth record."""

from __future__ import annotations

import numpy as np
import pytest

from spectsynth.simulate.config import ConfigError, resolve
from spectsynth.simulate.kinetics import (
    FLOW_GRID,
    CBFKinetics,
    InputFunction,
    one_tissue_concentration,
    reconstructed_to_activity,
    renkin_crone_extraction,
    water_measured_flow,
)

FLOWS = np.array([10.0, 20.0, 40.0, 55.0, 80.0, 120.0])


def kinetics(**over) -> CBFKinetics:
    cfg = resolve({})["cbf"]["kinetics"]
    k = CBFKinetics.draw(cfg, np.random.default_rng(0))
    fields = dict(k.__dict__) | over
    return CBFKinetics(**fields)


def test_water_extraction_is_renkin_crone():
    e = renkin_crone_extraction(FLOWS, 104.0)
    np.testing.assert_allclose(e, 1.0 - np.exp(-104.0 / FLOWS))
    # Herscovitch 1987: E_w about 0.84 at normal global flow (~53 mL/100 g/min)
    assert 0.82 < float(renkin_crone_extraction(53.1, 104.0)) < 0.88
    # extraction falls with flow, so water underestimates high flows more, never overestimates
    measured = water_measured_flow(FLOWS, 104.0)
    assert np.all(np.diff(e) < 0) and np.all(measured <= FLOWS) and np.all(np.diff(measured) > 0)
    assert measured[-1] / FLOWS[-1] < 0.65 and measured[0] / FLOWS[0] > 0.99
    # a freely diffusible tracer (PS -> infinity) measures the flow itself
    np.testing.assert_allclose(water_measured_flow(FLOWS, 1e9), FLOWS, rtol=1e-6)


def test_one_tissue_concentration_against_closed_form():
    # constant input Ca = 1 from t = 0: C(t) = Vd (1 - exp(-F t / (100 Vd)))
    class Constant(InputFunction):
        def __call__(self, t):
            return np.ones_like(np.asarray(t, dtype=float))

    vd, t = 30.0, 35.0
    c = one_tissue_concentration(FLOWS, vd, Constant(), t)
    np.testing.assert_allclose(c, vd * (1 - np.exp(-FLOWS / 100.0 * t / vd)), rtol=2e-3)
    # back-diffusion: the uptake grows less than proportionally with flow
    assert np.all(np.diff(c / FLOWS) < 0)


def test_arg_recovers_flow_when_its_assumptions_hold():
    std = InputFunction()
    k = kinetics(vd_true=30.0, vd_assumed=30.0, subject_input=InputFunction(amplitude=2.5),
                 standard_input=std, cross_calibration=1.0)
    # the blood sample corrects the subject's scale exactly
    assert k.calibration_factor() == pytest.approx(2.5)
    np.testing.assert_allclose(k.imp_flow(k.imp_uptake(FLOWS)), FLOWS, rtol=0.01)


def test_arg_errors_follow_vd_and_input_shape():
    base = dict(vd_assumed=30.0, standard_input=InputFunction(), subject_input=InputFunction(),
                cross_calibration=1.0)
    f = np.array([40.0])
    hi = kinetics(vd_true=33.0, **base).imp_flow(kinetics(vd_true=33.0, **base).imp_uptake(f))[0] / 40
    lo = kinetics(vd_true=27.0, **base).imp_flow(kinetics(vd_true=27.0, **base).imp_uptake(f))[0] / 40
    # a true Vd above the assumed one retains more tracer -> overestimate; Iida: ~7 % per 10 % Vd
    assert 1.02 < hi < 1.15 and 0.85 < lo < 0.98
    # a slower bolus than the standard, unseen by the 10-min sample, biases the flow
    slow = kinetics(vd_true=30.0, **(base | {"subject_input": InputFunction(peak_min=1.5)}))
    assert abs(slow.imp_flow(slow.imp_uptake(f))[0] / 40 - 1) > 0.01


def test_between_subject_arg_error_near_published():
    cfg = resolve({})["cbf"]["kinetics"]
    ratios = []
    for seed in range(60):
        k = CBFKinetics.draw(cfg, np.random.default_rng(seed))
        ratios.append(k.imp_flow(k.imp_uptake(np.array([40.0])))[0] / 40.0)
    ratios = np.array(ratios)
    # Iida 1994: about +-10 % from the input function plus +-7 % per 10 % Vd
    assert abs(ratios.mean() - 1) < 0.05 and 0.04 < ratios.std() < 0.2


def test_arg_table_rises_over_the_brain_flow_range():
    k = kinetics()
    table = k.arg_table()
    top = int(np.argmax(table))
    assert FLOW_GRID[top] > 150 and np.all(np.diff(table[:top + 1]) > 0)


def test_reconstructed_to_activity_restores_scale():
    act = np.zeros((8, 8, 8), np.float32)
    act[2:6, 2:6, 2:6] = 50.0
    counts = act.reshape(4, 2, 4, 2, 4, 2).sum((1, 3, 5)) * 0.01      # 2x2x2 blocks, any count scale
    est = reconstructed_to_activity(counts, act, 2)
    assert float(est.max()) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="empty"):
        reconstructed_to_activity(np.zeros((4, 4, 4)), act, 2)


def test_kinetics_config_is_checked():
    with pytest.raises(ConfigError, match="gm_flow"):
        resolve({"cbf": {"kinetics": {"gm_flow": [50.0, 80.0]}}})
    with pytest.raises(ConfigError, match="enabled"):
        resolve({"cbf": {"kinetics": {"enabled": "yes"}}})


@pytest.mark.parametrize("agent", ["HMPAO", "ECD"])
def test_kinetics_refuse_a_spect_cbf_tracer_they_do_not_model(agent):
    # the SPECT-CBF takes simulate.perfusion.tracer; its uptake and ARG quantification are IMP's
    with pytest.raises(ConfigError, match=rf"simulate.perfusion.tracer.*'{agent}'.*kinetics.enabled: false"):
        resolve({"perfusion": {"tracer": agent}})
    # counts images without kinetics, or no S3 pair at all: nothing to refuse
    assert resolve({"perfusion": {"tracer": agent}, "cbf": {"kinetics": {"enabled": False}}})
    assert resolve({"perfusion": {"tracer": agent}, "tracers": ["DaT", "perfusion"]})


def test_simulated_pair_is_in_flow_units(tmp_path):
    from spectsynth.simulate.core import simulate_pet
    from spectsynth.simulate.phantom import mni_anatomy

    anat = mni_anatomy(4.0, subject="phantom")
    sim = simulate_pet(anat, resolve({"cbf": {"pattern": "normal"}}))
    spect, pet = sim.cbf_spect.records[0], sim.cbf_pet.records[0]
    for rec in (spect, pet):
        assert rec["units"] == "mL/100g/min"
        assert rec["ps_water"] == 104.0 and rec["vd_assumed"] == 30.0 and "vd_true" in rec
        assert rec["true_gm_flow"] == spect["true_gm_flow"]               # one true flow map
    assert sim.cbf_spect.meta["units"] == sim.cbf_pet.meta["units"] == "mL/100g/min"
    # grey matter in a physiological range after blur (cortical rCBF ~ 44 mL/100 g/min with IMP)
    for rec in (spect, pet):
        assert 20.0 < rec["meas_gm_flow"] < 80.0 and rec["meas_wm_flow"] < rec["meas_gm_flow"]
    # water underestimates grey-matter flow by incomplete extraction
    assert pet["meas_gm_flow"] < pet["true_gm_flow_map"]

    off = simulate_pet(anat, resolve({"cbf": {"pattern": "normal", "kinetics": {"enabled": False}}}))
    assert off.cbf_pet.meta["units"] == "counts" and "vd_true" not in off.cbf_pet.records[0]
