"""One wake-up timer for Snakemake's job scheduler instead of one more per finished job.

Snakemake's scheduler loop (``snakemake.scheduling.job_scheduler.JobScheduler.schedule``, 9.x)
arms a ``threading.Timer`` at the end of every pass when a job rate limit is set (the default
``--max-jobs-per-timespan 100/1s``): it wakes the loop again after the timespan. Every pass arms
one, whatever woke it, and every finished job wakes it once more, so each finished job starts
another chain of timers that re-arms itself for the rest of the run: after N jobs the loop runs
about N times a second. Measured on this workflow's 48-subject S1 reference run: 408 scheduler
threads after 469 jobs, and the main Snakemake process at 30 % of a core (15 CPU minutes in 51
minutes of wall time) doing nothing but these passes. Upstream: snakemake/snakemake#2967
(slowdown with a growing thread count), #3744 (the loop re-run before the timespan).

:func:`single_reevaluation` keeps at most one wake-up pending (a daemon thread, so it never holds
up the exit). A pass that finds one pending arms none; the pending one still wakes the loop after
the timespan, which is all the rate limit needs (a finished job wakes the loop itself). Which jobs
run, and when they may start, is unchanged. ``benchmarks/bench_scheduler.py`` measures the main
process's CPU time with and without it.
"""

from __future__ import annotations

import threading

_PATCHED = "_spectsynth_single_reevaluation"


def _schedule_once(self, delay: float) -> None:
    lock = self.__dict__.setdefault("_spectsynth_reeval_lock", threading.Lock())
    with lock:
        if self.__dict__.get("_spectsynth_reeval_pending"):
            return
        self._spectsynth_reeval_pending = True

    def wake() -> None:
        with lock:
            self._spectsynth_reeval_pending = False
        self._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()


def single_reevaluation(scheduler_class=None) -> bool:
    """Make the scheduler keep at most one wake-up timer pending; True when it was applied (or
    already was), False when this Snakemake has no such method (nothing is changed then)."""
    if scheduler_class is None:
        try:
            from snakemake.scheduling.job_scheduler import JobScheduler as scheduler_class
        except ImportError:
            return False
    if getattr(scheduler_class, _PATCHED, False):
        return True
    if not callable(getattr(scheduler_class, "_schedule_reevalutation", None)):
        return False
    scheduler_class._schedule_reevalutation = _schedule_once
    setattr(scheduler_class, _PATCHED, True)
    return True
