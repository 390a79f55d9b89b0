"""One logging setup for every rule script and command-line entry point."""

from __future__ import annotations

import logging
import sys
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
        logging.getLogger("spectsynth").error("%s: %s", exc_type.__name__, exc)
        previous(exc_type, exc, tb)

    hook._spectsynth = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("spectsynth") else f"spectsynth.{name}")
