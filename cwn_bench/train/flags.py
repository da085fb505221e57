"""The decisions every rank must agree on (stop, checkpoint due, non-finite loss), reduced
over ranks without making the host wait for the device.

A sync point (every ``train.sync_every`` steps, checkpoints, epoch ends) *collects* the
reduction started at the previous one and *starts* the next: the flags travel as one int64
device tensor ``[-stop, first bad step, -due]`` all-reduced with MIN (so stop and due are
OR-ed and the earliest non-finite step wins), with ``async_op=True``. On a GPU the result
and the step losses captured for the log are copied to pinned host memory behind a CUDA
event right away, so collecting them one window later waits only for the work queued up to
the previous sync point, never for the steps in flight. :meth:`FlagReduction.now` is the
blocking form, for checkpoints and epoch ends (where the device is drained anyway).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor

from cwn_bench.train.distributed import DistEnv

NONE = 2**62  # "no non-finite step" in the MIN reduction


class Flags(NamedTuple):
    """Agreed by every rank. ``bad_step``: the first global step (counted from 1) whose
    training loss was non-finite on some rank, or None."""

    stop: bool
    due: bool
    bad_step: int | None

    def merge(self, later: Flags) -> Flags:
        bad = [s for s in (self.bad_step, later.bad_step) if s is not None]
        return Flags(self.stop or later.stop, self.due or later.due, min(bad) if bad else None)


class Captured(NamedTuple):
    """A step record to write once its loss is on the host: ``fields`` and the loss tensor."""

    fields: dict[str, Any]
    loss: Tensor


class Collected(NamedTuple):
    flags: Flags
    records: list[tuple[dict[str, Any], float]]  # (fields, loss) of the captured step records


class FlagReduction:
    """At most one reduction in flight; see the module docstring."""

    def __init__(self, env: DistEnv) -> None:
        self.env = env
        # work, flag values, CUDA event, captured records, their losses stacked
        self._pending: tuple[Any, Tensor, Any, list[Captured], Tensor | None] | None = None

    def start(self, stop: bool, due: bool, bad_step: Tensor, records: list[Captured]) -> None:
        """Begin reducing this rank's flags; ``bad_step`` is an int64 device scalar (0: none)
        computed by the queued steps; ``records`` were captured since the last start."""
        if self._pending is not None:
            raise RuntimeError("a flag reduction is already in flight; collect it first")
        device = bad_step.device
        values = torch.empty(3, dtype=torch.int64, device=device)  # filled on the device: no host tensor
        values[0].fill_(-int(stop))
        values[1].copy_(bad_step.masked_fill(bad_step == 0, NONE))
        values[2].fill_(-int(due))
        work = dist.all_reduce(values, op=dist.ReduceOp.MIN, async_op=True) if self.env.distributed else None
        losses = torch.stack([r.loss.float() for r in records]) if records else None
        event = None
        if device.type == "cuda":
            if work is not None:
                work.wait()  # the current stream waits for the reduction; the host does not
                work = None
            values = values.to("cpu", non_blocking=True)  # into pinned memory, ordered on the stream
            losses = losses.to("cpu", non_blocking=True) if losses is not None else None
            event = torch.cuda.Event()
            event.record()
        self._pending = (work, values, event, records, losses)

    def collect(self) -> Collected | None:
        """The flags (and step records) of the reduction in flight, None when there is none."""
        if self._pending is None:
            return None
        work, values, event, records, losses = self._pending
        self._pending = None
        if work is not None:
            work.wait()
        if event is not None:
            event.synchronize()
        stop, bad, due = values.tolist()
        return Collected(Flags(stop < 0, due < 0, None if bad >= NONE else bad),
                         list(zip((r.fields for r in records), losses.tolist() if losses is not None else [])))

    def now(self, stop: bool, due: bool, bad_step: Tensor, records: list[Captured]) -> Collected:
        """Blocking: the flags agreed now, merged with the reduction in flight (if any)."""
        earlier = self.collect()
        self.start(stop, due, bad_step, records)
        latest = self.collect()
        assert latest is not None
        if earlier is None:
            return latest
        return Collected(earlier.flags.merge(latest.flags), earlier.records + latest.records)
