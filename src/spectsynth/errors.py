"""Error types with messages that name the subject, the file and what to do next."""

from __future__ import annotations

from pathlib import Path


class SpectsynthError(RuntimeError):
    """Base class for every error the pipeline raises on purpose."""


class ConfigError(SpectsynthError):
    """The configuration is invalid (unknown key, wrong type, value out of range)."""


class _FileError(SpectsynthError):
    """An error about one file of one subject: ``subject <id>: <file>: <problem>. <hint>``."""

    def __init__(self, problem: str, *, subject: str | None = None,
                 path: str | Path | None = None, hint: str | None = None):
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
        self.subject = subject
        msg = f"subject {subject}: {problem}" if subject else problem
        if hint:
            msg = f"{msg}. {hint}"
        super().__init__(msg)


class EvaluationError(SpectsynthError):
    """A metric or statistic cannot be computed from what it was given.

    The message reads ``experiment <name>: subject <id>: <problem>. <hint>`` so that a
    failed evaluation rule says which experiment (and subject) to look at, instead of
    writing NaN into a table.
    """

    def __init__(self, problem: str, *, experiment: str | None = None,
                 subject: str | None = None, hint: str | None = None):
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
