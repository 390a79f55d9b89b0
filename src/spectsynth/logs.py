"""One logging setup for every rule script and command-line entry point.

Every script in ``workflow/scripts/`` runs its work inside :func:`rule_log`::

    with rule_log(snakemake):
        do_the_work(...)

which sets up logging to the rule's log file once and, when the work fails, writes the
error (with its hint: :class:`~spectsynth.errors.SpectsynthError` messages end with what to
do) to that log exactly once and re-raises it, so Snakemake marks the job as failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the package's log records to ``log_file`` (if given) and to stderr.

    Safe to call more than once: handlers installed by an earlier call are replaced.
    Returns the package logger.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_spectsynth", False):
            root.removeHandler(h)
            h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    for h in handlers:
        h.setFormatter(logging.Formatter(FORMAT))
        h._spectsynth = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    if log_file is not None:
        _log_uncaught_exceptions()
    # Quieten chatty third-party loggers.
    for name in ("matplotlib", "PIL", "fontTools", "bids", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return logging.getLogger("spectsynth")


def _log_uncaught_exceptions() -> None:
    """Write an uncaught exception's message to the log before the traceback goes to stderr,
    so that a rule's log file always says why its job failed."""
    previous = sys.excepthook
    if getattr(previous, "_spectsynth", False):
        return

    def hook(exc_type, exc, tb):
        if not getattr(exc, _LOGGED, False):
            log_error(exc)
        previous(exc_type, exc, tb)

    hook._spectsynth = True  # type: ignore[attr-defined]
    sys.excepthook = hook


_LOGGED = "_spectsynth_logged"


def log_error(exc: BaseException) -> None:
    """Write ``exc`` (type and message, which for the package's errors ends with the hint) to
    the log, once: an exception already written is not written again."""
    if getattr(exc, _LOGGED, False):
        return
    logging.getLogger("spectsynth").error("%s: %s", type(exc).__name__, exc)
    try:
        setattr(exc, _LOGGED, True)
    except AttributeError:  # an exception type with __slots__: it may be logged twice
        pass


@contextmanager
def rule_log(smk, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Run a rule script's work with its log: the one wrapper of ``workflow/scripts/``.

    Sets up logging to ``smk.log[0]`` (and stderr), yields the package logger, and on an
    exception writes it to the log once (see :func:`log_error`) and re-raises it, so that
    the job fails and its log says why.
    """
    log = setup_logging(smk.log[0] if smk.log else None, level)
    try:
        yield log
    except Exception as exc:
        log_error(exc)
        raise


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("spectsynth") else f"spectsynth.{name}")
