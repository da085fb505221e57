"""Weight init schemes of the paper's Table 2, for plain weights or proxies ``v``.

``initialize(model, scheme)`` re-draws the weight of every ``nn.Conv2d`` / ``nn.Linear``
(the proxy ``v`` of a re-parameterised one) and its bias; ``fan_in`` = ``in/groups * kh * kw``,
``fan_out`` = ``out * kh * kw`` (PyTorch's convention):

- ``default``: leaves the model's own init (each model's is the authors', see models/);
- ``lecun``: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Torch7's ``nn.Linear`` /
  ``SpatialConvolution`` ``reset()``: the paper's "random init" [19];
- ``xavier``: weight U(+-sqrt(6 / (fan_in + fan_out))) (Glorot & Bengio), bias 0;
- ``he``: weight N(0, sqrt(2 / fan_in)) (He et al.), bias 0.

The authors' repository has no code for xavier/he; zero biases follow their conv inits
(``MSRinit``: ``bias:zero()``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.init import _calculate_fan_in_and_fan_out

INITS = ("default", "lecun", "xavier", "he")


@torch.no_grad()
def initialize(model: nn.Module, scheme: str, generator: torch.Generator | None = None) -> nn.Module:
    """Apply ``scheme`` (one of :data:`INITS`) to every conv/linear of ``model`` in place;
    returns ``model``."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; expected one of {', '.join(INITS)}")
    if scheme == "default":
        return model
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        weight = module.v if "v" in module._parameters else module.weight
        fan_in, fan_out = _calculate_fan_in_and_fan_out(weight)
        if scheme == "lecun":
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=generator)
        elif scheme == "xavier":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
        else:
            weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
        if module.bias is not None:
            if scheme == "lecun":
                module.bias.uniform_(-bound, bound, generator=generator)
            else:
                module.bias.zero_()
    return model
