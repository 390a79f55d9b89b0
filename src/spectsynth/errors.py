"""Error types with messages that name the subject, the file and what to do next.

Code that knows nothing of the pipeline (metrics, statistics) raises its errors with the
problem and the hint only; the caller that knows which experiment and subject it is working
on wraps the calls in :func:`context`, and every error created inside names them::

    with context(experiment="s2_native", subject="03"):
        rows = metrics.slice_metrics(prediction, target, data_range=2.0)

A value given where the error is raised wins over the context, and an inner context wins
over an outer one for what it sets.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path

# an immutable tuple of (key, value) pairs; each context block sets a new one
_CONTEXT: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "spectsynth_error_context", default=())


@contextlib.contextmanager
def context(*, experiment: str | None = None, subject: str | None = None) -> Iterator[None]:
    """Name ``experiment`` and/or ``subject`` in every :class:`SpectsynthError` created inside.

    An error that carries these fields (:class:`EvaluationError`: both; :class:`InputDataError`,
    :class:`OutputWriteError`, :class:`ProcessingError`: the subject) and was not given them
    where it was raised takes them from the innermost context that sets them, so its message
    reads ``experiment <name>: subject <id>: <problem>. <hint>`` as if the raise site had
    named them.  The context is filled in when the error is created, so an error caught and
    recorded inside the block (e.g. as the reason a statistic was not computed) names them too.
    ``None`` leaves the outer context's value in place.
    """
    given = {k: str(v) for k, v in (("experiment", experiment), ("subject", subject)) if v is not None}
    token = _CONTEXT.set(tuple({**dict(_CONTEXT.get()), **given}.items()))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, str]:
    """The experiment and subject named by the enclosing :func:`context` blocks (for logs)."""
    return dict(_CONTEXT.get())


def _from_context(key: str, value: str | None) -> str | None:
    return dict(_CONTEXT.get()).get(key) if value is None else value


class SpectsynthError(RuntimeError):
    """Base class for every error the pipeline raises on purpose."""


class ConfigError(SpectsynthError):
    """The configuration is invalid (unknown key, wrong type, value out of range)."""


class _FileError(SpectsynthError):
    """An error about one file of one subject: ``subject <id>: <file>: <problem>. <hint>``."""

    def __init__(self, problem: str, *, subject: str | None = None,
                 path: str | Path | None = None, hint: str | None = None):
        subject = _from_context("subject", subject)
        self.subject = subject
        self.path = str(path) if path is not None else None
        self.problem = problem
        self.hint = hint
        parts = []
        if subject:
            parts.append(f"subject {subject}")
        if path is not None:
            parts.append(str(path))
        prefix = ": ".join(parts)
        msg = f"{prefix}: {problem}" if prefix else problem
        if hint:
            msg = f"{msg}. {hint}"
        super().__init__(msg)


class InputDataError(_FileError):
    """An input image of one subject is unusable.

    The message always reads ``subject <id>: <file>: <problem>. <hint>`` so that a user
    scanning a log of hundreds of subjects sees at once which file to fix and how.
    """


class OutputWriteError(_FileError):
    """An output file could not be written (full disk, quota, output folder in use).

    Same message form as :class:`InputDataError`: which subject, which file, what went wrong
    (with the space needed and free for a full disk) and what to do.
    """


class TrainingError(SpectsynthError):
    """Training cannot start or go on (bad data size, empty split, ...)."""


class ProcessingError(SpectsynthError):
    """A processing step produced a result that fails its own quality check."""

    def __init__(self, problem: str, *, subject: str | None = None, hint: str | None = None):
        subject = _from_context("subject", subject)
        self.subject = subject
        msg = f"subject {subject}: {problem}" if subject else problem
        if hint:
            msg = f"{msg}. {hint}"
        super().__init__(msg)


class EvaluationError(SpectsynthError):
    """A metric or statistic cannot be computed from what it was given.

    The message reads ``experiment <name>: subject <id>: <problem>. <hint>`` so that a
    failed evaluation rule says which experiment (and subject) to look at, instead of
    writing NaN into a table.  Experiment and subject not given here come from the enclosing
    :func:`context`.
    """

    def __init__(self, problem: str, *, experiment: str | None = None,
                 subject: str | None = None, hint: str | None = None):
        experiment = _from_context("experiment", experiment)
        subject = _from_context("subject", subject)
        self.experiment = experiment
        self.subject = subject
        self.problem = problem
        self.hint = hint
        parts = []
        if experiment:
            parts.append(f"experiment {experiment}")
        if subject:
            parts.append(f"subject {subject}")
        prefix = ": ".join(parts)
        msg = f"{prefix}: {problem}" if prefix else problem
        if hint:
            msg = f"{msg}. {hint}"
        super().__init__(msg)
