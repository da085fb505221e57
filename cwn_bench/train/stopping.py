"""Preemption signals: handlers that only set a flag, read at the next step boundary.

SLURM sends SIGTERM before it kills or requeues a job (and ``--signal=USR2@90`` warns
before the time limit); the handler must not do work itself, since a checkpoint needs
every rank at the same step.  The previous handlers are restored on exit.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)  # not SIGUSR1: NCCL may use it


class StopRequest:
    """Context manager: while inside, the given signals set :attr:`signum`."""

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            print("cwn-bench train: not in the main thread; preemption signals not handled", file=sys.stderr)
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
