"""Optimizer and learning-rate schedule.

The schedule is a pure function of the global step (:func:`lr_at`), set on the
optimizer before every step, so resuming needs only the step count.  Time ``t`` is in
(fractional) epochs: ``t = step / steps_per_epoch``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cwn_bench.config import OptimConfig, SchedConfig


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """One group, or two when ``exempt_scales_biases``: every parameter of one dimension
    (CWN/WN scales ``g``, biases, BN weight and bias) gets no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not cfg.exempt_scales_biases:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def lr_at(step: int, steps_per_epoch: int, epochs: int, lr: float, cfg: SchedConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based, global).

    - ``constant``: ``lr``.
    - ``exp`` (the paper's ImageNet schedule): ``lr * (lr_end / lr) ** (t / epochs)``,
      from ``lr`` at the start to ``lr_end`` at the end of the run, updated every step;
      0.1 -> 1e-4 over 90 epochs is ``0.1 * exp(-ln(1000) * t / 90)``.
    - ``step``: ``lr * gamma ** floor(t / step_epochs)``, or ``gamma`` to the number of
      ``milestones`` (epochs) passed when given (He et al.'s CIFAR ResNets: 80, 120).
    - ``cosine``: ``lr_end + (lr - lr_end) * (1 + cos(pi * u)) / 2``, ``u`` going 0 -> 1
      after the warm-up.
    A warm-up of ``warmup_epochs`` multiplies by ``(step + 1) / warmup_steps`` first.
    """
    t = step / steps_per_epoch
    warm = cfg.warmup_epochs
    if cfg.name == "exp":
        value = lr * (cfg.lr_end / lr) ** (t / epochs)
    elif cfg.name == "step":
        drops = sum(t >= m for m in cfg.milestones) if cfg.milestones else math.floor(t / cfg.step_epochs)
        value = lr * cfg.gamma ** drops
    elif cfg.name == "cosine":
        u = min(1.0, max(0.0, (t - warm) / max(epochs - warm, 1e-12)))
        value = cfg.lr_end + (lr - cfg.lr_end) * 0.5 * (1.0 + math.cos(math.pi * u))
    else:
        value = lr
    warmup_steps = warm * steps_per_epoch
    if step < warmup_steps:
        value *= (step + 1) / warmup_steps
    return value


# how an optimizer runs, not what it has learnt: left as built when a checkpoint is loaded
RUN_TIME_GROUP_KEYS = ("lr", "fused", "foreach", "capturable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` keeping ``optimizer``'s own :data:`RUN_TIME_GROUP_KEYS`.
    A checkpoint of a ``train.cuda_graph`` run holds a tensor lr, fused SGD or capturable Adam
    (``graph_step.capturable``), which a run resumed without graphs must not inherit: a tensor
    lr would be read on the host at every step, a capturable Adam would refuse its CPU step
    counters. The lr is set before every step anyway (:func:`set_lr`)."""
    own = [{k: group[k] for k in RUN_TIME_GROUP_KEYS if k in group} for group in optimizer.param_groups]
    optimizer.load_state_dict({**state, "param_groups": [{**saved, **mine}
                                                         for saved, mine in zip(state["param_groups"], own)]})


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    """A float learning rate is replaced; a tensor one (CUDA graphs) is filled in place."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value
