"""The method: centered weight normalisation as a function, layers and model surgery,
and the paper's baselines (WN, NNN, WS)."""

from cwn_bench.nn import functional
from cwn_bench.nn.convert import METHODS, convert, fold
from cwn_bench.nn.functional import centered_weight_norm, pca_whitening, weight_norm, weight_standardize
from cwn_bench.nn.init import INITS, initialize
from cwn_bench.nn.layers import SCALES, CWNConv2d, CWNLinear, WNConv2d, WNLinear, WSConv2d, WSLinear
from cwn_bench.nn.nnn import NNNLinear

__all__ = [
    "INITS", "METHODS", "SCALES", "CWNConv2d", "CWNLinear", "NNNLinear", "WNConv2d", "WNLinear", "WSConv2d",
    "WSLinear", "centered_weight_norm", "convert", "fold", "functional", "initialize", "pca_whitening",
    "weight_norm", "weight_standardize",
]
