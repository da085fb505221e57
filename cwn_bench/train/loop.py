"""One training epoch and one evaluation pass (after torchvision's reference train.py).

The loop knows nothing of checkpoints or signals: after every step it hands the loss to
a :class:`Control` (implemented by :mod:`cwn_bench.train.run`), which synchronises the
ranks once and decides whether to checkpoint, stop or fail.
"""

from __future__ import annotations

import contextlib
import time
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

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare(self, images: Tensor) -> Tensor:
        if self.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images


class Control(Protocol):
    def lr(self, epoch: int, step: int) -> float:
        """Learning rate for step ``step`` (0-based) of epoch ``epoch`` (0-based)."""

    def sync(self, loss: Tensor) -> Any:
        """The step's one synchronisation point (all ranks): returns agreed flags."""

    def after_step(self, flags: Any, epoch: int, meter: EpochMeter, loss: Tensor, lr: float) -> bool:
        """Checkpoint / fail as the flags say; False stops the epoch (preemption)."""


def _loss(out: Any, labels: Tensor, criterion: nn.Module) -> tuple[Tensor, Tensor]:
    """(loss, main logits); torchvision GoogLeNet's train-mode output adds its aux heads."""
    if isinstance(out, tuple):
        logits, *aux = out
        return criterion(logits, labels) + AUX_WEIGHT * sum(criterion(a, labels) for a in aux), logits
    return criterion(out, labels), out


def train_step(eng: Engine, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Forward, backward, optimizer step. Returns (loss, number of top-1 hits), on device."""
    with eng.autocast():
        loss, logits = _loss(eng.net(eng.prepare(images)), labels, eng.criterion)
    eng.optimizer.zero_grad(set_to_none=True)
    eng.scaler.scale(loss).backward()  # scale is the identity unless fp16
    eng.scaler.step(eng.optimizer)
    eng.scaler.update()
    return loss.detach().float(), (logits.argmax(1) == labels).sum()


def train_one_epoch(eng: Engine, batches: Any, epoch: int, steps: int, meter: EpochMeter, control: Control) -> bool:
    """Train from step ``meter.steps`` to ``steps`` of ``epoch``. False if stopped early.

    Step time runs from asking the loader for a batch to the step's sync point, so
    ``data_s`` (waiting for the loader) and the compute time add up to it."""
    eng.net.train()
    it = iter(batches)
    while meter.steps < steps:
        t0 = time.perf_counter()
        try:
            images, labels = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        lr = control.lr(epoch, meter.steps)
        set_lr(eng.optimizer, lr)
        loss, correct = train_step(eng, images, labels)
        flags = control.sync(loss)
        meter.add(loss, correct, labels.shape[0], time.perf_counter() - t0, t1 - t0)
        if not control.after_step(flags, epoch, meter, loss, lr):
            return False
    return True


@torch.no_grad()
def evaluate(eng: Engine, batches: Any, env: DistEnv) -> dict[str, float]:
    """Val loss (plain cross-entropy, no label smoothing) and top-1/top-5 error in percent
    over every rank's share of the val set."""
    eng.net.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=eng.device)  # loss, top-1 hits, top-5 hits, n
    for images, labels in batches:
        with eng.autocast():
            logits = eng.net(eng.prepare(images))
        logits = logits.float()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices == labels[:, None]  # [B, k]
        sums += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(),
                             hits[:, 0].sum().double(), hits.any(1).sum().double(),
                             torch.tensor(float(labels.shape[0]), dtype=torch.float64, device=eng.device)])
    loss, top1, top5, n = all_reduce_(sums, env).tolist()
    n = max(n, 1.0)
    return {"val_loss": loss / n, "val_top1_err": 100.0 * (1 - top1 / n), "val_top5_err": 100.0 * (1 - top5 / n)}
