"""The workflow itself: dry-run of the default config, a tiny end-to-end run ending in the
HTML report, and a run where one subject's input is broken while the others finish."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import IXI_IDS, REPO, SNAKEMAKE, ixi_t1, smk  # noqa: F401  (SNAKEMAKE, smk: shared helpers)

# tiny_run (a finished tiny run with its report.html) is a session fixture in conftest.py.


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    in_table = False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


def test_dry_run_default_config(tmp_path):
    res = smk("-n", "--config", f"output_dir={tmp_path}")
    counts = job_counts(res.stdout + res.stderr)
    assert counts.get("make_demo_subject") == 12
    assert counts.get("validate_image") == 12
    assert counts.get("plot_input_qc") == 12
    assert counts.get("make_demo_dataset") == 1
    assert counts.get("write_provenance") == 1
    for rule in ("extract_brain", "register_template", "register_native", "propagate_labels",
                 "plot_preprocess_qc", "simulate_dat", "simulate_perfusion", "simulate_pet",
                 "plot_simulation"):
        assert counts.get(rule) == 12, rule
    assert counts.get("register_modality") == 48         # 4 scanner-frame scans per subject (S2, S3)
    assert counts.get("extract_scan_brain") == 24        # S2's PET and SPECT per subject (S3 reads none)
    assert counts.get("measure_scan_registration_error") == 1
    assert "warp_to_template" not in counts             # template arm from register_modality
    assert counts.get("build_dataset") == 5               # s0, s1, s2_native, s2_template, s3
    assert counts.get("train_model") == 15                # 2 (S0) + 12 (S2) + 1 (S3)
    assert counts.get("train_fastgan") == 2               # S1 A/B, best checkpoint under each criterion
    assert counts.get("predict_criterion") == 2           # S1 A/B under the other selection criterion
    assert counts.get("s0_clinical") == 1                 # the S0 experiment with model vae
    assert counts.get("reading_packet") == 3              # S1 A, S1 B, S3


@pytest.mark.slow
def test_tiny_end_to_end(tiny_run):
    out = tiny_run
    for s in ("01", "02"):
        assert (out / f"sub-{s}/anat/sub-{s}_desc-ras_T1w.nii.gz").exists()
        assert (out / f"sub-{s}/figures/sub-{s}_desc-inputqc_T1w.png").stat().st_size > 10_000
        assert (out / f"logs/validate_image/sub-{s}_anat_T1w.log").exists()
    assert (out / "demo-bids/participants.tsv").exists()
    assert "commit" in (out / "provenance/run.json").read_text()
    s = "01"
    anat = out / f"sub-{s}/anat/sub-{s}"
    for suffix in ("_desc-preproc_T1w.nii.gz", "_space-MNI152_desc-preproc_T1w.nii.gz",
                   "_desc-striatum_dseg.nii.gz", "_label-GM_probseg.nii.gz", "_levels.tsv"):
        assert Path(f"{anat}{suffix}").exists(), suffix
    assert (out / f"sub-{s}/xfm/sub-{s}_from-T1w_to-MNI152_mode-image_xfm.tfm").exists()
    assert (out / f"sub-{s}/spect/sub-{s}_trc-DaT_truth.tsv").exists()
    assert (out / f"sub-{s}/pet/sub-{s}_trc-FDG_space-MNI152_pet.nii.gz").exists()
    assert (out / "qc/registration_quality.tsv").exists()
    import pandas as pd
    # every simulated PET/SPECT came in its own scanner frame and was registered back by the pipeline
    err = pd.read_csv(out / "qc/scan_registration_error.tsv", sep="\t", dtype={"subject": str})
    assert len(err) == 5 * 4 and set(err["scan"]) == {"perfusion", "fdg", "cbf_spect", "cbf_pet"}   # 5 subjects
    # registered with a patient-like error (head motion, scalp signal, noise): a failed registration
    # would leave the pose's 10-20 mm
    assert (err["pose_displacement_mm"] > 1.0).all() and (err["mean_mm"] < 8.0).all(), err
    assert err["mean_mm"].median() < 3.5, err
    qc = pd.read_csv(out / "qc/scan_qc.tsv", sep="\t")
    assert qc.loc[qc["scan"] == "S3 spect_cbf vs pet_cbf", "published"].tolist() == [0.79]
    for d in ("s0", "s1", "s2_native", "s2_template", "s3"):
        index = pd.read_csv(out / f"datasets/{d}/index.tsv", sep="\t")
        # splits are by subject: no subject in two splits
        assert index.groupby("subject")["split"].nunique().max() == 1 or d == "s0", d
        assert set(index["split"]) >= {"train", "test"}, d
    for exp in ("s0_restoration", "s1_fastgan_A", "s2_pix2pix_mri_native_l1", "s3_pix2pix"):
        sel = out / f"experiments/{exp}/selection.json"
        assert sel.exists() and "epoch" in sel.read_text(), exp
        assert (out / f"experiments/{exp}/best.pt").stat().st_size > 1000
    # inference and the studies' evaluation
    for exp in ("s0_restoration", "s2_pix2pix_mri_native_l1", "s3_pix2pix", "s1_fastgan_A"):
        assert (out / f"predictions/{exp}/predictions.tsv").exists(), exp
    for f in ("s2/slice_metrics.tsv", "s2/table4.tsv", "s2/ttests.tsv", "s1/image_measures.tsv",
              "s3/s3_pix2pix/regression.tsv", "s0/s0_restoration/dice_summary.tsv"):
        table = pd.read_csv(out / "evaluate" / f, sep="\t")
        assert len(table) > 0, f
        num = table.select_dtypes("number")
        if f.endswith("regression.tsv"):
            # subject-level intervals and the mixed-model test need 3 / 2 subjects: empty cells,
            # each row naming why in ci_method / p_method; the line itself is always there
            assert table.loc[table["slope_ci_low"].isna(), "ci_method"].str.startswith("not computed").all()
            num = table[["n", "n_subjects", "intercept", "slope", "statistic"]]
        assert not num.isna().any().any(), f"{f} holds NaN"
    # S2/S3: every table carries its baselines and the published values, and no test target's
    # constants reach the predictions (the calibration is named and fitted on the training split)
    s2 = pd.read_csv(out / "evaluate/s2/slice_metrics.tsv", sep="\t")
    assert {"pix2pix", "baseline: input as SPECT", "baseline: per-pixel linear map (train)",
            "floor: all background", "floor: outline only"} == set(s2["model"])
    assert {"ssim", "ssim_brain", "rmse_brain", "psnr_brain"} <= set(s2.columns)   # the paper's and in-brain
    t4 = pd.read_csv(out / "evaluate/s2/table4.tsv", sep="\t")
    assert "published (S2 Table 4)" in set(t4["model"])
    assert (pd.read_csv(out / "evaluate/s2/published.tsv", sep="\t")["published"] > 0).all()
    s3 = out / "evaluate/s3/s3_pix2pix"
    reg = pd.read_csv(s3 / "regression.tsv", sep="\t")
    assert {"input vs target"} <= set(reg.loc[reg["series"] == "baseline", "label"])
    assert {"null (input's scale) vs target", "null (training scale) vs target"} <= set(
        reg.loc[reg["series"] == "null model", "label"])
    assert reg["calibration"].str.startswith("training-split fit").all()
    assert len(pd.read_csv(s3 / "published.tsv", sep="\t")) > 0
    s3m = pd.read_csv(s3 / "slice_metrics.tsv", sep="\t")
    assert {"mean_null_input_scale", "mean_null_train_scale", "ssim", "ssim_brain"} <= set(s3m.columns)
    assert {"floor: all background", "floor: outline only"} <= set(s3m["model"])
    hist = pd.read_csv(out / "experiments/s3_pix2pix/history.csv")
    assert hist[["G_share_adv", "G_share_l1", "G_share_ssim"]].sum(axis=1).round(5).eq(1).all()
    # every S0 table carries its damaged-input baseline; S0/S1 summaries put the published values beside ours
    for f in ("asp", "dice_summary", "sbr_error", "bland_altman"):
        table = pd.read_csv(out / f"evaluate/s0/s0_restoration/{f}.tsv", sep="\t")
        assert {"prediction", "input", "mean_normal"} <= set(table["series"]), f
    cnn = pd.read_csv(out / "evaluate/s0/s0_restoration/sbr_cnn_error.tsv", sep="\t")
    assert set(cnn["series"]) == {"prediction", "input", "original", "mean_normal", "constant"}
    s0sum = pd.read_csv(out / "evaluate/s0/s0_restoration/summary.tsv", sep="\t")
    assert {"78 ± 8 % (62-90 %)", "< 3 px", "52 %"} <= set(s0sum["published"])
    assert (s0sum["scale"] == "test scale (tiny)").all()
    # S1: both selection criteria evaluated, each ANOVA with its power; the published finding beside ours
    for exp in ("s1_fastgan_A", "s1_fastgan_B"):
        sel = json.loads((out / f"experiments/{exp}/selection.json").read_text())
        assert sel["criterion"] == "feature_distance" and set(sel["by_criterion"]) == {
            "feature_distance", "study_quantities"}
        assert (out / f"predictions/{exp}/criterion-study_quantities/predictions.h5").exists()
    anova = pd.read_csv(out / "evaluate/s1/anova.tsv", sep="\t")
    if len(anova):
        assert {"min_detectable_f", "effect_f", "power_at_reference_f", "criterion", "comparison"} <= set(anova.columns)
    s1sum = pd.read_csv(out / "evaluate/s1/summary.tsv", sep="\t")
    assert {"published", "published_p", "ours", "criterion", "scale"} <= set(s1sum.columns)
    # every study ends in computed verdicts, stacked in the run's headline
    from spectsynth.verdicts import VERDICTS

    heads = pd.read_csv(out / "headline.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert set(heads["study"]) == {"S0", "S1", "S2", "S3"} and set(heads["verdict"]) <= set(VERDICTS)
    assert (heads["n_counts"].str.len() > 0).all()
    # post-surgical brains: in S2's test split only; no other study sees one
    from spectsynth.inputs.demo import truth_paths

    subjects = sorted(p.name[4:] for p in (out / "demo-bids").glob("sub-*"))
    resected = {s for s in subjects
                if json.loads(truth_paths(out / "demo-bids", s)["truth"].read_text())["resection"]["resected"]}
    assert len(resected) == 1
    for d in ("s0", "s1", "s2_native", "s2_template", "s3"):
        index = pd.read_csv(out / f"datasets/{d}/index.tsv", sep="\t", dtype={"subject": str})
        where = set(index.loc[index["subject"].isin(resected), "split"])
        assert where == ({"test"} if d.startswith("s2") else set()), (d, where)
    # S0's clinical outputs: deficit maps on the subject's SPECT grid, regional deficits with flags
    # against the predicted and the true normal, z-scores against both normal databases
    import nibabel as nib

    clin = out / "evaluate/s0/s0_clinical/clinical"
    maps = pd.read_csv(clin / "deficit_maps/deficit_maps.tsv", sep="\t", dtype={"subject": str})
    assert len(maps) > 0
    row = maps.iloc[0]
    dmap = nib.load(clin / "deficit_maps" / row["file"])
    dat = nib.load(out / f"sub-{row['subject']}/spect/sub-{row['subject']}_trc-DaT_spect.nii.gz")
    assert dmap.shape == dat.shape[:3] and np.allclose(dmap.affine, dat.affine)
    filled = np.flatnonzero(np.abs(np.asarray(dmap.dataobj)).sum(axis=(0, 1)))
    assert filled.tolist() == [int(row["slice_index"])]
    regional = pd.read_csv(clin / "regional_deficits.tsv", sep="\t")
    assert {"sbr_putamen_L", "ai_putamen", "pc_ratio"} <= set(regional["measure"])
    assert regional["flag"].dtype == bool and regional["truth_flag"].dtype == bool
    assert set(regional["predictor"]) == {"model", "baseline", "constant"}   # mean normal and constant ratio
    summ = pd.read_csv(clin / "deficit_summary.tsv", sep="\t")
    assert set(summ["predictor"]) == {"model", "baseline", "constant"} and summ["striatal_loss_abs_error"].notna().all()
    zs = pd.read_csv(clin / "zscores.tsv", sep="\t")
    assert set(zs["region"]) == {"sbr_L", "sbr_R"} and np.isfinite(zs[["synthetic_z", "real_z"]]).all().all()
    db = pd.read_csv(clin / "normal_database.tsv", sep="\t")
    assert (db["source"] == "synthetic").sum() == 24 and (db["source"] == "real").sum() >= 3
    # blinded reading packets: numbered PNGs and a scoring sheet without the answer; the key elsewhere
    packet = out / "reading" / "s1_fastgan_A" / "packet"
    sheet = pd.read_csv(packet / "scoring_sheet.csv", dtype=str)
    key = pd.read_csv(out / "reading" / "s1_fastgan_A" / "key" / "key.csv", dtype=str)
    assert "source" not in sheet.columns and set(key["source"]) == {"real", "generated"}
    assert sorted(p.name for p in packet.glob("*.png")) == sorted(sheet["file"])
    # S3's similarity reading: prediction and SPECT beside the PET, an open and a blind packet
    key = pd.read_csv(out / "reading" / "s3_pix2pix" / "key" / "key.csv", dtype=str)
    assert set(key["source"]) == {"prediction", "spect"} and set(key["reading"]) == {"open", "blind"}
    for reading in ("open", "blind"):
        packet = out / "reading" / "s3_pix2pix" / "packet" / reading
        sheet = pd.read_csv(packet / "scoring_sheet.csv", dtype=str)
        assert "source" not in sheet.columns and (packet / "scale.txt").exists()
        assert sorted(p.name for p in packet.glob("*.png")) == sorted(sheet["file"])
    # every result folder says what made it
    for folder in ("datasets/s0", "predictions/s3_pix2pix", "evaluate/s2", "evaluate/s1", "evaluate/s3/s3_pix2pix",
                   "evaluate/s0/s0_clinical/clinical", "reading/s3_pix2pix/key", "experiments/s3_pix2pix"):
        rec = json.loads((out / folder / "provenance.json").read_text())
        assert "commit" in rec["git"] and rec["versions"]["torch"], folder
    html = (out / "report.html").read_text(errors="replace")
    assert "Inputs" in html and "spectsynth" in html
    assert "deficit_maps.png" in html


@pytest.mark.slow
def test_tiny_rerun_is_a_no_op(tiny_run):
    res = smk("-n", "--configfile", "tests/configs/tiny.yaml", "--config", f"output_dir={tiny_run}")
    assert "Nothing to be done" in res.stdout + res.stderr


@pytest.mark.slow
def test_bad_subject_fails_others_finish(ixi_dir, tmp_path):
    """Real IXI T1s as BIDS input, one subject corrupt: --keep-going finishes the others."""
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "ixi", "BIDSVersion": "1.9.0"}')
    for i, ident in enumerate(IXI_IDS[:2]):
        label = ident.split("-")[0]
        dest = root / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
        dest.parent.mkdir(parents=True)
        shutil.copy(ixi_t1(ixi_dir, i), dest)
    bad = root / "sub-BROKEN" / "anat" / "sub-BROKEN_T1w.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(ixi_t1(ixi_dir, 2).read_bytes()[:5000])   # truncated
    out = tmp_path / "results"
    # the tiny run's 2 mm native and template grids: the same steps on 8 times fewer voxels
    grids = tmp_path / "grids.yaml"
    grids.write_text("preprocess:\n  native: {shape: [128, 128, 96], spacing_mm: 2.0}\n"
                     "  template: {resolution_mm: 2}\n")
    res = smk("--cores", "2", "--keep-going", "--until", "propagate_labels", "plot_input_qc",
              "--configfile", str(grids), "--config", f"output_dir={out}",
              f"inputs={{'source': 'bids', 'bids': {{'root': '{root}'}}}}", check=False)
    assert res.returncode != 0
    for label in ("IXI012", "IXI013"):
        assert (out / f"sub-{label}/anat/sub-{label}_desc-ras_T1w.nii.gz").exists()
        assert (out / f"sub-{label}/figures/sub-{label}_desc-inputqc_T1w.png").exists()
        # the real IXI T1s go through brain extraction, registration and atlas propagation
        assert (out / f"sub-{label}/anat/sub-{label}_desc-striatum_dseg.nii.gz").exists()
    assert not (out / "sub-BROKEN/anat/sub-BROKEN_desc-ras_T1w.nii.gz").exists()
    log = (out / "logs/validate_image/sub-BROKEN_anat_T1w.log").read_text()
    assert f"subject BROKEN: {bad}: unreadable, truncated or corrupt NIfTI" in log
    assert "Re-export or re-convert" in log


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--virtual-time-budget=10000", "--window-size=1400,1000"]


@pytest.mark.slow
def test_report_opens_in_headless_chromium(tiny_run, tmp_path):
    """The built report loads in a real browser and shows its sections; a screenshot is kept."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (./run.sh test installs it when run as root)")
    url = (tiny_run / "report.html").resolve().as_uri()
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'a'}",
                          "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # rendered by the report's JavaScript, not present in the raw file's markup
    for section in ("0. Methods", "1. Inputs", "Workflow", "Statistics", "2. Preprocessing", "3. Simulation", "4. Training", "7. Results S2"):
        assert section in html, f"section {section!r} missing from the rendered report"
    assert "Uncaught" not in dom.stderr
    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "report.png"
    res = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'b'}",
                          f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.stat().st_size > 20_000, res.stderr[-2000:]


@pytest.mark.parametrize("study, experiments", [("s0", 2), ("s1", 2), ("s2", 12), ("s3", 1)])
def test_paper_scale_configs_dry_run_on_gpus_with_the_slurm_profile(study, experiments, tmp_path):
    res = smk("-n", "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
              f"config/studies/{study}.yaml", "config/gpu.yaml", "--config", f"output_dir={tmp_path}")
    out = res.stdout + res.stderr
    counts = job_counts(out)
    assert counts.get("train_model", 0) + counts.get("train_fastgan", 0) == experiments
    # every training and inference job asks SLURM for one GPU (S0: also the binding-ratio CNN's training;
    # S1: also the predictions under the other selection criterion)
    assert out.count("gpu=1") == (2 + (study == "s1")) * experiments + (study == "s0")


@pytest.mark.slow
def test_filled_reading_sheets_are_scored_into_the_report(tiny_run, tmp_path):
    """S3's similarity packet from the tiny run, filled by two readers: listing the sheets in
    reading_scores reruns only the scoring, whose tables then exist."""
    import pandas as pd

    packet = tiny_run / "reading/s3_pix2pix/packet"
    key = pd.read_csv(tiny_run / "reading/s3_pix2pix/key/key.csv", dtype=str)
    sheets = []
    for reader, offset in (("R1", 0), ("R2", 1)):
        sheet = pd.read_csv(packet / "blind/scoring_sheet.csv", dtype=str, keep_default_na=False)
        src = dict(zip(key[key["reading"] == "blind"]["image"], key[key["reading"] == "blind"]["source"]))
        sheet["reader"] = reader
        sheet["score_1_to_5"] = [str(min(5, (4 if src[i] == "prediction" else 2) + offset)) for i in sheet["image"]]
        sheets.append(tmp_path / f"{reader}.csv")
        sheet.to_csv(sheets[-1], index=False)
    extra = tmp_path / "sheets.yaml"
    extra.write_text("reading_scores:\n  s3_pix2pix: [" + ", ".join(str(s) for s in sheets) + "]\n")
    target = tiny_run / "reading/s3_pix2pix/scores/reading_summary.tsv"
    args = ("--configfile", "tests/configs/tiny.yaml", str(extra), "--config", f"output_dir={tiny_run}")
    res = smk(str(target), "-n", *args)
    counts = job_counts(res.stdout + res.stderr)
    counts.pop("total", None)
    assert counts == {"score_reading": 1}
    smk(str(target), "--cores", "1", *args)
    summary = pd.read_csv(target, sep="\t").set_index("source")
    assert summary.loc["spect", "mean"] == 2.5 and summary.loc["prediction", "n_readers"] == 2
    agreement = pd.read_csv(target.with_name("reading_agreement.tsv"), sep="\t")
    assert "Fleiss' kappa" in set(agreement["statistic"])
