"""A corpus of bad inputs and faults: each case gets one clear message, stays isolated, leaves
nothing half-written and changes nothing already computed.

Every case is checked for: the message names the subject, the file, the problem and what to
do; the output it would have replaced is unchanged; no temporary is left behind.  Most cases
run at unit level on tiny images (validation and discovery are the same functions the
workflow calls); one small workflow run on a BIDS folder of real IXI T1s and broken subjects
covers isolation (--keep-going), the summary table of skipped subjects and the lock on the
output folder.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import IXI_IDS, REPO, ixi_labels, ixi_t1

from spectsynth import io as sio
from spectsynth import outputlock
from spectsynth.errors import InputDataError, OutputWriteError
from spectsynth.inputs import bids, demo
from spectsynth.inputs.validate import check_t1w_plausible, validate_input
from spectsynth.preprocess.register import save_transform

PREVIOUS = b"an output computed earlier"


def _nifti(path: Path, data: np.ndarray, aff=None, qform=True) -> Path:
    aff = np.eye(4) if aff is None else aff
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=1)
    if qform:
        img.set_qform(aff, code=1)
    else:
        img.set_qform(None, code=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def _noise(shape=(12, 14, 10)) -> np.ndarray:
    return (np.random.default_rng(0).random(shape) * 100).astype(np.float32) + 1


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".tmp-*")]


def _expect_input_error(src, tmp_path, subject, *words, modality="T1w", **kw):
    """validate_input fails with a full message; the earlier output stays; no temporary."""
    out = tmp_path / "out" / f"sub-{subject}" / "anat"
    out.mkdir(parents=True, exist_ok=True)
    dest, rec = out / f"sub-{subject}_desc-ras_T1w.nii.gz", out / f"sub-{subject}_desc-ras_T1w.json"
    dest.write_bytes(PREVIOUS)
    with pytest.raises(InputDataError) as err:
        validate_input(src, dest, rec, subject=subject, modality=modality, **kw)
    msg = str(err.value)
    assert "\n" not in msg, "one line"
    assert msg.startswith(f"subject {subject}: ")
    if src is not None:
        assert str(src) in msg
    for w in words:
        assert w in msg, msg
    assert err.value.hint and msg.endswith(err.value.hint), "says what to do"
    assert dest.read_bytes() == PREVIOUS and not rec.exists()
    assert not _temporaries(tmp_path)
    return msg


# --- unreadable files: every one through the guarded path -------------------------------

def _good_bytes(tmp_path) -> bytes:
    return _nifti(tmp_path / "good" / "g.nii.gz", _noise((30, 30, 30))).read_bytes()


CORRUPT = {
    "empty": (lambda good: b"", "empty file (0 bytes)"),
    "random bytes": (lambda good: np.random.default_rng(1).bytes(4000), "not gzip-compressed"),
    "gzip of garbage": (lambda good: gzip.compress(np.random.default_rng(2).bytes(4000)),
                        "not a NIfTI image, or its header is corrupt"),
    "uncompressed under .nii.gz": (lambda good: gzip.decompress(good), "not gzip-compressed"),
    "truncated": (lambda good: good[: len(good) // 2], "truncated or corrupt"),
    "header only": (lambda good: gzip.compress(gzip.decompress(good)[:352]), "truncated or corrupt"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_unreadable_file(tmp_path, case):
    make, words = CORRUPT[case]
    src = tmp_path / "bids" / "sub-01_T1w.nii.gz"
    src.parent.mkdir(parents=True)
    src.write_bytes(make(_good_bytes(tmp_path)))
    _expect_input_error(src, tmp_path, "01", words, "Re-export" if case != "empty" else "again")


def test_random_bytes_uncompressed_name(tmp_path):
    src = tmp_path / "sub-02_T1w.nii"
    src.write_bytes(np.random.default_rng(3).bytes(4000))
    _expect_input_error(src, tmp_path, "02", "unreadable", "Re-export")


def test_header_claiming_a_huge_image(tmp_path):
    src = _nifti(tmp_path / "in" / "sub-03_T1w.nii.gz", _noise())
    img = nib.load(src)
    hdr = img.header.copy()
    hdr.set_data_shape((4000, 4000, 4000))
    raw = gzip.decompress(src.read_bytes())
    src.write_bytes(gzip.compress(hdr.binaryblock + raw[348:]))
    _expect_input_error(src, tmp_path, "03", "the header claims shape (4000, 4000, 4000)")


@pytest.mark.parametrize("case", ["dangling symlink", "folder", "missing", "unreadable"])
def test_unusable_file_entry(tmp_path, case):
    src = tmp_path / "in" / "sub-04_T1w.nii.gz"
    src.parent.mkdir(parents=True)
    if case == "dangling symlink":
        src.symlink_to(tmp_path / "moved-away.nii.gz")
        words = ("broken symbolic link", "moved-away.nii.gz", "Restore")
    elif case == "folder":
        src.mkdir()
        words = ("not a regular file",)
    elif case == "missing":
        words = ("file does not exist",)
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads every file")
        _nifti(src, _noise())
        src.chmod(0)
        words = ("permission denied", "chmod")
    _expect_input_error(src, tmp_path, "04", *words)


# --- headers and values (the existing checks and the affine) -----------------------------

def test_degenerate_affines(tmp_path):
    cases = {
        "singular": (np.diag([1.0, 1.0, 0.0, 1.0]), "singular"),
        "non-finite": (np.array([[1.0, 0, 0, np.nan], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
                       "NaN or Inf"),
        "cm scale": (np.diag([0.1, 0.1, 0.1, 1.0]), "implies voxel sizes"),
        "100 mm scale": (np.diag([100.0, 1.0, 1.0, 1.0]), "implies voxel sizes"),
    }
    for name, (aff, word) in cases.items():
        hdr = nib.Nifti1Header()
        hdr.set_data_shape(_noise().shape)
        hdr.set_data_dtype(np.float32)
        hdr.set_zooms((1.0, 1.0, 1.0))           # plausible pixdim: only the affine is wrong
        for i, row in enumerate(("srow_x", "srow_y", "srow_z")):
            hdr[row] = aff[i]
        hdr["sform_code"], hdr["qform_code"] = 1, 0
        src = tmp_path / name / "sub-05_T1w.nii.gz"
        src.parent.mkdir()
        nib.save(nib.Nifti1Image(_noise(), None, hdr), src)
        _expect_input_error(src, tmp_path, "05", word, "Repair the header")


def test_existing_header_and_value_checks(tmp_path):
    d = _noise()
    nan = d.copy()
    nan[1, 2, 3] = np.nan
    q = np.eye(4)
    q[:3, 3] = [30.0, 0, 0]
    mixed = nib.Nifti1Image(d, np.eye(4))
    mixed.set_sform(np.eye(4), code=1)
    mixed.set_qform(q, code=1)
    nib.save(mixed, tmp_path / "sub-06_T1w_mixed.nii.gz")
    cases = [
        (_nifti(tmp_path / "4d.nii.gz", np.stack([d, d], -1)), "4-D image with 2 volumes",
         "inputs.allow_4d"),
        (_nifti(tmp_path / "nan.nii.gz", nan), "1 NaN or Inf voxels", "Replace them"),
        (_nifti(tmp_path / "zero.nii.gz", np.zeros_like(d)), "all zeros", "remove this subject"),
        (_nifti(tmp_path / "vox.nii.gz", d, np.diag([1.0, 1.0, 20.0, 1.0])), "voxel size",
         "pixdim"),
        (tmp_path / "sub-06_T1w_mixed.nii.gz", "inconsistent qform and sform", "fslorient"),
    ]
    for src, *words in cases:
        _expect_input_error(src, tmp_path, "06", *words)


def test_missing_required_modality_names_where_it_was_looked_for(tmp_path):
    msg = _expect_input_error(None, tmp_path, "07", "missing modality T1w",
                              "sub-07/anat/sub-07_T1w.nii.gz", "if_unusable: skip",
                              expected={"T1w": "/data/sub-07/anat/sub-07_T1w.nii.gz"})
    assert "required_modalities" in msg


# --- images that are not a T1w ------------------------------------------------------------

def test_real_t1w_images_pass_the_plausibility_check(ixi_dir, tmp_path):
    ixi = [check_t1w_plausible(nib.load(ixi_t1(ixi_dir, i)), subject=f"IXI{i}", path="t1")
           for i in range(len(IXI_IDS))]
    p = demo.DemoParams.from_config({"n_subjects": 2, "seed": 5, "voxel_mm": [4.0, 4.0, 4.0]})
    demo_t1 = check_t1w_plausible(demo.make_subject(0, p).image, subject="01", path="demo")
    for m in [*ixi, demo_t1]:
        assert m["head_levels"] > 100 and m["head_equal_neighbours"] < 0.2
        assert m["negative_fraction"] == 0
    # the workflow's validation records the measures in the input table's record
    rec = validate_input(ixi_t1(ixi_dir, 0), tmp_path / "0.nii.gz", tmp_path / "0.json",
                         subject="IXI012", modality="T1w")
    assert rec["head_levels"] == ixi[0]["head_levels"]


def test_images_that_are_not_a_t1w_fail(ixi_dir, tmp_path):
    t1 = nib.load(ixi_t1(ixi_dir, 0))
    data = np.asanyarray(t1.dataobj).astype(np.float32)
    fake = {
        "label map": (np.asanyarray(nib.load(ixi_labels(ixi_dir, 0)).dataobj),
                      "neighbouring head voxels have identical values", "label map"),
        "brain mask": ((data > np.percentile(data, 60)).astype(np.uint8),
                       "only 1 distinct intensities", "mask"),
        "tissue classes": (np.digitize(data, np.percentile(data, [40, 60, 80])).astype(np.uint8),
                           "only 3 distinct intensities", "segmentation"),
        "CT-like": (data * 8 - 1000, "of the voxels are negative", "CT"),
    }
    for name, (arr, *words) in fake.items():
        src = tmp_path / name.replace(" ", "_") / "sub-08_T1w.nii.gz"
        src.parent.mkdir()
        nib.save(nib.Nifti1Image(arr, t1.affine, t1.header), src)
        _expect_input_error(src, tmp_path, "08", "does not look like a T1-weighted MR image",
                            *words, "inputs.plausibility_check: false")
    # the documented override accepts it; PET/SPECT are not held to T1w criteria
    src = tmp_path / "label_map" / "sub-08_T1w.nii.gz"
    validate_input(src, tmp_path / "ok.nii.gz", tmp_path / "ok.json", subject="08",
                   modality="T1w", plausibility_check=False)
    validate_input(src, tmp_path / "pet.nii.gz", tmp_path / "pet.json", subject="08",
                   modality="pet")


# --- discovery: an unusable entry is a per-subject problem, never a planning error -------

def _bids(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    _nifti(root / "sub-01/anat/sub-01_T1w.nii.gz", _noise())
    (root / "sub-02/anat").mkdir(parents=True)
    (root / "sub-02/anat/sub-02_T1w.nii.gz").symlink_to(root / "gone.nii.gz")
    (root / "sub-03/anat").mkdir(parents=True)
    (root / "sub-03/anat/sub-03_T1w.nii.gz").write_bytes(b"")
    (root / "sub-04/anat").mkdir(parents=True)
    (root / "sub-04/anat/sub-04_T1w.json").write_text("{}")
    _nifti(root / "sub-05/anat/sub-05_T1w.nii.gz", _noise())
    (root / "sub-05/pet").mkdir(parents=True)
    (root / "sub-05/pet/sub-05_pet.nii.gz").symlink_to(root / "gone-pet.nii.gz")
    _nifti(root / "sub-06/anat/sub-06_run-1_T1w.nii.gz", _noise())
    (root / "sub-06/anat/sub-06_run-2_T1w.nii.gz").symlink_to(root / "gone.nii.gz")
    _nifti(root / "sub-07/ses-a/anat/sub-07_ses-a_T1w.nii.gz", _noise())
    return root


def test_discovery_keeps_unusable_entries_out_of_the_inputs(tmp_path):
    root = _bids(tmp_path / "bids")
    units = {u.label: u for u in bids.discover(root)}
    assert sorted(units) == ["01", "02", "03", "04", "05", "06", "07_ses-a"]   # none dropped
    for u in units.values():                  # every declared input is a usable file
        assert all(sio.file_problem(p) is None for p in u.files.values())
    assert units["02"].problems["T1w"][1].startswith("broken symbolic link")
    assert units["03"].problems["T1w"][1] == "empty file (0 bytes)"
    assert units["04"].files == {} and units["04"].found_instead == ["anat/sub-04_T1w.json"]
    assert units["05"].problems["pet"][1].startswith("broken symbolic link")
    assert units["06"].files["T1w"].name == "sub-06_run-1_T1w.nii.gz" and not units["06"].problems
    # error mode: each unusable subject's validation fails with its reason, like the workflow's
    for label, words in [("02", ["broken symbolic link", "Restore"]),
                         ("03", ["empty file (0 bytes)"])]:
        u = units[label]
        _expect_input_error(u.problems["T1w"][0], tmp_path, label, *words)
    _expect_input_error(None, tmp_path, "04", "missing modality T1w",
                        "the folder holds only anat/sub-04_T1w.json",
                        expected={"T1w": units["04"].expected("T1w", root)})
    # a subject named in participant_label without the requested session is kept, not dropped
    only = bids.discover(root, participant_label=["07", "01"], session="a")
    assert [u.label for u in only] == ["01_ses-a", "07_ses-a"]
    assert only[0].found_instead == ["anat/sub-01_T1w.nii.gz"] and not only[0].files
    assert "the folder holds only anat/sub-01_T1w.nii.gz" in only[0].why_unusable(["T1w"], root)


def test_skip_mode_lists_every_left_out_subject_and_image(tmp_path):
    root = _bids(tmp_path / "bids")
    keep, rows = bids.split_unusable(bids.discover(root), ["T1w"], root)
    assert [u.label for u in keep] == ["01", "05", "06", "07_ses-a"]
    assert "pet" not in keep[1].files and not keep[1].problems
    by = {(r["subject"], r["modality"]): r["problem"] for r in rows}
    assert set(by) == {("02", "T1w"), ("03", "T1w"), ("04", "T1w"), ("05", "pet")}
    assert "broken symbolic link" in by[("02", "T1w")] and "empty file" in by[("03", "T1w")]
    assert "no T1w image" in by[("04", "T1w")] and "sub-04_T1w.json" in by[("04", "T1w")]


# --- faults: SIGKILL, full disk, permissions, two runs on one output folder --------------

def _env():
    return dict(os.environ, PYTHONPATH=str(REPO / "src"))


def test_stale_temporaries_of_a_killed_write_are_removed_on_rewrite(tmp_path):
    target = tmp_path / "sub-09" / "anat" / "sub-09_desc-ras_T1w.nii.gz"
    other = target.with_name("sub-09_other.nii.gz")
    code = ("import os, signal, sys\nfrom spectsynth.io import atomic_output\n"
            "with atomic_output(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'x' * 200000)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    for t in (target, other):
        res = subprocess.run([sys.executable, "-c", code, str(t)], env=_env())
        assert res.returncode == -signal.SIGKILL
    left = _temporaries(tmp_path)
    assert len(left) == 2 and not target.exists()
    sio.save_image(nib.Nifti1Image(_noise(), np.eye(4)), target)
    assert nib.load(target).shape == (12, 14, 10)
    # only the rewritten target's temporary is gone; the other job's waits for its own rerun
    assert [p.name.endswith(other.name) for p in _temporaries(tmp_path)] == [True]


def test_full_disk_names_file_subject_and_space(tmp_path, monkeypatch):
    target = tmp_path / "results" / "sub-10" / "anat" / "sub-10_desc-ras_T1w.nii.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(PREVIOUS)

    def full(img, path):
        with open(path, "wb") as fh:
            fh.write(b"\0" * 100000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sio, "_save_gzipped", full)            # save_image's .nii.gz writer
    img = nib.Nifti1Image(np.zeros((64, 64, 64), np.float32), np.eye(4))
    with pytest.raises(OutputWriteError) as err:
        sio.save_image(img, target)
    msg = str(err.value)
    assert msg.startswith(f"subject 10: {target}: no space left on the device")
    assert "needs up to 1.0 MB" in msg and f"free in {target.parent}" in msg
    assert "Free space there (or set output_dir to a larger disk)" in msg
    assert target.read_bytes() == PREVIOUS and not _temporaries(tmp_path)
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: full(None, self))
    with pytest.raises(OutputWriteError, match="quota|no space left") as err:
        sio.write_json({"a": 1}, tmp_path / "results" / "sub-10" / "x.json")
    assert "subject 10" in str(err.value) and not _temporaries(tmp_path)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_get_the_normal_permissions(tmp_path, umask, mode):
    import SimpleITK as sitk

    old = os.umask(umask)
    try:
        files = [sio.save_image(nib.Nifti1Image(_noise(), np.eye(4)), tmp_path / "a.nii.gz"),
                 sio.write_json({"a": 1}, tmp_path / "a.json"),
                 sio.write_text("x\n", tmp_path / "a.tsv"),
                 save_transform(sitk.AffineTransform(3), tmp_path / "a.tfm")]
    finally:
        os.umask(old)
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == mode, f


def _hold_lock(out: Path) -> subprocess.Popen:
    code = ("import sys, time\nfrom spectsynth import outputlock\n"
            "outputlock.acquire(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                            text=True, env=_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_output_folder_lock(tmp_path):
    out = tmp_path / "results"
    proc = _hold_lock(out)
    try:
        who = outputlock.holder(out)
        assert f"process {proc.pid} on " in who and f"from {os.getcwd()}" in who
        with pytest.raises(OutputWriteError) as err:
            outputlock.acquire(out)
        msg = str(err.value)
        assert msg.startswith(f"{out}: the output folder is in use by another run: process "
                              f"{proc.pid}")
        assert "Wait for that run to finish" in msg and "another output_dir" in msg
    finally:
        proc.kill()
        proc.wait()
    # a killed holder leaves nothing stale: the lock is free at once
    assert outputlock.holder(out) is None
    outputlock.acquire(out)
    assert outputlock.holder(out) is None        # our own lock is not "another run"
    outputlock.release(out)


# --- one small workflow run: isolation, --keep-going, skips listed, the lock ---------------

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(REPO)]


def _smk(*args: str) -> subprocess.CompletedProcess:
    """Snakemake with these arguments (options that take several values go last)."""
    env = dict(_env(), CUDA_VISIBLE_DEVICES="")
    return subprocess.run([*SNAKEMAKE, *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600, preexec_fn=lambda: os.umask(0o022))


@pytest.mark.slow
def test_broken_subjects_fail_alone_and_skips_are_listed(ixi_dir, tmp_path):
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "ixi", "BIDSVersion": "1.9.0"}')

    def t1(label):
        p = root / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
        p.parent.mkdir(parents=True)
        return p

    shutil.copy(ixi_t1(ixi_dir, 0), t1("good1"))
    shutil.copy(ixi_t1(ixi_dir, 1), t1("good2"))
    t1("dangling").symlink_to(tmp_path / "elsewhere" / "T1w.nii.gz")
    t1("empty").write_bytes(b"")
    (root / "sub-sidecar" / "anat").mkdir(parents=True)
    (root / "sub-sidecar" / "anat" / "sub-sidecar_T1w.json").write_text("{}")
    shutil.copy(ixi_labels(ixi_dir, 0), t1("labels"))
    labels = ["good1", "good2", "dangling", "empty", "sidecar", "labels"]
    out = tmp_path / "results"
    cfg = tmp_path / "bad.yaml"

    def config(**bids_extra):
        cfg.write_text(json.dumps({"output_dir": str(out), "inputs": {"source": "bids", "bids": {
            "root": str(root), "participant_label": labels, **bids_extra}}}))
        return ["--configfile", str(cfg)]

    ras = [str(out / f"sub-{s}/anat/sub-{s}_desc-ras_T1w.nii.gz") for s in labels]
    res = _smk("--cores", "2", "--keep-going", *ras, *config())
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "MissingInputException" not in text and "Building DAG of jobs" in text
    for s in ("good1", "good2"):
        f = Path(ras[labels.index(s)])
        assert nib.load(f).shape and stat.S_IMODE(f.stat().st_mode) == 0o644
    logs = out / "logs" / "validate_image"
    expected = {
        "dangling": [f"subject dangling: {root}/sub-dangling/anat/sub-dangling_T1w.nii.gz: "
                     "broken symbolic link", "Restore"],
        "empty": ["subject empty: ", "empty file (0 bytes)"],
        "sidecar": ["subject sidecar: missing modality T1w", "sub-sidecar_T1w.json",
                    "if_unusable: skip"],
        "labels": ["subject labels: ", "does not look like a T1-weighted MR image",
                   "inputs.plausibility_check: false"],
    }
    for s, words in expected.items():
        assert not Path(ras[labels.index(s)]).exists()
        log = (logs / f"sub-{s}_anat_T1w.log").read_text()
        for w in words:
            assert w in log, (s, w, log)
    assert not _temporaries(out)
    # the run's scheduling process held the output folder's lock (and its jobs did not
    # collide with it); it is free again once the run has ended
    held = json.loads(outputlock.lock_path(out).read_text())
    assert held["workdir"] == str(REPO) and outputlock.holder(out) is None
    before = {s: (Path(ras[i]).stat().st_mtime_ns, Path(ras[i]).read_bytes())
              for i, s in enumerate(labels[:2])}

    # a second run on the same output folder (another working copy) is refused; a dry run is not
    proc = _hold_lock(out)
    try:
        res = _smk("--cores", "1", ras[0], "--forcerun", "validate_image", *config())
        assert res.returncode != 0
        assert f"the output folder is in use by another run: process {proc.pid}" in res.stderr
        res = _smk("-n", *ras[:2], "--forcerun", "validate_image", *config())
        assert res.returncode == 0 and "in use by another run" in res.stdout + res.stderr
    finally:
        proc.kill()
        proc.wait()

    # skip mode: the unusable subjects are left out and listed; the label map is excluded;
    # nothing computed before changes
    res = _smk("--cores", "2", str(out / "inputs" / "inputs.tsv"),
               *config(if_unusable="skip", exclude=["labels"]))
    assert res.returncode == 0, res.stderr[-3000:]
    import pandas as pd

    table = pd.read_csv(out / "inputs" / "inputs.tsv", sep="\t").set_index("subject")
    assert table.loc[["good1", "good2"], "status"].tolist() == ["ok", "ok"]
    assert table.loc[["dangling", "empty", "sidecar"], "status"].tolist() == ["skipped"] * 3
    assert "broken symbolic link" in table.loc["dangling", "problem"]
    assert "subject sidecar: skipped" in res.stderr
    for i, s in enumerate(labels[:2]):
        assert (Path(ras[i]).stat().st_mtime_ns, Path(ras[i]).read_bytes()) == before[s]
    assert not _temporaries(out)
    assert stat.S_IMODE((out / "inputs" / "inputs.tsv").stat().st_mode) == 0o644
