"""Epoch accumulators and ``metrics.jsonl``.

``metrics.jsonl`` holds one JSON object per line, written by rank 0 only: ``"epoch"``
records (one per finished epoch) and ``"step"`` records (every ``train.log_every``
steps).  On resume the file is cut back to what the checkpoint covers, so an epoch
record is never duplicated or lost.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from cwn_bench import atomic
from cwn_bench.errors import UserError
from cwn_bench.train.distributed import DistEnv, all_reduce_

METRICS = "metrics.jsonl"


class EpochMeter:
    """Running sums of one training epoch, kept per rank on the device (no sync per step).

    ``sums`` = [sum of micro-batch mean losses, correct top-1, images seen] in float64;
    ``bad`` = the first step of the epoch (counted from 1) whose loss was non-finite, 0 if
    none, an int64 device scalar (as ``count``, the steps done, on the device).  In a
    checkpoint the sums are reduced over ranks and stored by rank 0; on resume rank 0
    starts from the totals and the other ranks from zero, so the epoch's final reduction
    equals the uninterrupted one.  ``accum``: micro-batches per step.
    """

    def __init__(self, device: torch.device, accum: int = 1) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.bad = torch.zeros((), dtype=torch.int64, device=device)
        self._steps = 0
        self.accum = accum
        self.steps = 0  # on the host; ``count`` follows it on the device (:attr:`steps`' setter)
        self.train_s = 0.0  # wall time of the training steps, data wait included (rank 0)
        self.data_s = 0.0  # time spent waiting for the loader

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int, step_s: float, data_s: float) -> None:
        """One step: ``loss`` = the sum of its micro-batches' mean losses, ``correct`` top-1
        hits (device scalars), ``n`` images. Device ops only: no host tensor, no sync."""
        self.sums[:2] += torch.stack((loss.detach().double(), correct.double()))
        self.sums[2] += n
        self.steps += 1
        self.bad.copy_(torch.where(~torch.isfinite(loss) & (self.bad == 0), self.count, self.bad))
        self.train_s += step_s
        self.data_s += data_s

    @property
    def steps(self) -> int:
        """Steps done in this epoch."""
        return self._steps

    @steps.setter
    def steps(self, value: int) -> None:  # also set on resume (and a resize's conversion)
        self._steps = value
        self.count.fill_(value)  # a fill kernel with the value as argument: no host tensor, no sync

    def bad_global(self, first_step: int) -> torch.Tensor:
        """``bad`` as a global step (``first_step`` = global steps before this epoch), 0 if none."""
        return torch.where(self.bad > 0, self.bad + first_step, self.bad)

    def state_dict(self, env: DistEnv) -> dict[str, Any]:
        """Collective: every rank must call it."""
        return {"sums": all_reduce_(self.sums.clone(), env).cpu(), "steps": self.steps,
                "train_s": self.train_s, "data_s": self.data_s}

    def load_state_dict(self, state: dict[str, Any], env: DistEnv) -> None:
        if env.is_main:
            self.sums.copy_(state["sums"])
        self.steps = state["steps"]
        self.train_s, self.data_s = state["train_s"], state["data_s"]

    def summary(self, env: DistEnv) -> dict[str, float]:
        """Collective.  Train loss is the mean over micro-batches (of equal size: over
        samples) and ranks, errors in percent, speeds in images per second over all ranks."""
        loss_sum, correct, seen = all_reduce_(self.sums.clone(), env).tolist()
        train_s, data_s = max(self.train_s, 1e-9), self.data_s
        return {
            "train_loss": loss_sum / max(self.steps * self.accum * env.world_size, 1),
            "train_top1_err": 100.0 * (1.0 - correct / max(seen, 1.0)),
            "img_per_s": seen / train_s,
            "img_per_s_per_gpu": seen / train_s / env.world_size,
            "img_per_s_compute": seen / max(train_s - data_s, 1e-9),  # loader wait left out
            "data_time_s": data_s,
            "data_wait_share": data_s / train_s,
            "train_s": train_s,
        }


class MetricsLog:
    """Appends JSON lines to ``path`` (rank 0 only; other ranks write nothing)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def last(self, kind: str) -> dict[str, Any] | None:
        """The last record of ``kind`` (rank 0; None elsewhere or when there is none)."""
        if not self.enabled or not self.path.exists():
            return None
        found = None
        for line in self.path.read_text().splitlines():
            rec = json.loads(line)
            found = rec if rec.get("kind") == kind else found
        return found

    def truncate(self, epochs_done: int, global_step: int) -> None:
        """Keep only the records a checkpoint at (``epochs_done``, ``global_step``) covers;
        drop a half-written last line (a kill mid-write).  Rewrites the file atomically."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        kept = []
        for i, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines):
                    print(f"{self.path}: dropping a half-written last line", file=sys.stderr)
                    break
                raise UserError(f"{self.path}: line {i} is not valid JSON; expected one record per line") from None
            if (rec.get("kind") == "epoch" and rec["epoch"] <= epochs_done) or \
               (rec.get("kind") != "epoch" and rec.get("step", 0) <= global_step):
                kept.append(line)
        with atomic.replace(self.path) as f:
            f.write("".join(line + "\n" for line in kept))
