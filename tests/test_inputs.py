"""Input stage: validation of bad images, BIDS and DICOM discovery, the demo cohort."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import ixi_t1

from spectsynth.errors import InputDataError
from spectsynth.inputs import bids, demo, dicom
from spectsynth.inputs.validate import summarize, validate_input
from spectsynth.io import load_image


def _nifti(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    aff = np.diag(list(zooms) + [1.0])
    img = nib.Nifti1Image(data, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def _brain(shape=(12, 14, 10)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random(shape) * 100).astype(np.float32) + 1


# --- validation: every bad-input case names subject, file, problem and what to do ----------

def _check(exc: InputDataError, subject: str, path: Path, *words: str):
    msg = str(exc)
    assert f"subject {subject}" in msg
    assert str(path) in msg
    for w in words:
        assert w in msg, msg
    assert exc.hint, "every input error says what to do"


def test_corrupt_file(tmp_path):
    p = tmp_path / "sub-01_T1w.nii.gz"
    p.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="01")
    _check(err.value, "01", p, "unreadable")


def test_truncated_file(tmp_path):
    good = _nifti(tmp_path / "good.nii.gz", _brain((40, 40, 40)))
    raw = good.read_bytes()
    p = tmp_path / "sub-02_T1w.nii.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="02")
    _check(err.value, "02", p, "truncated")


def test_4d_is_an_error_unless_allowed(tmp_path, caplog):
    p = _nifti(tmp_path / "sub-03_T1w.nii.gz", np.stack([_brain(), 2 * _brain()], axis=-1))
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="03")
    _check(err.value, "03", p, "4-D image with 2 volumes", "allow_4d")
    with caplog.at_level(logging.WARNING):
        img = load_image(p, subject="03", allow_4d=True)
    assert img.shape == (12, 14, 10)
    np.testing.assert_allclose(np.asanyarray(img.dataobj), _brain())
    assert "using the first volume" in caplog.text


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf")])
def test_non_finite(tmp_path, bad, word):
    data = _brain()
    data[3, 4, 5] = bad
    data[1, 1, 1] = bad
    p = _nifti(tmp_path / "sub-04_T1w.nii.gz", data)
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="04")
    _check(err.value, "04", p, "2 " + word)


def test_all_zero(tmp_path):
    p = _nifti(tmp_path / "sub-05_T1w.nii.gz", np.zeros((8, 8, 8), np.float32))
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="05")
    _check(err.value, "05", p, "all zeros")


@pytest.mark.parametrize("zooms", [(0.1, 1.0, 1.0), (1.0, 1.0, 20.0)])
def test_voxel_size_out_of_range(tmp_path, zooms):
    p = _nifti(tmp_path / "sub-06_T1w.nii.gz", _brain(), zooms)
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="06")
    _check(err.value, "06", p, "voxel size", "outside 0.2-10")


def test_inconsistent_qform_sform(tmp_path):
    aff = np.eye(4)
    img = nib.Nifti1Image(_brain(), aff)
    img.set_sform(aff, code=1)
    q = aff.copy()
    q[:3, 3] = [30.0, 0.0, 0.0]
    img.set_qform(q, code=1)
    p = tmp_path / "sub-07_T1w.nii.gz"
    nib.save(img, p)
    with pytest.raises(InputDataError) as err:
        load_image(p, subject="07")
    _check(err.value, "07", p, "inconsistent qform and sform")


def test_missing_file_and_missing_modality(tmp_path):
    p = tmp_path / "sub-08_T1w.nii.gz"
    with pytest.raises(InputDataError) as err:
        validate_input(p, tmp_path / "o.nii.gz", tmp_path / "o.json", subject="08", modality="T1w")
    _check(err.value, "08", p, "does not exist")
    good = _nifti(tmp_path / "sub-09_T1w.nii.gz", _brain())
    with pytest.raises(InputDataError) as err:
        validate_input(good, tmp_path / "o.nii.gz", tmp_path / "o.json", subject="09",
                       modality="T1w", missing=["pet"])
    assert "subject 09: missing modality pet" in str(err.value)
    assert "required_modalities" in str(err.value)


def test_validate_writes_ras_copy_of_real_sagittal_ixi(ixi_dir, tmp_path):
    """The real IXI T1 is stored sagittal (P, S, R) as uint8 with a scale slope."""
    src = ixi_t1(ixi_dir)
    raw = nib.load(src)
    assert nib.aff2axcodes(raw.affine) == ("P", "S", "R")
    out, rec = tmp_path / "t1.nii.gz", tmp_path / "t1.json"
    validate_input(src, out, rec, subject="IXI012", modality="T1w")
    img = nib.load(out)
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    # the same world point holds the same value before and after reorientation
    raw_data = np.asanyarray(raw.dataobj)
    new_data = np.asanyarray(img.dataobj)
    for ijk in [(10, 20, 30), (60, 60, 45), (100, 70, 80)]:
        world = raw.affine @ np.r_[ijk, 1.0]
        new_ijk = np.round(np.linalg.inv(img.affine) @ world).astype(int)[:3]
        assert new_data[tuple(new_ijk)] == pytest.approx(raw_data[ijk])
    # scale slope kept (not rescaled to 0..255)
    assert float(new_data.max()) == pytest.approx(float(raw_data.max()))
    r = json.loads(rec.read_text())
    assert r["source_orientation"] == "PSR" and r["orientation"] == "RAS"
    tsv = summarize([rec], tmp_path / "inputs.tsv")
    assert "IXI012" in tsv.read_text()


# --- BIDS ---------------------------------------------------------------------------------

def _bids_tree(root: Path) -> Path:
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    for f in ["sub-01/anat/sub-01_T1w.nii.gz",
              "sub-01/pet/sub-01_trc-FDG_pet.nii.gz",
              "sub-01/spect/sub-01_trc-HMPAO_spect.nii.gz",
              "sub-02/ses-a/anat/sub-02_ses-a_run-2_T1w.nii.gz",
              "sub-02/ses-a/anat/sub-02_ses-a_run-1_T1w.nii.gz",
              "sub-02/ses-b/anat/sub-02_ses-b_T1w.nii",
              "sub-03/anat/sub-03_T2w.nii.gz"]:
        _nifti(root / f, _brain())
    return root


def test_bids_discovery(tmp_path):
    root = _bids_tree(tmp_path / "bids")
    units = {u.label: u for u in bids.discover(root)}
    assert sorted(units) == ["01", "02_ses-a", "02_ses-b", "03"]
    # sub-03 has no usable image: kept (its validation says so), never dropped silently
    assert units["03"].files == {} and units["03"].found_instead == ["anat/sub-03_T2w.nii.gz"]
    assert set(units["01"].files) == {"T1w", "pet", "spect"}
    assert units["02_ses-a"].files["T1w"].name == "sub-02_ses-a_run-1_T1w.nii.gz"
    assert units["02_ses-b"].files["T1w"].suffix == ".nii"
    assert bids.participant_of("02_ses-a") == "02"
    only = bids.discover(root, participant_label=["sub-02"], session="b")
    assert [u.label for u in only] == ["02_ses-b"]
    assert [u.label for u in bids.discover(root, exclude=["02", "03"])] == ["01"]
    with pytest.raises(InputDataError, match=r"not in the dataset: \['99'\]"):
        bids.discover(root, participant_label=["99"])


# --- DICOM --------------------------------------------------------------------------------

def _dicom_series(folder: Path, description: str, series_number: int, n_slices: int = 6):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(series_number)
    for i in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{series_number}_{i}.dcm"), {}, file_meta=meta,
                         preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.PatientName, ds.PatientID = "Test^Subject", "P001"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesDescription = description
        ds.SeriesNumber, ds.InstanceNumber = series_number, i + 1
        ds.StudyDate, ds.SeriesTime, ds.AcquisitionTime = "20240101", "120000", "120000"
        ds.ImagePositionPatient = [0.0, 0.0, float(i) * 1.5]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 1.5
        ds.Rows, ds.Columns = 16, 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = (rng.integers(1, 1000, (16, 16))).astype(np.uint16).tobytes()
        ds.save_as(folder / f"{series_number}_{i}.dcm", enforce_file_format=True)


def test_dicom_conversion(tmp_path):
    root = tmp_path / "dicom"
    _dicom_series(root / "patient-A" / "s1", "localizer", 1, n_slices=3)
    _dicom_series(root / "patient-A" / "s2", "T1 MPRAGE sag", 2)
    found = dicom.discover(root)
    assert list(found) == ["patientA"]
    out = dicom.convert_subject(found["patientA"], "patientA", tmp_path / "bids",
                                {"T1w": "mprage", "pet": None}, required=["T1w"])
    t1 = out["T1w"]
    assert t1 == tmp_path / "bids/sub-patientA/anat/sub-patientA_T1w.nii.gz"
    img = load_image(t1, subject="patientA")
    assert sorted(img.shape) == [6, 16, 16]
    side = json.loads(t1.with_name("sub-patientA_T1w.json").read_text())
    assert side["SeriesDescription"] == "T1 MPRAGE sag"
    with pytest.raises(InputDataError) as err:
        dicom.convert_subject(found["patientA"], "patientA", tmp_path / "bids2",
                              {"T1w": "flair"}, required=["T1w"])
    msg = str(err.value)
    assert "subject patientA" in msg and "'flair'" in msg and "localizer" in msg
    assert "inputs.dicom.series.T1w" in msg


# --- demo cohort --------------------------------------------------------------------------

COARSE = {"n_subjects": 6, "seed": 5, "voxel_mm": [2.5, 2.5, 2.5]}


def test_demo_is_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        files = demo.build_subject(1, COARSE, tmp_path / run)
        digests.append({k: hashlib.sha256(Path(v).read_bytes()).hexdigest()
                        for k, v in files.items() if k != "sidecar"})
    assert digests[0] == digests[1]
    other = demo.build_subject(1, dict(COARSE, seed=6), tmp_path / "c")
    assert hashlib.sha256(other["T1w"].read_bytes()).hexdigest() != digests[0]["T1w"]


def test_a_demo_subject_does_not_depend_on_the_cohort_size(tmp_path):
    """The workflow passes a subject its own label and resection flag with the settings its images
    depend on (demo.subject_settings): the same bytes as the subject built from the whole section,
    whatever the cohort's size."""
    settings = demo.subject_settings(dict(COARSE, n_resected=1))
    assert "n_subjects" not in settings and "n_resected" not in settings and settings["seed"] == 5
    whole = demo.build_subject(1, COARSE, tmp_path / "whole")
    own = demo.build_subject(1, settings, tmp_path / "own", label="02", resected=False)
    for key in ("T1w", "sidecar"):
        assert Path(own[key]).read_bytes() == Path(whole[key]).read_bytes(), key
    cut = demo.build_subject(1, settings, tmp_path / "cut", label="02", resected=True)
    assert Path(cut["T1w"]).read_bytes() != Path(whole["T1w"]).read_bytes()


def test_demo_subjects_differ_in_pose_and_anatomy():
    """Striatum and ventricle volumes vary by 10 % or more; poses stay within bounds."""
    import SimpleITK as sitk

    from spectsynth.resources import resource_path

    p = demo.DemoParams.from_config(COARSE)
    atlas = sitk.ReadImage(str(resource_path("atlas_neuromorphometrics")))
    striatum, ventricles = [], []
    for i in range(p.n_subjects):
        s = demo.make_subject(i, p)
        assert nib.aff2axcodes(s.image.affine) == ("P", "S", "R")
        assert max(abs(a) for a in s.truth["rotation_deg"]) <= 15
        assert max(abs(t) for t in s.truth["shift_mm"]) <= 10
        ref = demo._nib_to_sitk(np.zeros(s.image.shape, np.float32), s.image.affine)
        lab = sitk.GetArrayFromImage(sitk.Resample(atlas, ref, s.transform,
                                                   sitk.sitkNearestNeighbor, 0))
        striatum.append(np.isin(lab, [36, 37, 57, 58]).sum())
        ventricles.append(np.isin(lab, [51, 52]).sum())
    for name, v in (("striatum", striatum), ("ventricles", ventricles)):
        spread = (max(v) - min(v)) / np.mean(v)
        assert spread >= 0.2, f"{name} volumes vary too little: {v}"


def test_demo_dataset_files(tmp_path):
    files = demo.build_dataset_files(COARSE, tmp_path)
    rows = files["participants"].read_text().strip().split("\n")
    assert rows[0] == "participant_id\tage\tsex"
    assert len(rows) == 1 + COARSE["n_subjects"]
    desc = json.loads(files["description"].read_text())
    assert desc["BIDSVersion"] and desc["Name"]
    # participants.tsv agrees with the subjects' own demographics
    age, sex = demo.demographics(0, demo.DemoParams.from_config(COARSE))
    assert rows[1] == f"sub-01\t{age}\t{sex}"


def test_gzip_output_has_no_timestamp(tmp_path):
    """Byte-identical reruns need gzip headers without a modification time."""
    f = demo.build_subject(0, COARSE, tmp_path)["T1w"]
    with open(f, "rb") as fh:
        head = fh.read(10)
    assert head[:2] == b"\x1f\x8b" and head[4:8] == b"\0\0\0\0"
    assert gzip.decompress(f.read_bytes())[:4]


def test_demo_true_transform_round_trips(tmp_path):
    """The stored transform equals the one used to make the image."""
    p = demo.DemoParams.from_config(COARSE)
    s = demo.make_subject(2, p)
    demo.write_subject(s, tmp_path)
    loaded = demo.load_true_transform(tmp_path, s.label)
    for pt in [(0.0, 0.0, 0.0), (30.0, -20.0, 15.0), (-45.0, 10.0, -25.0)]:
        np.testing.assert_allclose(loaded.TransformPoint(pt), s.transform.TransformPoint(pt),
                                   atol=1e-3)


def test_registration_error_against_the_true_transform(tmp_path):
    """The true pose gives a small error (the non-linear residual), a wrong one a large error."""
    import SimpleITK as sitk

    p = demo.DemoParams.from_config(dict(COARSE, deformation_mm=0.0, local_volume_sd=0.0, striatum_age_slope=0.0,
                                         striatum_mean_factor=1.0, striatum_shape_sd=0.0, striatum_asymmetry_sd=0.0,
                                         hemisphere_asymmetry_sd=0.0, petalia_sd=0.0))
    s = demo.make_subject(0, p)
    demo.write_subject(s, tmp_path)
    template = nib.load(demo.resource_path("mni152_t1"))
    mask = nib.Nifti1Image((np.asanyarray(template.dataobj) > 50).astype(np.uint8), template.affine)
    nib.save(mask, tmp_path / "mask.nii.gz")
    good = tmp_path / "good.tfm"
    sitk.WriteTransform(s.pose.GetInverse(), str(good))      # maps MNI points to subject points
    bad = tmp_path / "bad.tfm"
    sitk.WriteTransform(sitk.AffineTransform(3), str(bad))    # identity: ignores the head pose
    e_good = demo.registration_error(tmp_path, s.label, good, tmp_path / "mask.nii.gz")
    e_bad = demo.registration_error(tmp_path, s.label, bad, tmp_path / "mask.nii.gz")
    assert e_good["mean_mm"] < 0.05
    assert e_bad["mean_mm"] > 5.0
