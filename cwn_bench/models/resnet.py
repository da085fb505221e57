"""ResNet-56 for CIFAR (He et al. 2016, Sec. 4.2): 3 stages x 9 basic blocks, 16/32/64
channels, identity shortcuts with zero-padded channels (option A), 0.85M parameters."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from cwn_bench.models.blocks import ConvBNReLU


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. Down-sampling blocks subsample the
    shortcut by 2 and pad the new channels with zeros (no parameters)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
        return (self.bn2(self.conv2(self.conv1(x))) + shortcut).relu()


class ResNetCIFAR(nn.Module):
    """``[B, C, 32, 32]`` -> logits; depth = 6 * blocks_per_stage + 2."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...] = (3, 32, 32), blocks_per_stage: int = 9) -> None:
        super().__init__()
        self.stem = ConvBNReLU(in_shape[0], 16, 3, 1, 1, bias=False)
        stages, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(blocks_per_stage)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():  # the authors' old_r_BN.lua: convs N(0, sqrt(2 / (k*k*out))), fc bias 0
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def resnet56(num_classes: int, in_shape: tuple[int, ...] = (3, 32, 32)) -> nn.Module:
    """ResNet-56: 9 blocks per stage."""
    return ResNetCIFAR(num_classes, in_shape, blocks_per_stage=9)
