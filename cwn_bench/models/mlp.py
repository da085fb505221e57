"""The paper's fully connected networks (Tables 1-2, Figures 2-4): flatten, ``hidden`` ReLU
layers (with ``batchnorm``, BN before each ReLU: Figure 4a), linear."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cwn_bench.nn import CWNLinear, WNLinear


class MLP(nn.Module):
    """``[B, *in_shape]`` -> flatten (``prod(in_shape)`` features) -> ``fc1..fcN`` (widths
    ``hidden``), each followed by ``bn1..bnN`` when ``batchnorm`` and ReLU -> ``classifier``
    -> logits ``[B, num_classes]``. Init: Torch7's default (PyTorch's), U(+-1/sqrt(fan_in))
    for weights and biases, the authors' "random init".

    The paper's Yale-B net is ``hidden=(128, 64, 48, 48)`` on 32x32 grey inputs (1024-d); the
    SVHN net (the authors' ``models/MLP/model_WN.lua``) is ``hidden=(128,) * 5``, 6 linear maps."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...], hidden: Sequence[int] = (128, 64, 48, 48),
                 batchnorm: bool = False) -> None:
        super().__init__()
        widths = [math.prod(in_shape), *hidden]
        self.flatten = nn.Flatten()
        for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]), start=1):
            self.add_module(f"fc{i}", nn.Linear(fan_in, fan_out))
            if batchnorm:
                self.add_module(f"bn{i}", nn.BatchNorm1d(fan_out))
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.depth, self.batchnorm = len(hidden), batchnorm

    def forward(self, x: Tensor) -> Tensor:
        x = self.flatten(x)
        for i in range(1, self.depth + 1):
            x = getattr(self, f"fc{i}")(x)
            x = (getattr(self, f"bn{i}")(x) if self.batchnorm else x).relu()
        return self.classifier(x)


@torch.no_grad()
def authors_reparam_init(model: MLP, init: str) -> None:
    """The authors' WN/CWN MLP layers (``Linear_Weight_*BN_Row.lua``) have no bias of their own:
    it is the following ``Affine_module``'s, initialised to 0, whatever the weight init."""
    for layer in model.modules():
        if isinstance(layer, (WNLinear, CWNLinear)) and layer.bias is not None:
            layer.bias.zero_()
