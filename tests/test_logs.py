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
