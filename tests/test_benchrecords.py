"""Benchmark records (spectsynth.benchrecords): the verdict rule, the record, the README's block."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from spectsynth import benchrecords as B
from spectsynth.cli import main
from spectsynth.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("value", "target", "verdict"), [
    (9.9, "<= 10", "met"), (10.0, "<= 10", "met"), (10.1, "<= 10", "not met"),
    (0.88, ">= 0.88", "met"), (0.879, ">=0.88", "not met"), (5, "< 5", "not met"), (6, "> 5", "met"),
    (float("nan"), "<= 10", "not met"), (3.0, "", ""),
])
def test_the_verdict_is_computed_from_the_value_and_the_target(value, target, verdict):
    assert B.meets(value, target) == verdict


@pytest.mark.parametrize("target", ["10", "about 10", "<= ten", "=< 10"])
def test_a_target_that_is_not_an_operator_and_a_number_is_refused(target):
    with pytest.raises(ConfigError, match="operator"):
        B.meets(1.0, target)


def test_write_read_render_and_the_readme_block(tmp_path, capsys):
    d = tmp_path / "records"
    B.write(d, "demo", [B.Measure("wall", 700.0, "s", "<= 720", peer=651.0, peer_name="before"),
                        B.Measure("jobs time", 19.5, "min")], command="python benchmarks/bench_demo.py --run")
    B.write(d, "preprocess", [B.Measure("Dice", 0.87, target=">= 0.88")], command="python benchmarks/x.py")
    table = B.read(d)
    assert list(table["bench"]) == ["demo", "demo", "preprocess"]
    assert list(table["met"]) == ["met", "", "not met"]
    assert float(table["ratio"][0]) == pytest.approx(700 / 651)
    text = B.render(table)
    assert "| `demo` | wall | **11:40 min** | <= 12:00 min | met | 10:51 min (before) | 1.08 |" in text
    assert "| `preprocess` | Dice | **0.870** | >= 0.88 | not met |  |  |" in text
    assert "`python benchmarks/bench_demo.py --run`" in text

    # a hand-edited verdict does not survive reading: it is computed again
    path = d / "preprocess.tsv"
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    raw.loc[0, "met"] = "met"
    raw.to_csv(path, sep="\t", index=False)
    assert B.read(d)["met"].iloc[-1] == "not met"

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{B.START}\nold\n{B.END}\ntail\n")
    assert main(["benchmarks", str(d), "--readme", str(readme)]) == 1
    assert "--update" in capsys.readouterr().err
    assert main(["benchmarks", str(d), "--readme", str(readme), "--update"]) == 0
    assert main(["benchmarks", str(d), "--readme", str(readme)]) == 0
    assert readme.read_text().endswith(f"{B.END}\ntail\n")


def test_no_records_and_a_foreign_table_get_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="--record"):
        B.read(tmp_path)
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ConfigError, match="not a benchmark record"):
        B.read(tmp_path)
    with pytest.raises(ConfigError, match="nothing measured"):
        B.rows("x", [], command="c")


def test_the_readme_benchmark_table_is_generated_from_the_kept_records():
    text = (REPO / "README.md").read_text()
    from spectsynth.headline import readme_block

    block = readme_block(text, B.START, B.END)
    assert block is not None, "README.md lost its generated benchmark block"
    assert block == B.render(B.read(REPO / "docs" / "benchmarks")), (
        "README.md's benchmark block is stale; run spectsynth benchmarks docs/benchmarks --readme README.md --update")


def test_the_recorded_command_leaves_out_where_the_script_wrote():
    argv = ["--run", "--cores", "2", "--outdir", "/tmp/x", "--record=docs/benchmarks", "--out", "o.tsv", "--poses", "3"]
    assert B.command_line("/any/where/benchmarks/bench_demo.py", argv) == \
        "python benchmarks/bench_demo.py --run --cores 2 --poses 3"


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_demo_benchmark_records_its_wall_time_against_the_previous_figure(tmp_path):
    bench = _script("bench_demo")
    prev = bench.PREVIOUS
    run = bench.Run(wall_s=prev["wall_s"] * 0.9, jobs=prev["jobs"], job_s={"a": prev["job_s"] * 0.9})
    table = B.rows("demo", bench.record(run, prev["cores"]), command="c")
    wall = table.iloc[0]
    assert wall["met"] == ("met" if wall["value"] <= bench.TARGET_WALL_S else "not met")
    assert wall["ratio"] == pytest.approx(0.9)
    # another set of jobs is not the same work: no previous figure beside it
    other = B.rows("demo", bench.record(bench.Run(wall_s=100.0, jobs=7, job_s={"a": 150.0}), 2), command="c")
    assert other["peer"].isna().all()


def test_the_suite_benchmark_reads_pytests_summary():
    bench = _script("bench_suite")
    text = "...\n===== 810 passed, 4 skipped, 2 warnings in 493.21s (0:08:13) =====\n"
    assert bench.parse_summary(text) == {"passed": 810, "skipped": 4, "warnings": 2}
    assert bench.parse_summary("= 1 failed, 3 passed in 2.00s =") == {"failed": 1, "passed": 3}
    assert bench.parse_summary("no summary") == {}


def test_the_simulator_and_training_benchmarks_record_their_rows():
    sim = _script("bench_simulate")
    rows = [{"path": "image", "what": "DaT volume (median)", "grid": "64^3 x 4 mm", "seconds": 0.1},
            {"path": "image", "what": "prepare subject (once)", "grid": "64^3 x 4 mm", "seconds": 3.0},
            {"path": "projection (plain PyTomography)", "what": "volume: projection + OSEM", "grid": "g", "seconds": 10.0},
            {"path": "projection (cache)", "what": "volume: projection + OSEM", "grid": "g", "seconds": 4.0}]
    table = B.rows("simulate", sim.record(rows), command="c")
    assert list(table["met"]) == ["met", ""]
    assert float(table["ratio"].iloc[1]) == pytest.approx(0.4)

    train = _script("bench_train")
    runs = pd.DataFrame([{"family": "vae", "variant": v, "device": "cpu", "size": 64, "batch_size": 8, "widths": "demo",
                          "images_per_s": ips, "data_wait_share": 0.07, "peak_mem_mib": 400.0}
                         for v, ips in (("fp32", 100.0), ("bf16", 150.0))])
    table = B.rows("train", train.record(runs), command="c")
    assert len(table) == 6
    speed = table[table["measure"].str.startswith("training images/s")]
    assert speed["ratio"].isna().iloc[0] and float(speed["ratio"].iloc[1]) == pytest.approx(1.5)
    assert set(table.loc[table["unit"] == "%", "met"]) == {"not met"}  # 7 % of the step time waiting


def test_a_scripts_record_option_and_save(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    B.add_option(parser, "x")
    args = parser.parse_args(["--record", str(tmp_path)])
    path = B.save(args.record, "x", [B.Measure("m", 1.0)], "benchmarks/bench_x.py",
                  ["--record", str(tmp_path), "--n", "3"])
    assert path == tmp_path / "x.tsv"
    assert B.read(tmp_path)["command"].iloc[0] == "python benchmarks/bench_x.py --n 3"
    assert parser.parse_args([]).record is None
