"""The realism table: each measured property of the simulated data beside its target band and
source; within_band computed; the README's realism block generated from docs/demo/realism.tsv."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spectsynth import realism as R
from spectsynth.cli import main
from spectsynth.studies import get

REPO = Path(__file__).resolve().parents[1]


def _pairs(dataset: str):
    """The real input-vs-target pairs (with their bands) of the paired study on ``dataset``."""
    return R.paired_datasets()[dataset]


def _truth(n_subjects: int = 3, *, fwhm: float = 13.0, tracer: str = "IMP", new_columns: bool = True,
           images: int = 2) -> pd.DataFrame:
    rows = []
    for s in range(n_subjects):
        for i in range(images):
            r = {"subject": f"{s + 1:02d}", "index": i, "tracer": tracer, "pattern": "normal",
                 "meas_gm_wm": 2.2 + 0.1 * s}
            if new_columns:
                r |= {"meas_fwhm_mm": fwhm + 0.2 * s, "meas_fwtm_mm": 1.9 * (fwhm + 0.2 * s),
                      "meas_noise_cv": 0.10, "extracerebral_fraction": 0.05}
            rows.append(r)
    return pd.DataFrame(rows)


def _by(rows, prop):
    return next(r for r in rows if r["property"] == prop)


def test_within_band_is_computed_from_value_and_band():
    assert R.within_band(13.0, 12, 14) == "True"
    assert R.within_band(11.9, 12, 14) == "False"
    assert R.within_band(0.8, None, 0.75) == "False"
    assert R.within_band(0.7, math.nan, 0.75) == "True"
    assert R.within_band(12.0, 10, None) == "True"
    assert R.within_band(math.nan, 12, 14) == "NA"
    assert R.within_band(1.0, None, None) == "NA"


def test_every_band_names_a_source_with_a_full_citation():
    for key, band in R.BANDS.items():
        for part in band.source.split("; "):
            assert part in R.SOURCES, (key, part)
        if band.low is not None and band.high is not None:
            assert band.low < band.high, key


def test_truth_rows_take_subject_means_and_bands():
    rows = R.truth_rows("perfusion", _truth())
    fwhm = _by(rows, "effective FWHM")
    assert fwhm["value"] == pytest.approx(13.2) and fwhm["n"] == 3 and fwhm["within_band"] == "True"
    assert (fwhm["target_low"], fwhm["target_high"]) == (12.0, 14.0)
    assert fwhm["n_counts"].startswith("subjects")
    assert _by(rows, "FWTM/FWHM")["value"] == pytest.approx(1.9)
    assert _by(rows, "FWTM/FWHM")["within_band"] == "True"
    noise = _by(rows, "noise CV (white-matter core)")
    assert noise["value"] == pytest.approx(10.0) and noise["unit"] == "%" and noise["within_band"] == "True"
    gm = _by(rows, "grey/white ratio")
    assert gm["value"] == pytest.approx(2.3) and gm["sd"] == pytest.approx(0.1) and gm["within_band"] == "True"
    ec = _by(rows, "extracerebral signal fraction")
    assert ec["value"] == pytest.approx(0.05) and ec["within_band"] == "NA"
    # PET: its own bands (FWHM 5-8 mm; 15O-water noise 10-15 %, GM/WM 2-3)
    pet = R.truth_rows("cbf_pet", _truth(fwhm=9.0, tracer="H2O"))
    assert _by(pet, "effective FWHM")["within_band"] == "False"
    assert _by(pet, "noise CV (white-matter core)")["target_low"] == 10.0
    assert _by(pet, "grey/white ratio")["source"] == "Bäck 2025; Turku PET Centre"


def test_a_column_the_simulation_did_not_record_is_nan_with_a_note():
    rows = R.truth_rows("fdg", _truth(tracer="FDG", new_columns=False))
    fwhm = _by(rows, "effective FWHM")
    assert math.isnan(fwhm["value"]) and fwhm["within_band"] == "NA" and R.NOT_RECORDED in fwhm["note"]
    assert _by(rows, "grey/white ratio")["within_band"] == "False"   # 2.3 below FDG's 2.5-4
    assert _by(rows, "grey/white ratio")["target_low"] == 2.5


def test_dat_rows_mean_and_cv_across_subjects():
    dat = pd.DataFrame({"subject": ["01", "02", "03", "03"], "pattern": ["normal"] * 3 + ["degraded"],
                        "meas_sbr_caudate": [3.0, 3.4, 3.2, 1.0], "meas_sbr_putamen": [1.7, 1.9, 1.8, 0.5]})
    rows = R.dat_rows(dat, {"caudate": 3.2, "putamen": 1.85})
    cau = _by(rows, "normal SBR caudate")
    assert cau["value"] == pytest.approx(3.2) and cau["within_band"] == "True" and "3.2" in cau["note"]
    cv = _by(rows, "normal SBR caudate, CV across subjects")
    assert cv["value"] == pytest.approx(100 * 0.2 / 3.2) and cv["within_band"] == "False"
    assert cv["target_low"] == 10.0 and cv["source"] == "Lange 2014; Varrone 2013"


def test_registration_rows_per_scan_kind():
    err = pd.DataFrame({"subject": ["01", "02", "01", "02"], "scan": ["fdg", "fdg", "perfusion", "perfusion"],
                        "modality": ["pet", "pet", "spect", "spect"], "mean_mm": [2.0, 2.4, 0.5, 0.7]})
    rows = R.registration_rows(err)
    assert [r["kind"] for r in rows] == ["fdg", "perfusion"]
    assert rows[0]["value"] == pytest.approx(2.2) and rows[0]["within_band"] == "True"
    assert rows[1]["within_band"] == "False" and rows[1]["source"] == "West 1997"
    missing = R.registration_rows(None, ["fdg"])
    assert missing[0]["within_band"] == "NA"


def _slices(n_per_subject=3, subjects=("01", "02", "03"), size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = (((yy - size / 2) / (size * 0.35)) ** 2 + ((xx - size / 2) / (size * 0.3)) ** 2 < 1).astype(float)
    imgs, rows = [], []
    for si, s in enumerate(subjects):
        for k in range(n_per_subject):
            pet = brain * (0.5 + 0.5 * rng.random((size, size)))
            spect = 0.7 * pet + 0.05 * rng.standard_normal((size, size)) * brain
            imgs.append(np.stack([2 * spect - 1, 2 * pet - 1, brain]))
            rows.append({"subject": s, "split": "train" if si < 2 else "test", "slice_index": 10 + k, "source": "",
                         "gain_spect_cbf": 2.0, "bias_spect_cbf": -1.0, "gain_pet_cbf": 2.0, "bias_pet_cbf": -1.0})
    return np.asarray(imgs), pd.DataFrame(rows), ["spect_cbf", "pet_cbf", "brain"]


def test_similarity_rows_on_slices_with_the_outline_floor():
    images, table, channels = _slices()
    study, pairs = _pairs("s3")
    per = R.slice_similarity(images, table, channels, pairs)
    assert len(per) == len(table) and per[["ssim", "ssim_brain", "floor_ssim", "floor_ssim_brain"]].notna().all().all()
    rows = R.similarity_rows(study, pairs, per)
    whole = _by(rows, "input-vs-target SSIM, whole slice")
    assert whole["n"] == 3 and (whole["target_low"], whole["target_high"]) == (0.75, 0.83)
    assert whole["within_band"] == R.within_band(whole["value"], 0.75, 0.83)
    assert "0.79" in whole["note"]
    assert _by(rows, "outline-floor SSIM, whole slice")["within_band"] == "NA"
    s2 = R.similarity_rows(*_pairs("s2_native"), None)
    assert s2[0]["target_high"] == 0.75 and math.isnan(s2[0]["target_low"]) and "0.86-0.88" in s2[0]["note"]
    assert all(r["within_band"] == "NA" for r in s2) and len(s2) == 2 * 4


def test_roi_regression_of_the_data_itself(tmp_path):
    images, table, channels = _slices(n_per_subject=2)
    lab = np.zeros((32, 32, 20), np.int16)
    lab[4:16, 4:28, :] = 3
    lab[16:28, 4:28, :] = 4
    labels = {}
    for s in table["subject"].unique():
        p = tmp_path / f"sub-{s}_territories.nii.gz"
        nib.save(nib.Nifti1Image(lab, np.eye(4)), p)
        labels[s] = str(p)
    study, _ = _pairs("s3")
    spec = get(study).realism_roi
    fit, rois = R.roi_regression(images, table, channels, labels, input_channel=spec["input"],
                                 target_channel=spec["target"])
    assert fit["n"] == len(rois) == 6 and fit["n_subjects"] == 3
    assert np.isfinite([fit["r"], fit["slope"], fit["intercept"]]).all()
    rows = R.roi_rows(study, spec, fit)
    r = _by(rows, "ROI regression spect_cbf on pet_cbf: r")
    assert (r["target_low"], r["target_high"]) == (0.70, 0.82) and "0.77" in r["note"]
    assert r["within_band"] == R.within_band(fit["r"], 0.70, 0.82)
    assert "0.63" in _by(rows, "ROI regression spect_cbf on pet_cbf: slope")["note"]
    assert R.roi_rows(study, spec, None)[0]["within_band"] == "NA"


def test_table_roundtrip_render_and_readme_block(tmp_path, capsys):
    pet = pd.concat([_truth(tracer="FDG").assign(volume="fdg"), _truth(tracer="H2O").assign(volume="cbf_pet")])
    table = R.realism_table(perfusion=_truth(), pet=pet, dat=pd.DataFrame(
        {"subject": ["01", "02"], "pattern": ["normal", "normal"], "meas_sbr_caudate": [3.1, 3.3],
         "meas_sbr_putamen": [1.8, 1.9]}), normal_sbr={"caudate": 3.2, "putamen": 1.85})
    assert list(table.columns) == R.COLUMNS
    assert set(table["within_band"]) <= {"True", "False", "NA"}
    path = R.write(table, tmp_path / "qc" / "realism.tsv")
    back = R.read(path)
    assert len(back) == len(table) and set(back["within_band"]) <= {"True", "False", "NA"}
    for _, r in back.iterrows():
        assert r["within_band"] == R.within_band(r["value"], r["target_low"], r["target_high"])
    text = R.render(back)
    assert "Within band:" in text and "| perfusion | effective FWHM (mm) | 13.2 |" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{R.START}\nold typed numbers\n{R.END}\n\nrest\n")
    assert main(["realism", str(path), "--readme", str(readme)]) == 1
    assert main(["realism", str(path), "--readme", str(readme), "--update"]) == 0
    assert main(["realism", str(path), "--readme", str(readme)]) == 0
    assert readme.read_text().endswith("\n\nrest\n") and "old typed" not in readme.read_text()


def test_the_readme_quotes_the_demo_realism_table():
    """README.md's realism block is exactly what the demo's table gives (docs/demo/realism.tsv,
    copied from results/qc/realism.tsv of `./run.sh demo`)."""
    text = (REPO / "README.md").read_text()
    assert R.readme_block(text) is not None, "README.md lost its generated realism block"
    table = REPO / "docs" / "demo" / "realism.tsv"
    if not table.exists():
        pytest.skip("docs/demo/realism.tsv has not been produced yet: copy results/qc/realism.tsv of a demo "
                    "run there and run spectsynth realism docs/demo/realism.tsv --readme README.md --update")
    assert R.readme_block(text) == R.render(R.read(table)), (
        "README.md's realism block differs from docs/demo/realism.tsv; run "
        "spectsynth realism docs/demo/realism.tsv --readme README.md --update")


@pytest.mark.slow
def test_tiny_run_realism_table_is_complete(tiny_run):
    """The tiny run's qc/realism.tsv: every property of every scan kind computed and finite, and
    within_band what the rule gives for the value and the band."""
    path = tiny_run / "qc" / "realism.tsv"
    assert path.exists() and (tiny_run / "figures" / "realism.png").stat().st_size > 10_000
    table = R.read(path)
    assert list(table.columns) == R.COLUMNS
    kinds = set(table["kind"])
    assert {"dat", "perfusion", "s2_spect", "fdg", "cbf_spect", "cbf_pet"} <= kinds
    assert {"S2 mri vs spect", "S2 pet vs spect", "S3 spect_cbf vs pet_cbf"} <= kinds
    not_finite = table[~np.isfinite(pd.to_numeric(table["value"], errors="coerce"))]
    assert not len(not_finite), f"values not computed:\n{not_finite[['kind', 'property', 'note']].to_string()}"
    for _, r in table.iterrows():
        assert r["within_band"] == R.within_band(r["value"], r["target_low"], r["target_high"])
    assert "realism" in (tiny_run / "report.html").read_text(errors="ignore")
