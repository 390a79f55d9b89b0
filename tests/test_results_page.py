"""The reference results page: kept outputs -> docs/results.md and the README's status block;
collecting a run's outputs; the reference config validates, plans and quotes its own power."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from spectsynth import results_page as R
from spectsynth import verdicts as V
from spectsynth.cli import main
from spectsynth.errors import InputDataError
from spectsynth.planner import plan

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "config" / "studies" / "reference.yaml"


def _tsv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def _verdict_rows(study: str, findings) -> list[dict]:
    return [V.row(study=study, finding=f, measure=m, unit=u, ours=o, published=p, n=n, n_counts="test subjects",
                  baseline=b, baseline_name=bn, verdict=v) for f, m, u, o, p, n, b, bn, v in findings]


def _fake_tree(root: Path) -> None:
    """Small hand-made kept outputs of S0 and S2 with the real column names."""
    s0 = root / "s0"
    rows = _verdict_rows("S0", [
        ("Dice of the segmented BG, left, 78 %", "Dice left", "fraction", 0.812, "78 ± 8 %", 16, 0.70,
         "damaged input (baseline)", V.level_verdict(ours=0.812, published=0.78, baseline=0.70)),
        ("Anatomy Shape Precision < 3 px", "ASP", "px", 1.5, "< 3 px", 16, 4.2, "damaged input (baseline)",
         ("not reproduced", "ours 1.5 misses it")),
    ])
    for r in rows:
        r["experiment"] = "s0_restoration"
    _tsv(s0 / "verdicts.tsv", rows)
    _tsv(s0 / "s0_restoration" / "summary.tsv", [
        {"experiment": "s0_restoration", "quantity": "Dice left", "series": s, "n": 16, "n_counts": "subjects",
         "ours": v, "ours_text": t, "published": "78 ± 8 %", "published_value": 0.78, "relation": "=",
         "unit": "fraction", "scale": "reference"}
        for s, v, t in (("prediction", 0.812, "81 ± 6 %"), ("input", 0.70, "70 ± 9 %"),
                        ("mean_normal", 0.66, "66 ± 7 %"))])
    (s0 / "config.resolved.yaml").write_text(
        "inputs: {source: demo, demo: {n_subjects: 48}}\n"
        "datasets: {s0: {split: {method: counts, counts: {train: 28, val: 0, test: 16}}}}\n"
        "report: {scale_label: reference scale}\n")
    (s0 / "run.json").write_text(json.dumps({"commit": "0123456789abcdef", "dirty": False, "wall_s": 3000.0,
                                             "stages": {"training": {"jobs": 2, "job_s": 1320.0, "cpu_s": 2500.0}},
                                             "note": "beside other work"}))
    s2 = root / "s2"
    _tsv(s2 / "verdicts.tsv", _verdict_rows("S2", [
        ("native space better than template space", "ssim_brain (A - B, subject means)", "SSIM", 0.031,
         "native better in 14 of 18 comparisons (p < 0.01)", 18, 0.0, "no difference",
         ("reproduced", "significant in the published direction (p = 0.001)"))]))
    _tsv(s2 / "published.tsv", [{"quantity": "Table 4 mean SSIM", "space": "native", "loss": "l1", "input": "mri",
                                 "ours": 0.61, "ours_brain": 0.55, "published": 0.87, "n": 18,
                                 "n_counts": "test subjects"}])


def test_page_puts_ours_beside_the_published_with_n_and_verdicts(tmp_path):
    root = tmp_path / "results"
    _fake_tree(root)
    page = R.render_page(root)
    assert "## S0" in page and "## S2" in page and "## S1" not in page
    # every published number beside ours, the baseline, n and the verdict computed in the run
    assert "| 78 ± 8 % | 0.812 fraction | 0.7 (damaged input (baseline)) | 16 test subjects |" in page
    assert "**reproduced**" in page and "**not reproduced**, ours 1.5 misses it" in page
    assert "Cohort: 48 simulated subjects; split 28 train / 0 val / 16 test; reference scale" in page
    assert ("commit `0123456789ab`; wall time 50.0 min (42 CPU minutes in all jobs: 21 min on 2 cores that do "
            "nothing else, at best); beside other work; job minutes per stage: training 22.0") in page
    # supporting tables: S0's baselines per series, S2's Table 4 in the paper's metric and in the brain
    assert "baseline: mean normal slice" in page and "66 ± 7 %" in page
    assert "| Table 4 mean SSIM | native | l1 | mri | 0.87 | 0.61 | 0.55 | 18 | test subjects |" in page
    assert "| [S2](#s2) | 18 test subjects | reproduced 1 (of 1 findings) |" in page


def test_a_reading_is_shown_for_its_own_run_and_refused_for_another(tmp_path):
    root = tmp_path / "results"
    _fake_tree(root)
    (root / "s0" / "reading.md").write_text("<!-- run: 0123456789ab -->\n- The baseline reaches the level.\n")
    page = R.render_page(root)
    assert "Likely reasons (read from this run's tables" in page and "- The baseline reaches the level." in page
    assert page.index("Likely reasons") < page.index("## S2")                 # in S0's section
    (root / "s0" / "reading.md").write_text("<!-- run: fedcba987654 -->\n- Of an older run.\n")
    with pytest.raises(InputDataError, match="reading is of run fedcba987654.*kept outputs of run 0123456789ab"):
        R.render_page(root)
    (root / "s0" / "reading.md").write_text("- No run named.\n")
    with pytest.raises(InputDataError, match="none named"):
        R.render_page(root)


def test_check_detects_a_stale_page_and_readme_block(tmp_path, capsys):
    root = tmp_path / "results"
    _fake_tree(root)
    out, readme = tmp_path / "results.md", tmp_path / "README.md"
    readme.write_text(f"# x\n\n{R.PAGE_START}\nold\n{R.PAGE_END}\n\nrest\n")
    args = ["results", "--root", str(root), "--out", str(out), "--readme", str(readme)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    assert "[S0](docs/results.md#s0)" in readme.read_text() and readme.read_text().endswith("\n\nrest\n")
    out.write_text(out.read_text().replace("0.812", "0.9"))
    assert main([*args, "--check"]) == 1
    assert "differ from what" in capsys.readouterr().err


def test_collect_keeps_the_right_files(tmp_path):
    run = tmp_path / "run"
    ev = run / "evaluate" / "s3" / "s3_pix2pix"
    rows = _verdict_rows("S3", [("SSIM rises", "in-brain SSIM", "SSIM", 0.8, "0.86", 24, 0.7, "input SPECT",
                                 ("reproduced", "significant"))])
    _tsv(ev / "verdicts.tsv", rows)
    for name in ("summary", "ttests", "regression", "published", "not_computed", "roi_means"):
        _tsv(ev / f"{name}.tsv", [{"a": 1}])
    _tsv(ev / "slice_metrics.tsv", [{"a": 1}])          # per slice: not kept
    (ev / "scatter_fits.png").write_bytes(b"\x89PNG fake")
    (run / "provenance").mkdir(parents=True)
    (run / "provenance" / "config.resolved.yaml").write_text("seed: 1\n")
    (run / "provenance" / "run.json").write_text(json.dumps({"git": {"commit": "abc", "dirty": True}}))
    _tsv(run / "benchmarks" / "train_model" / "s3_pix2pix.tsv", [{"s": 600.0, "cpu_time": 1100.0}])
    _tsv(run / "benchmarks" / "register_template" / "sub-01.tsv", [{"s": 30.0, "cpu_time": 17.0}])
    into = tmp_path / "docs" / "results" / "s3"
    assert main(["results", "collect", str(run), "--study", "s3", "--into", str(into), "--wall-s", "3400",
                 "--note", "one job at a time"]) == 0
    kept = {p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file()}
    assert kept == {"verdicts.tsv", "config.resolved.yaml", "run.json", "s3_pix2pix/scatter_fits.png",
                    *(f"s3_pix2pix/{n}.tsv" for n in ("verdicts", "summary", "ttests", "regression", "published",
                                                       "not_computed", "roi_means"))}
    stacked = pd.read_csv(into / "verdicts.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert stacked["experiment"].tolist() == ["s3_pix2pix"] and stacked["verdict"].tolist() == ["reproduced"]
    info = json.loads((into / "run.json").read_text())
    assert info["commit"] == "abc" and info["dirty"] and info["wall_s"] == 3400.0
    assert info["note"] == "one job at a time"
    assert info["stages"]["training"] == {"jobs": 1, "job_s": 600.0, "cpu_s": 1100.0}
    assert info["stages"]["preprocessing"]["job_s"] == 30.0
    assert "## S3" in R.render_page(into.parent) and "results/s3/s3_pix2pix/scatter_fits.png" in R.render_page(into.parent)


@pytest.mark.parametrize("extra", [None, "s0", "s1", "s2", "s3"])
def test_reference_config_validates_and_plans(extra):
    files = [REPO / "config" / "config.yaml", REFERENCE]
    if extra:
        files.append(REPO / "config" / "studies" / f"reference-{extra}.yaml")
    cfg = R.merged_config(files)
    p = plan(cfg)
    studies = {e["dataset"].split("_")[0] for e in p["experiments"].values()}
    assert studies == ({extra} if extra else {"s0", "s1", "s2", "s3"})
    assert len(p["subjects"]) == cfg["inputs"]["demo"]["n_subjects"]


def test_reference_config_quotes_its_computed_power():
    cfg = R.merged_config([REPO / "config" / "config.yaml", REFERENCE])
    block = R.block_of(REFERENCE.read_text(), R.POWER_START, R.POWER_END)
    assert block == R.power_block(cfg), (
        "config/studies/reference.yaml's power block is stale; run spectsynth results power config/config.yaml "
        "config/studies/reference.yaml --update config/studies/reference.yaml")
    assert "S2: 18 test subjects" in block and "S3:" in block and "S1:" in block


def test_the_committed_page_matches_the_kept_results():
    root = REPO / "docs" / "results"
    if not root.is_dir():
        pytest.skip("docs/results/ does not exist yet: no reference run has been kept "
                    "(spectsynth results collect); the page then says so")
    assert (REPO / "docs" / "results.md").read_text() == R.render_page(root), (
        "docs/results.md is stale; run spectsynth results")
    assert R.block_of((REPO / "README.md").read_text()) == R.readme_block(root)
