"""The paper's fully connected networks (Tables 1-2): flatten, ``hidden`` ReLU layers, linear."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """``[B, *in_shape]`` -> flatten (``prod(in_shape)`` features) -> ``fc1..fcN`` with ReLU
    (widths ``hidden``) -> ``classifier`` -> logits ``[B, num_classes]``.

    The paper's Yale-B net is ``hidden=(128, 64, 48, 48)`` on 32x32 grey inputs (1024-d)."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...], hidden: Sequence[int] = (128, 64, 48, 48)) -> None:
        super().__init__()
        widths = [math.prod(in_shape), *hidden]
        self.flatten = nn.Flatten()
        for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]), start=1):
            self.add_module(f"fc{i}", nn.Linear(fan_in, fan_out))
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.depth = len(hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = self.flatten(x)
        for i in range(1, self.depth + 1):
            x = getattr(self, f"fc{i}")(x).relu()
        return self.classifier(x)
