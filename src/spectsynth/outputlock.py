"""One run at a time per output folder.

Snakemake locks the working directory (``.snakemake/locks``), not the output folder: two
runs started from two working copies with the same ``output_dir`` would compute the same
jobs at the same time and overwrite each other's files.  The workflow therefore takes an
exclusive lock on ``<output_dir>/.spectsynth.lock`` (``flock``; over NFS the client turns it
into a POSIX lock the server arbitrates) when it starts executing jobs, and holds it until
the scheduling process exits -- a crash or SIGKILL releases it, there is nothing stale to
remove.  The file records who holds it (host, process, working directory, start time) so
that the refused run can say which run to wait for.

Only the main scheduling process takes it, from the workflow's ``onstart`` hook: dry runs
never call that hook, and jobs (local subprocesses, or SLURM jobs that parse the workflow
again) run with ``--no-hooks`` in a non-default execution mode.  :func:`holder` lets a dry run
mention a run in progress without waiting for or taking the lock.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import socket
import time
from pathlib import Path

from .errors import OutputWriteError

LOCK_NAME = ".spectsynth.lock"
_held: dict[str, int] = {}


def lock_path(output_dir: str | Path) -> Path:
    return Path(output_dir) / LOCK_NAME


def _describe(info: str) -> str:
    try:
        d = json.loads(info)
        return (f"process {d['pid']} on {d['host']} (user {d['user']}), started {d['started']} "
                f"from {d['workdir']}")
    except (ValueError, KeyError, TypeError):
        return "another process (no details recorded)"


def acquire(output_dir: str | Path) -> Path:
    """Take the output folder's lock for this process, or raise :class:`OutputWriteError`."""
    path = lock_path(output_dir)
    key = os.path.realpath(path)
    if key in _held:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        info = os.pread(fd, 4096, 0).decode(errors="replace")
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise OutputWriteError(
            f"the output folder is in use by another run: {_describe(info)}",
            path=Path(output_dir),
            hint="Wait for that run to finish (or stop it), or give this run another "
                 "output_dir; two runs on one output folder would overwrite each other's files",
        ) from None
    info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                       "user": getpass.getuser(), "workdir": os.getcwd(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}).encode() + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, info, 0)
    _held[key] = fd
    return path


def release(output_dir: str | Path) -> None:
    """Give the lock back (it is also released when the process exits)."""
    fd = _held.pop(os.path.realpath(lock_path(output_dir)), None)
    if fd is not None:
        os.close(fd)


def holder(output_dir: str | Path) -> str | None:
    """Who holds the output folder's lock (another process), or None; never waits."""
    path = lock_path(output_dir)
    if os.path.realpath(path) in _held or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _describe(os.pread(fd, 4096, 0).decode(errors="replace"))
    finally:
        os.close(fd)
    return None
