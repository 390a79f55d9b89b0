"""benchmarks/gpu_check.sh --quick on the CPU: every stage of the GPU check runs and records itself.

The GPU check is run when a GPU machine is lent, rarely and briefly, so it must not fail there
for a reason a CPU run could have shown.  ``--quick`` runs every stage at tiny sizes; the stages
that need CUDA record ``skipped`` (no CUDA device) after running their CPU part.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

STAGES = ("environment", "cuda_tests", "kill_resume", "inference_diff", "sync_audit", "throughput",
          "data_path", "s2_training", "packing", "hours")


def test_quick_gpu_check_runs_every_stage_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.jsonl"
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--quick", "--device", "cpu",
                          "--out", str(out), "--workdir", str(tmp_path / "work")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_stage = {r["stage"]: r for r in records}
    assert [r["stage"] for r in records] == [*STAGES, "summary"]
    for name in STAGES:
        r = by_stage[name]
        assert r["status"] in ("ok", "skipped"), (name, r.get("error"), r.get("traceback"))
        assert r["seconds"] >= 0
    # without CUDA the CUDA stages say so; the rest ran
    for name in ("cuda_tests", "inference_diff", "sync_audit", "throughput", "packing"):
        assert by_stage[name]["status"] == "skipped" and "no CUDA device" in by_stage[name]["reason"], name
    for name in ("environment", "kill_resume", "data_path", "s2_training", "hours"):
        assert by_stage[name]["status"] == "ok", name
    assert by_stage["cuda_tests"]["collected"]               # the cuda-marked tests were found
    kr = by_stage["kill_resume"]["families"]
    assert set(kr) == {"vae", "cvae", "fastgan", "pix2pix"}
    assert all(f["killed_checkpoint_step"] == 2 and f["final_step"] > 2 for f in kr.values())
    assert all(r["images_per_s"] > 0 for r in by_stage["throughput"]["rows"])
    assert {r["mode"] for r in by_stage["data_path"]["rows"]} == {"preloaded", "h5py"}
    assert [h["epoch"] for h in by_stage["s2_training"]["history"]] == [1, 2]
    assert set(by_stage["packing"]["cases"]["s0_vae"]) >= {"1_process", "3_process"}
    hours = by_stage["hours"]
    assert {r["study"] for r in hours["rows"]} == {"S0", "S1", "S2", "S3"}
    assert "GPU-hours" in hours["table"] and "GPU-hours" in res.stdout
    assert all(r["gpu_hours_published_best"] > 0 for r in hours["rows"])
    assert by_stage["summary"]["failed"] == []
