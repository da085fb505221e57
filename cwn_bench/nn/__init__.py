"""The method: centered weight normalisation as a function, layers and model surgery."""

from cwn_bench.nn import functional
from cwn_bench.nn.convert import METHODS, convert, fold
from cwn_bench.nn.functional import centered_weight_norm, weight_norm
from cwn_bench.nn.layers import CWNConv2d, CWNLinear, WNConv2d, WNLinear

__all__ = [
    "METHODS", "CWNConv2d", "CWNLinear", "WNConv2d", "WNLinear",
    "centered_weight_norm", "convert", "fold", "functional", "weight_norm",
]
