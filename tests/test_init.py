"""Init schemes of Table 2 (model.init): each one's empirical std and bounds, for plain
weights and proxies v, through build() and convert()."""

import math

import pytest
import torch
from torch import nn

from cwn_bench.models import build
from cwn_bench.nn import CWNLinear, initialize


def _expected(scheme, fan_in, fan_out):
    """(std, bound or None, bias std) of each scheme, from its definition."""
    if scheme == "lecun":
        bound = 1 / math.sqrt(fan_in)
        return bound / math.sqrt(3), bound, bound / math.sqrt(3)
    if scheme == "xavier":
        bound = math.sqrt(6 / (fan_in + fan_out))
        return bound / math.sqrt(3), bound, 0.0
    return math.sqrt(2 / fan_in), None, 0.0


@pytest.mark.parametrize("scheme", ["lecun", "xavier", "he"])
@pytest.mark.parametrize("layer, fans", [(nn.Linear(400, 300), (400, 300)), (nn.Conv2d(32, 64, 3), (288, 576)),
                                        (CWNLinear(400, 300), (400, 300))])
def test_each_scheme_std_and_bounds(scheme, layer, fans):
    torch.manual_seed(0)
    initialize(nn.Sequential(layer), scheme)
    weight = layer.v if isinstance(layer, CWNLinear) else layer.weight
    std, bound, bias_std = _expected(scheme, *fans)
    assert abs(weight.std().item() / std - 1) < 0.02
    assert abs(weight.mean().item()) < 0.05 * std
    if bound is None:  # normal: tails reach past 3 std
        assert weight.abs().max() > 3 * std
    else:
        assert weight.abs().max() <= bound and weight.abs().max() > 0.99 * bound
    if bias_std:
        assert layer.bias.abs().max() <= bound and abs(layer.bias.std().item() / bias_std - 1) < 0.25
    else:
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_build_applies_the_scheme_before_the_method():
    torch.manual_seed(0)
    model = build("mlp", 10, "cwn", in_shape=(1, 32, 32), hidden=[256], init="he")
    assert abs(model.fc1.v.std().item() / math.sqrt(2 / 1024) - 1) < 0.02
    assert torch.equal(model.fc1.bias, torch.zeros(256))
    torch.manual_seed(0)
    default = build("mlp", 10, in_shape=(1, 32, 32), hidden=[256])  # Torch7's default = lecun
    assert default.fc1.weight.abs().max() <= 1 / 32 and default.fc1.bias.abs().max() > 0
    with pytest.raises(ValueError, match="unknown init 'orthogonal'"):
        build("mlp", 10, in_shape=(1, 4, 4), init="orthogonal")
