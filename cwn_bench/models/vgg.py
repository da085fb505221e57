"""The paper's CIFAR VGG-A (Sec. 4.3), as the authors' ``models/vggA_plain.lua``: VGG's
configuration A (8 conv3x3 + ReLU, 5 max-pools) followed by two linear maps,
512 -> 512 -> BN -> ReLU -> classes (9,489,290 parameters at 10 classes)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cwn_bench.nn import CWNConv2d, WNConv2d, initialize

CONFIG_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGGA(nn.Module):
    """``[B, C, H, W]`` (H, W multiples of 32; 32 on CIFAR) -> ``features`` -> flatten
    (512 * H/32 * W/32) -> ``classifier``: fc1 (512) -> BN -> ReLU -> fc2 -> logits.

    Init (the authors' ``MSRinit``): conv weights N(0, sqrt(2 / (9 * out_channels))), conv
    biases 0; the linears keep Torch7's default U(+-1/sqrt(fan_in)) (PyTorch's default)."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...] = (3, 32, 32), width: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_shape[0]
        for item in CONFIG_A:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                conv = nn.Conv2d(cin, item, 3, padding=1)
                nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (9 * item)))
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.ReLU(inplace=True)]
                cin = item
        self.features = nn.Sequential(*layers)
        flat = cin * (in_shape[1] // 32) * (in_shape[2] // 32)
        self.classifier = nn.Sequential()
        self.classifier.add_module("fc1", nn.Linear(flat, width))
        self.classifier.add_module("bn1", nn.BatchNorm1d(width))
        self.classifier.add_module("relu1", nn.ReLU(inplace=True))
        self.classifier.add_module("fc2", nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@torch.no_grad()
def authors_reparam_init(model: VGGA, init: str) -> None:
    """The authors' WN/CWN VGG-A (``vggA_WN.lua``, ``vggA_CWN.lua``): their ``MSRinit`` finds
    plain ``SpatialConvolution`` modules only, so the normalised convs keep Torch7's reset,
    ``v`` ~ U(+-1/sqrt(fan_in)), and carry no bias (the ``Spatial_Scaling`` after each adds one,
    starting at 0). Applied for ``init: default`` only; other schemes are the user's choice."""
    if init != "default":
        return
    for conv in model.features:
        if isinstance(conv, (WNConv2d, CWNConv2d)):
            initialize(conv, "lecun")
            conv.bias.zero_()
