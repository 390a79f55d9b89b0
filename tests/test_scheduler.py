"""spectsynth.scheduler: Snakemake's scheduler keeps one wake-up timer pending, not one per job."""

from __future__ import annotations

import threading
import time

from spectsynth.scheduler import single_reevaluation


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
