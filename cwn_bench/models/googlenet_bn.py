"""The paper's ImageNet network: GoogLeNet with batch normalisation after every linear map.

Layout of ``models/googlenetbn.lua`` in soumith/imagenet-multiGPU.torch (the BN-Inception
of Ioffe & Szegedy 2015): a 7x7/2 stem, inception 3a/3b/3c, a 2x2/2 conv reduction to
576 channels, 4a-4d, 4e, a 2x2/2 reduction to 1024, 5a/5b, global average pool, linear.
Each inception has a 1x1 branch, a 1x1-3x3 branch, a double-3x3 branch (1x1-3x3-3x3) and a
3x3/1 pool branch (avg or max, optionally projected by 1x1). BN eps 1e-3, convs keep their
bias as in Torch7, no auxiliary classifier, Torch7's default init (PyTorch's default draws
the same U(+-1/sqrt(fan_in)) for weights and biases). Unit order: the authors' Lua
(``googlenetbn.lua`` and their ``googlenetbn_WCBN_NS.lua``, which produced Table 4) applies
ReLU before BN and again after in the 66 inception convs (conv -> ReLU -> BN -> ReLU) and
conv -> BN -> ReLU in the 3 stem convs and 2 reductions; that is the default
(``relu_before_bn=True``). ``relu_before_bn=False`` builds the paper text's "BN after the
linear mappings" everywhere. At 224 px the maps are 56, 28, 14, 7.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cwn_bench.models.blocks import ConvBNReLU

EPS = 1e-3

# (1x1, (3x3 reduce, 3x3), (double reduce, double 3x3), (pool, pool projection)); 0 = branch absent
INCEPTIONS: dict[str, tuple] = {
    "3a": (64, (64, 64), (64, 96), ("avg", 32)),      # 192 -> 256
    "3b": (64, (64, 96), (64, 96), ("avg", 64)),      # 256 -> 320
    "3c": (0, (128, 160), (64, 96), ("max", 0)),      # 320 -> 576 (pool passes 320 through)
    "4a": (224, (64, 96), (96, 128), ("avg", 128)),   # 576 -> 576
    "4b": (192, (96, 128), (96, 128), ("avg", 128)),
    "4c": (160, (128, 160), (128, 160), ("avg", 96)),
    "4d": (96, (128, 192), (160, 192), ("avg", 96)),
    "4e": (0, (128, 192), (192, 256), ("max", 0)),    # 576 -> 1024
    "5a": (352, (192, 320), (160, 224), ("avg", 128)),  # 1024 -> 1024
    "5b": (352, (192, 320), (192, 224), ("max", 128)),
}


def inception_out(cin: int, spec: tuple) -> int:
    """Output channels of an inception with ``cin`` inputs (a pool without projection passes ``cin``)."""
    n1, (_, n3), (_, n33), (_, proj) = spec
    return n1 + n3 + n33 + (proj or cin)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels; spatial size unchanged (all stride 1)."""

    def __init__(self, cin: int, spec: tuple, relu_before_bn: bool = True) -> None:
        super().__init__()
        n1, (r3, n3), (r33, n33), (pool, proj) = spec

        def unit(a: int, b: int, k: int) -> ConvBNReLU:
            return ConvBNReLU(a, b, k, padding=k // 2, eps=EPS, relu_before_bn=relu_before_bn)

        self.b1 = unit(cin, n1, 1) if n1 else None
        self.b3 = nn.Sequential(unit(cin, r3, 1), unit(r3, n3, 3))
        self.b33 = nn.Sequential(unit(cin, r33, 1), unit(r33, n33, 3), unit(n33, n33, 3))
        pooling = nn.MaxPool2d(3, 1, 1) if pool == "max" else nn.AvgPool2d(3, 1, 1)
        self.pool = nn.Sequential(pooling, unit(cin, proj, 1)) if proj else pooling

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.b3(x), self.b33(x), self.pool(x)]
        return torch.cat(([self.b1(x)] if self.b1 is not None else []) + branches, dim=1)


class GoogLeNetBN(nn.Module):
    """``[B, C, H, W]`` -> logits ``[B, num_classes]``; 224x224 is the paper's input
    (any size >= 32 works thanks to the global pool)."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...] = (3, 224, 224),
                 relu_before_bn: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNReLU(in_shape[0], 64, 7, 2, 3, eps=EPS), nn.MaxPool2d(3, 2, ceil_mode=True),
            ConvBNReLU(64, 64, 1, eps=EPS), ConvBNReLU(64, 192, 3, 1, 1, eps=EPS), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.body = nn.Sequential()
        cin = 192
        for name, spec in INCEPTIONS.items():
            self.body.add_module(f"inception{name}", Inception(cin, spec, relu_before_bn))
            cin = inception_out(cin, spec)
            if name in ("3c", "4e"):  # stride-2 reduction by a 2x2/2 conv: 28 -> 14 and 14 -> 7 at 224 px
                self.body.add_module(f"reduce{name}", ConvBNReLU(cin, cin, 2, 2, eps=EPS))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.body(self.stem(x))).flatten(1))
