"""Every rule's log says why its job failed, also for errors no script caught."""

from __future__ import annotations

import subprocess
import sys


def test_uncaught_exception_reaches_the_log_file(tmp_path):
    log = tmp_path / "rule.log"
    script = tmp_path / "job.py"
    script.write_text(
        "from spectsynth.logs import setup_logging\n"
        f"setup_logging({str(log)!r})\n"
        "raise RuntimeError('subject 07: registration failed; raise the iteration limit')\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "Traceback" in res.stderr                       # the traceback still goes to stderr
    text = log.read_text()
    assert "ERROR" in text and "RuntimeError: subject 07: registration failed" in text


def test_rule_script_error_is_logged_once_with_its_hint(tmp_path):
    """A rule script's failure (the wrapper of workflow/scripts/) reaches its log exactly once,
    with the hint, and still fails the job."""
    log = tmp_path / "logs" / "rule.log"
    script = tmp_path / "job.py"
    script.write_text(
        "from types import SimpleNamespace\n"
        "from spectsynth.errors import InputDataError\n"
        "from spectsynth.logs import rule_log\n"
        f"smk = SimpleNamespace(log=[{str(log)!r}])\n"
        "with rule_log(smk) as log:\n"
        "    log.info('starting')\n"
        "    raise InputDataError('image is all zeros', subject='07', path='t1.nii.gz',\n"
        "                         hint='Re-export the image')\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "Traceback" in res.stderr
    text = log.read_text()
    message = "InputDataError: subject 07: t1.nii.gz: image is all zeros. Re-export the image"
    assert text.count(message) == 1, text
    assert text.count("ERROR") == 1 and "starting" in text


def test_every_rule_script_runs_inside_the_wrapper():
    """Each script of workflow/scripts/ logs through spectsynth.logs.rule_log, not by hand."""
    from conftest import REPO

    for script in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        text = script.read_text()
        assert "with rule_log(" in text, f"{script.name} does not run inside rule_log"
        assert "setup_logging" not in text and "log.error" not in text, script.name
