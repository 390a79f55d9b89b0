"""Two measured fixes of Snakemake's per-job overhead: one wake-up timer for its job scheduler
instead of one more per finished job (:func:`single_reevaluation`), and a rule's script checked
once instead of once per job (:func:`script_checks_once`; ``snakemake -n`` of 1000 subjects
33 -> 29 s, ``benchmarks/bench_dryrun.py``).

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


def _patch(cls, method: str, marker: str, replacement) -> bool:
    """Replace ``cls.method`` by ``replacement(original)`` once (``marker`` notes it on the class);
    True when applied or already applied, False when ``cls`` has no such method (left alone)."""
    if getattr(cls, marker, False):
        return True
    original = getattr(cls, method, None)
    if not callable(original):
        return False
    setattr(cls, method, replacement(original))
    setattr(cls, marker, True)
    return True


def single_reevaluation(scheduler_class=None) -> bool:
    """Make the scheduler keep at most one wake-up timer pending; True when it was applied (or
    already was), False when this Snakemake has no such method (nothing is changed then)."""
    if scheduler_class is None:
        try:
            from snakemake.scheduling.job_scheduler import JobScheduler as scheduler_class
        except ImportError:
            return False
    return _patch(scheduler_class, "_schedule_reevalutation", _PATCHED, lambda original: _schedule_once)


_CHECKED = "_spectsynth_script_checked_once"


def _check_once(original):
    checked: set = set()

    def process_job(self, job) -> None:
        kind = getattr(self, "script_type", "script")
        entry = getattr(job.rule, kind, None) if getattr(job, f"is_{kind}", False) else None
        if entry is None or "{" in str(entry):
            return original(self, job)
        key = (kind, str(entry), str(job.rule.basedir))
        if key in checked:
            return None
        original(self, job)
        checked.add(key)
        return None

    return process_job


def script_checks_once(processor_class=None) -> bool:
    """Check that a rule's script exists once per rule instead of once per job.

    Snakemake (9.x) checks, for every job of a ``script:`` rule while the DAG is post-processed,
    that the rule's script can be read (``snakemake.dag.ScriptProcessor.process_job``): it
    copies the script into its source cache and reads it each time, parsing the path as a URI
    (a new ``namedtuple`` class per call in ``smart_open``). For a script path without wildcards
    the answer is the same for every job of the rule, so the check runs for the rule's first job
    only. A missing script still fails the run, with Snakemake's own message. True when applied
    (or already), False when this Snakemake has no such class (nothing is changed then).
    """
    if processor_class is None:
        try:
            from snakemake.dag import ScriptProcessor as processor_class
        except ImportError:
            return False
    return _patch(processor_class, "process_job", _CHECKED, _check_once)
