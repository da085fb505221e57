"""One writer per run directory.

A job requeued after preemption can start while its predecessor is still shutting down
(SLURM's COMPLETING state lasts up to KillWait), and a user may resubmit by hand: two
processes appending to one metrics.jsonl would duplicate epochs.  Rank 0 therefore holds
an exclusive ``flock`` on ``<run_dir>/.lock`` for the whole run; the kernel drops it when
the process dies, so a killed run never leaves a stale lock behind. ``submit`` asks
:func:`holder` so that it does not start a second job on a run that is training.

A file system without ``flock`` (Lustre mounted ``noflock``, some FUSE mounts) answers
ENOSYS / ENOLCK / EOPNOTSUPP: the run then trains without the lock, with a warning,
rather than not at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cwn_bench import atomic
from cwn_bench.errors import UserError
from cwn_bench.rundir import LOCK

_UNSUPPORTED = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP}


def holder(run_dir: Path) -> str | None:
    """``"pid N on HOST"`` of the process training in ``run_dir`` now, else None (no run
    yet, its process has ended, or the file system has no locks)."""
    try:
        with open(run_dir / LOCK) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # fails only while a writer holds LOCK_EX
            except BlockingIOError:
                return f.read().strip() or "unknown"
            except OSError as err:
                if err.errno in _UNSUPPORTED:
                    return None
                raise
            fcntl.flock(f, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return None


def _acquire(f: IO[str], run_dir: Path, wait_s: float, poll_s: float) -> bool:
    """Take the exclusive lock on ``f``, polling up to ``wait_s`` seconds; False when the
    file system has no locks."""
    deadline, told = time.monotonic() + wait_s, False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "unknown"
            if time.monotonic() >= deadline:
                raise UserError(f"{run_dir}: another process ({who}) is still training in this run "
                                f"directory after {wait_s:.0f} s; stop it or choose another --run-dir") from None
            if not told:
                print(f"{run_dir}: waiting for the process holding it ({who}) to end", file=sys.stderr)
                told = True
            time.sleep(poll_s)
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                raise
            print(f"{run_dir}: the file system does not support flock ({err.strerror}); training without "
                  "the one-writer lock: do not start this run twice", file=sys.stderr)
            return False


@contextlib.contextmanager
def exclusive(run_dir: Path, wait_s: float = 600.0, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the run directory's lock (created with the directory), waiting up to ``wait_s``
    seconds for a previous holder to end; then fail naming that holder."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        f = open(run_dir / LOCK, "a+")
    except OSError as err:
        raise UserError(f"{run_dir / LOCK}: cannot create the run's lock ({err.strerror}); expected a "
                        "writable run directory") from None
    with f:
        if not _acquire(f, run_dir, wait_s, poll_s):
            yield
            return
        with atomic.writing(run_dir / LOCK):  # a full disk: one line, not a traceback
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
