"""TensorBoard event files mirroring metrics.jsonl (``train.tensorboard: true``).

Rank 0 writes every numeric field of each metrics.jsonl record as a scalar tagged
``<kind>/<field>`` (``step/loss``, ``epoch/val_top1_err``: metrics.jsonl's names; a record
of one layer, such as the Figure 2 probes', ``<kind>/<layer>/<field>``: ``probe/fc1/preact_var``,
``fim/fc4/cond``; a nested mapping of numbers ``<kind>/<field>/<key>``) at the record's
global step, into ``RUN_DIR/tensorboard/``.  Trainer calls :meth:`EventLog.write` beside
each ``MetricsLog.write`` (a writer of a new record kind does the same).  metrics.jsonl
stays the source of truth; the events are a view for watching a run while it trains.

Resume: a new attempt opens a new event file in the same folder with
``purge_step = checkpoint's global step + 1``; TensorBoard's reader then drops what an
earlier attempt wrote past that checkpoint (the steps the new attempt trains again), so
the run shows every step once.  Each record is flushed at once, so nothing the
checkpoint covers is lost when a job is killed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cwn_bench.errors import UserError

TENSORBOARD = "tensorboard"  # folder under the run directory
SKIP = {"kind", "epoch", "step", "layer"}  # record keys that are not series


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """``{tag: value}`` of one metrics.jsonl record: ``step/loss``, ``epoch/val_top1_err``,
    ``probe/fc1/preact_mean``... (booleans, strings, None and non-finite values are left out)."""
    out: dict[str, float] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                add(f"{prefix}/{key}", sub)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[prefix] = float(value)

    layer = record.get("layer")
    prefix = f"{record['kind']}/{layer}" if isinstance(layer, str) else record["kind"]
    for key, value in record.items():
        if key not in SKIP:
            add(f"{prefix}/{key}", value)
    return out


class EventLog:
    """The run's event writer; does nothing unless ``enabled`` (rank 0 with
    ``train.tensorboard``).  ``resume_step``: the global step the run continues from."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("train.tensorboard: true needs the tensorboard package "
                            "(pip install 'cwn-bench[tensorboard]')") from None
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        """Add one metrics.jsonl record (its ``kind`` and global ``step``; one without a
        step has no place on TensorBoard's axis and is left out)."""
        if self.writer is None or not isinstance(record.get("step"), int):
            return
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, global_step=record["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
