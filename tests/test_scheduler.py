"""spectsynth.scheduler: Snakemake's scheduler keeps one wake-up timer pending, not one per job;
a rule's script is checked once per rule, not once per job."""

from __future__ import annotations

import threading
import time

import pytest

from spectsynth.scheduler import script_checks_once, single_reevaluation


class _Loop:
    """What the patched method touches of Snakemake's JobScheduler: the loop's semaphore."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)

    def _schedule_reevalutation(self, delay):  # the upstream spelling
        threading.Timer(delay, lambda: self._open_jobs.release()).start()


def _wakeups(loop, wait: float) -> int:
    n = 0
    deadline = time.monotonic() + wait
    while loop._open_jobs.acquire(timeout=max(0.0, deadline - time.monotonic())):
        n += 1
    return n


def test_unpatched_every_pass_arms_another_timer():
    class Loop(_Loop):
        pass

    loop = Loop()
    for _ in range(5):
        loop._schedule_reevalutation(0.05)
    assert _wakeups(loop, 0.4) == 5


def test_patched_one_wakeup_is_pending_at_a_time():
    class Loop(_Loop):
        pass

    assert single_reevaluation(Loop) is True and single_reevaluation(Loop) is True
    loop = Loop()
    for _ in range(5):
        loop._schedule_reevalutation(0.05)
    assert _wakeups(loop, 0.4) == 1          # the pending one wakes the loop after the timespan
    loop._schedule_reevalutation(0.05)       # ... and a later pass may arm the next
    assert _wakeups(loop, 0.4) == 1
    threads = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert all(t.daemon for t in threads)    # never holds up the exit


def test_applies_to_this_snakemake():
    from snakemake.scheduling.job_scheduler import JobScheduler

    assert single_reevaluation() is True
    assert JobScheduler._schedule_reevalutation.__module__ == "spectsynth.scheduler"


def test_a_snakemake_without_the_method_is_left_alone():
    class Other:
        pass

    assert single_reevaluation(Other) is False and not hasattr(Other, "_schedule_reevalutation")


class _Rule:
    def __init__(self, script, basedir="/wf"):
        self.script, self.basedir = script, basedir


class _Job:
    def __init__(self, rule, is_script=True):
        self.rule, self.is_script = rule, is_script


def _processor(missing=()):
    class Processor:
        script_type = "script"
        checked: list = []

        def process_job(self, job):
            if not job.is_script:
                return
            Processor.checked.append(job.rule.script)
            if job.rule.script in missing:
                raise FileNotFoundError(job.rule.script)

    return Processor


def test_a_rules_script_is_checked_for_its_first_job_only():
    Processor = _processor()
    assert script_checks_once(Processor) is True and script_checks_once(Processor) is True
    proc, a, b, wild = Processor(), _Rule("a.py"), _Rule("b.py"), _Rule("{x}.py")
    for job in [_Job(a), _Job(a), _Job(b), _Job(wild), _Job(wild), _Job(a), _Job(_Rule("a.py", "/other"))]:
        proc.process_job(job)
    proc.process_job(_Job(_Rule(None), is_script=False))
    assert Processor.checked == ["a.py", "b.py", "{x}.py", "{x}.py", "a.py"]


def test_a_missing_script_still_fails_every_time():
    Processor = _processor(missing={"gone.py"})
    script_checks_once(Processor)
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            Processor().process_job(_Job(_Rule("gone.py")))


def test_script_check_applies_to_this_snakemake():
    import snakemake.api  # noqa: F401  (snakemake.dag imports in the order Snakemake loads it)
    from snakemake.dag import NotebookProcessor, ScriptProcessor

    assert script_checks_once() is True
    assert ScriptProcessor.process_job.__module__ == "spectsynth.scheduler"
    assert issubclass(NotebookProcessor, ScriptProcessor)  # its own check goes through the patched one
    assert script_checks_once(type("Other", (), {})) is False
