"""One training epoch and one evaluation pass (after torchvision's reference train.py).

The loop knows nothing of checkpoints or signals: after every step it hands the step to
a :class:`Control` (implemented by :mod:`cwn_bench.train.run`), which reads the device
only at its sync points and decides there whether to checkpoint, stop or fail.  A step
itself never waits for the device: the loss and hits stay device tensors.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cwn_bench.train.distributed import DistEnv, all_reduce_
from cwn_bench.train.metrics import EpochMeter
from cwn_bench.train.optim import set_lr

AUX_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers (Szegedy et al., 2015)


@dataclass
class Engine:
    """What a step needs. ``model`` is the bare module (its state_dict is checkpointed);
    ``net`` is what runs forward: ``model`` wrapped in DDP and/or torch.compile."""

    model: nn.Module
    net: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    ddp: nn.Module | None = None  # the DistributedDataParallel wrapper, for no_sync while accumulating
    autocast_cache: bool = True  # False inside a CUDA graph capture (torch's rule for autocast in graphs)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=self.autocast_cache)

    def no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP's ``no_sync`` for every micro-batch but the ``last`` of a step."""
        return contextlib.nullcontext() if last or self.ddp is None else self.ddp.no_sync()

    def prepare(self, images: Tensor) -> Tensor:
        if self.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images


class Control(Protocol):
    def lr(self, epoch: int, step: int) -> float:
        """Learning rate for step ``step`` (0-based) of epoch ``epoch`` (0-based)."""

    def after_step(self, epoch: int, meter: EpochMeter, loss: Tensor, lr: float) -> bool:
        """Log / checkpoint / fail as due (syncing only at sync points); False stops the epoch."""


def _loss(out: Any, labels: Tensor, criterion: nn.Module) -> tuple[Tensor, Tensor]:
    """(loss, main logits); torchvision GoogLeNet's train-mode output adds its aux heads."""
    if isinstance(out, tuple):
        logits, *aux = out
        return criterion(logits, labels) + AUX_WEIGHT * sum(criterion(a, labels) for a in aux), logits
    return criterion(out, labels), out


Batch = tuple[Tensor, Tensor]  # images [B, C, H, W] and labels [B], on the device
StepFn = Callable[[list[Batch]], tuple[Tensor, Tensor]]


def train_step(eng: Engine, micro: list[Batch]) -> tuple[Tensor, Tensor]:
    """One optimizer step over the micro-batches ``micro`` (gradients accumulated, each
    micro-batch's mean loss weighted 1/len(micro); DDP reduces on the last one only).
    Returns (sum of the micro-batch mean losses, top-1 hits), device scalars."""
    total, hits = None, None
    k = len(micro)
    for i, (images, labels) in enumerate(micro):
        with eng.no_sync(i == k - 1):
            with eng.autocast():
                loss, logits = _loss(eng.net(eng.prepare(images)), labels, eng.criterion)
            if i == 0:
                eng.optimizer.zero_grad(set_to_none=True)
            eng.scaler.scale(loss / k if k > 1 else loss).backward()  # scale is the identity unless fp16
        step_loss, step_hits = loss.detach().float(), (logits.argmax(1) == labels).sum()
        total, hits = (step_loss, step_hits) if total is None else (total + step_loss, hits + step_hits)
    eng.scaler.step(eng.optimizer)
    eng.scaler.update()
    return total, hits


def train_one_epoch(eng: Engine, batches: Any, epoch: int, steps: int, meter: EpochMeter, control: Control,
                    step_fn: StepFn | None = None) -> bool:
    """Train from step ``meter.steps`` to ``steps`` of ``epoch`` (``meter.accum`` batches of
    ``batches`` per step). False if stopped early.  ``step_fn``: :func:`train_step` on
    ``eng`` by default (a CUDA-graphed one with ``train.cuda_graph``).

    Step time runs from asking the loader for a batch to the end of the host's work on
    the step; the device catches up at the sync points, whose wait the control adds to
    ``meter.train_s``, so the epoch's sum is its training time; ``data_s`` is the share
    spent waiting for the loader."""
    eng.net.train()
    step_fn = step_fn or (lambda micro: train_step(eng, micro))
    it = iter(batches)
    while meter.steps < steps:
        t0 = time.perf_counter()
        micro = list(itertools.islice(it, meter.accum))
        if len(micro) < meter.accum:
            break
        t1 = time.perf_counter()
        lr = control.lr(epoch, meter.steps)
        set_lr(eng.optimizer, lr)
        loss, correct = step_fn(micro)
        meter.add(loss, correct, sum(labels.shape[0] for _, labels in micro), time.perf_counter() - t0, t1 - t0)
        if not control.after_step(epoch, meter, loss, lr):
            return False
    return True


@torch.no_grad()
def evaluate(eng: Engine, batches: Any, env: DistEnv) -> dict[str, float]:
    """Val loss (plain cross-entropy, no label smoothing) and top-1/top-5 error in percent
    over every rank's share of the val set."""
    eng.net.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=eng.device)  # loss, top-1 hits, top-5 hits, n
    seen = 0  # n on the host: a tensor built from it per batch would be a blocking copy (a sync)
    for images, labels in batches:
        with eng.autocast():
            logits = eng.net(eng.prepare(images))
        logits = logits.float()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices == labels[:, None]  # [B, k]
        sums[:3] += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(),
                                 hits[:, 0].sum().double(), hits.any(1).sum().double()])
        seen += labels.shape[0]
    sums[3] = seen  # a fill kernel with the count as its argument
    loss, top1, top5, n = all_reduce_(sums, env).tolist()
    n = max(n, 1.0)
    return {"val_loss": loss / n, "val_top1_err": 100.0 * (1 - top1 / n), "val_top5_err": 100.0 * (1 - top5 / n)}
