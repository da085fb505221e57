"""Building blocks shared by the conv nets."""

from __future__ import annotations

from torch import Tensor, nn


class ConvBNReLU(nn.Module):
    """``conv`` (k x k, with bias as in the Torch7 originals) -> ``bn`` -> ReLU; with
    ``relu_before_bn`` conv -> ReLU -> ``bn`` -> ReLU (the authors' BN-GoogLeNet inceptions)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, eps: float = 1e-5, relu_before_bn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.relu_before_bn = relu_before_bn

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return self.bn(x.relu() if self.relu_before_bn else x).relu()
