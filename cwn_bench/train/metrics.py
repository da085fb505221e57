"""Epoch accumulators: what an epoch record of ``metrics.jsonl`` sums (the file itself
is :mod:`cwn_bench.rundir.metrics`)."""

from __future__ import annotations

from typing import Any

import torch

from cwn_bench.train.distributed import DistEnv, all_reduce_


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
