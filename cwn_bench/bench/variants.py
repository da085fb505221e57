"""The layers the conv benchmark compares, built for one :class:`LayerShape`.

- ``plain``          ``nn.Conv2d`` / ``nn.Linear`` (cuDNN / cuBLAS): the baseline;
- ``cwn-reference``  CWN layer, autograd over the formula (centre, norm, divide, scale);
- ``cwn-explicit``   CWN layer, one ``autograd.Function`` with Algorithm 2's backward;
- ``cwn-triton``     CWN layer on the fused Triton kernels (GPU, or CPU under
                     ``TRITON_INTERPRET=1``, where it is slow by design);
- ``cwn-compiled``   ``torch.compile`` of the ``cwn-reference`` layer;
- ``wn``             ``torch.nn.utils.parametrizations.weight_norm`` of the plain layer;
- ``ws``             weight standardisation through the batch-norm trick (timm's
                     ``StdConv2d``): ``F.batch_norm`` over the weight seen as
                     ``[1, out, fan_in]`` in training mode.

Every layer has a bias, as the paper's Torch7 convs and ``googlenet_bn`` do.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cwn_bench.bench.options import VARIANTS
from cwn_bench.bench.shapes import LayerShape
from cwn_bench.nn import CWNConv2d, CWNLinear
from cwn_bench.nn.functional import DEFAULT_EPS

class Unavailable(Exception):
    """This variant cannot run here; the message says why (becomes a ``skipped`` row)."""


def _standardize(weight: Tensor) -> Tensor:
    """Each row of ``weight`` (``[out, ...]``) to zero mean and unit variance."""
    rows = weight.reshape(1, weight.shape[0], -1)
    return F.batch_norm(rows, None, None, training=True, momentum=0.0, eps=DEFAULT_EPS).reshape_as(weight)


class WSConv2d(nn.Conv2d):
    """``nn.Conv2d`` with a standardised weight (Qiao et al., 2019)."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, _standardize(self.weight), self.bias)


class WSLinear(nn.Linear):
    """``nn.Linear`` with a standardised weight."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, _standardize(self.weight), self.bias)


def _plain_args(shape: LayerShape) -> tuple[tuple, dict]:
    if shape.kind == "linear":
        return (shape.cin, shape.cout), {}
    return (shape.cin, shape.cout, (shape.kh, shape.kw)), {"stride": shape.stride, "padding": shape.padding}


def _cwn(shape: LayerShape, backend: str) -> nn.Module:
    args, kwargs = _plain_args(shape)
    return (CWNLinear if shape.kind == "linear" else CWNConv2d)(*args, backend=backend, **kwargs)


def _check_triton(device: torch.device) -> None:
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise Unavailable("cwn-triton needs a CUDA device, or TRITON_INTERPRET=1 set before start to run it on CPU")


def _compiled(shape: LayerShape) -> nn.Module:
    # A fresh dynamo cache per layer: every benchmarked config compiles its own graph
    # instead of piling up recompiles on one code object (past the recompile limit dynamo
    # would silently run eager). Inductor's on-disk cache keeps repeats cheap.
    torch._dynamo.reset()
    return torch.compile(_cwn(shape, "reference"))


def build_layer(variant: str, shape: LayerShape, device: torch.device) -> nn.Module:
    """A fresh layer of ``variant`` for ``shape`` on ``device`` (float32 parameters)."""
    args, kwargs = _plain_args(shape)
    plain_type = nn.Linear if shape.kind == "linear" else nn.Conv2d
    if variant == "plain":
        layer = plain_type(*args, **kwargs)
    elif variant in ("cwn-reference", "cwn-explicit"):
        layer = _cwn(shape, variant.removeprefix("cwn-"))
    elif variant == "cwn-triton":
        _check_triton(device)
        layer = _cwn(shape, "triton")
    elif variant == "cwn-compiled":
        layer = _compiled(shape)
    elif variant == "wn":
        layer = nn.utils.parametrizations.weight_norm(plain_type(*args, **kwargs))
    elif variant == "ws":
        layer = (WSLinear if shape.kind == "linear" else WSConv2d)(*args, **kwargs)
    else:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return layer.to(device)
