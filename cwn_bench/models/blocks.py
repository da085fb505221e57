"""Building blocks shared by the conv nets."""

from __future__ import annotations

from torch import Tensor, nn


class ConvBNReLU(nn.Module):
    """``conv`` (k x k, with bias as in the Torch7 originals) -> ``bn`` -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias)
        self.bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)).relu()
