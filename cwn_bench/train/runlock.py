"""One writer per run directory.

A job requeued after preemption can start while its predecessor is still shutting down
(SLURM's COMPLETING state lasts up to KillWait), and a user may resubmit by hand: two
processes appending to one metrics.jsonl would duplicate epochs.  Rank 0 therefore holds
an exclusive ``flock`` on ``<run_dir>/.lock`` for the whole run; the kernel drops it when
the process dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cwn_bench.errors import UserError

LOCK = ".lock"


@contextlib.contextmanager
def exclusive(run_dir: Path, wait_s: float = 600.0, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the run directory's lock (created with the directory), waiting up to ``wait_s``
    seconds for a previous holder to end; then fail naming that holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+") as f:
        deadline, told = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise UserError(f"{run_dir}: another process ({holder}) is still training in this run "
                                    f"directory after {wait_s:.0f} s; stop it or choose another --run-dir") from None
                if not told:
                    print(f"{run_dir}: waiting for the process holding it ({holder}) to end", file=sys.stderr)
                    told = True
                time.sleep(poll_s)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
