"""WN/CWN/WS layers: drop-in signatures, `.weight`, the eval cache, copies, formats, the fixed scale."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cwn_bench.nn import (
    CWNConv2d, CWNLinear, WNConv2d, WNLinear, WSConv2d, WSLinear, centered_weight_norm, weight_norm, weight_standardize)

CONV_KW = dict(stride=2, padding=1, dilation=1, groups=2, bias=True, padding_mode="reflect")


def _conv_reference(layer, x, normalize):
    w = normalize(layer.v, layer.g)
    return F.conv2d(F.pad(x, [1] * 4, mode="reflect"), w, layer.bias, layer.stride, 0, layer.dilation, layer.groups)


@pytest.mark.parametrize("cls,normalize", [(CWNConv2d, centered_weight_norm), (WNConv2d, weight_norm)])
def test_conv_signature_and_output(cls, normalize):
    torch.manual_seed(0)
    layer = cls(4, 6, 3, **CONV_KW)
    assert layer.v.shape == (6, 2, 3, 3) and layer.g.shape == (6,) and torch.equal(layer.g, torch.ones(6))
    assert "weight" not in dict(layer.named_parameters())
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(layer(x), _conv_reference(layer, x, normalize))


@pytest.mark.parametrize("cls", [CWNLinear, WNLinear])
def test_linear_output_equals_f_linear_with_weight(cls):
    layer = cls(7, 3, bias=False)
    x = torch.randn(5, 7)
    assert layer.bias is None
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight))


def test_gradients_reach_v_and_g():
    layer = CWNConv2d(3, 4, 3)
    layer(torch.randn(2, 3, 6, 6)).square().mean().backward()
    assert layer.v.grad is not None and layer.g.grad is not None
    assert layer.v.grad.flatten(1).sum(1).abs().max() < 1e-6  # zero-mean rows (Prop. 2)


def test_eval_cache_reused_and_invalidated():
    layer = CWNLinear(4, 3).eval()
    with torch.no_grad():
        first = layer.weight
        assert layer.weight is first  # computed once
        layer.g.mul_(2)  # an in-place update: new version
        second = layer.weight
    assert second is not first
    torch.testing.assert_close(second, 2 * first)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer.train()
    layer(torch.randn(2, 4)).sum().backward()
    opt.step()
    layer.eval()
    with torch.inference_mode():
        after_step = layer.weight
    torch.testing.assert_close(after_step, centered_weight_norm(layer.v.detach(), layer.g.detach()))
    other = CWNLinear(4, 3)
    layer.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(layer.weight, other.weight)
    with torch.no_grad():
        layer.to(torch.float64)
        assert layer.weight.dtype == torch.float64


def test_entering_eval_mode_drops_a_cache_that_version_counters_would_keep():
    layer = CWNLinear(4, 3).eval()
    with torch.no_grad():
        stale = layer.weight
        layer.train()
        layer.g.data.mul_(2)  # no version bump: as a replayed CUDA graph's optimizer updates the weights
        layer.eval()
        torch.testing.assert_close(layer.weight, 2 * stale)


def test_grad_mode_always_recomputes():
    layer = CWNLinear(4, 3).eval()
    assert layer.weight is not layer.weight
    assert layer.weight.requires_grad


def test_deepcopy_is_independent_ema_style():
    layer = CWNConv2d(3, 4, 3).eval()
    with torch.no_grad():
        layer.weight  # fill the cache
    ema = copy.deepcopy(layer)
    with torch.no_grad():
        ema.v.mul_(0.5).add_(1.0)
        assert not torch.equal(ema.weight, layer.weight)
        torch.testing.assert_close(ema.weight, centered_weight_norm(ema.v, ema.g))


def test_state_dict_round_trip_keys():
    a, b = CWNConv2d(3, 4, 3), CWNConv2d(3, 4, 3)
    assert set(a.state_dict()) == {"v", "g", "bias"}
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(a(x), b(x))


def test_channels_last_matches_nchw():
    layer = CWNConv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 6, 6)
    ref = layer(x)
    layer_cl = copy.deepcopy(layer).to(memory_format=torch.channels_last)
    out = layer_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_layer_output_dtype():
    layer = CWNConv2d(4, 4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.weight.dtype == torch.bfloat16
        assert layer(torch.randn(1, 4, 5, 5)).dtype == torch.bfloat16
    assert layer.v.dtype == torch.float32


def test_unknown_backend_rejected_at_construction():
    with pytest.raises(ValueError, match="unknown CWN backend 'fast'"):
        CWNLinear(2, 2, backend="fast")


@pytest.mark.parametrize("backend", ["reference", "explicit"])
def test_compile_fullgraph_parity(backend):
    # fullgraph=True fails on any graph break inside the layer.
    torch.manual_seed(0)
    model = nn.Sequential(CWNConv2d(3, 4, 3, backend=backend), nn.ReLU(), nn.Flatten(), CWNLinear(4 * 4 * 4, 2, backend=backend))
    x = torch.randn(2, 3, 6, 6)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for got, ref in zip(grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, ref)


def _timm_std_weight(v, eps):
    """timm's StdConv2d.forward, written out: batch_norm over each output row, no affine."""
    return F.batch_norm(v.reshape(1, v.shape[0], -1), None, None, training=True, momentum=0.0,
                        eps=eps).reshape_as(v)


@pytest.mark.parametrize("cls,shape", [(WSConv2d, (6, 2, 3, 3)), (WSLinear, (3, 7))])
def test_ws_equals_timm_standardisation(cls, shape):
    torch.manual_seed(0)
    layer = cls(4, 6, 3, groups=2) if cls is WSConv2d else cls(7, 3)
    with torch.no_grad():
        layer.v.mul_(5).add_(2)  # far from zero-mean, unit-variance rows
    assert layer.v.shape == shape and not hasattr(layer, "g")
    torch.testing.assert_close(layer.weight, _timm_std_weight(layer.v, 1e-6))
    rows = layer.weight.detach().flatten(1)
    torch.testing.assert_close(rows.var(1, correction=0), torch.ones(shape[0]), rtol=1e-4, atol=1e-4)
    x = torch.randn(2, 4, 5, 5) if cls is WSConv2d else torch.randn(2, 7)
    expected = (F.conv2d(x, _timm_std_weight(layer.v, 1e-6), layer.bias, groups=2) if cls is WSConv2d
                else F.linear(x, _timm_std_weight(layer.v, 1e-6), layer.bias))
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(weight_standardize(layer.v, eps=0.3), _timm_std_weight(layer.v, 0.3))


@pytest.mark.parametrize("cls,normalize", [(CWNLinear, centered_weight_norm), (WNLinear, weight_norm)])
def test_fixed_scale_is_a_buffer_whose_value_is_used(cls, normalize):
    layer = cls(7, 3, scale="fixed", scale_value=1.414)
    assert "g" not in dict(layer.named_parameters()) and "g" in dict(layer.named_buffers())
    assert "g" in layer.state_dict() and torch.equal(layer.g, torch.full((3,), 1.414))
    x = torch.randn(5, 7)
    torch.testing.assert_close(layer(x), F.linear(x, 1.414 * normalize(layer.v, torch.ones(3)), layer.bias))
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    layer(x).square().sum().backward()
    opt.step()
    assert torch.equal(layer.g, torch.full((3,), 1.414))
    learned = cls(7, 3, scale_value=2.0)  # learned g starts at scale_value
    assert isinstance(learned.g, nn.Parameter) and torch.equal(learned.g.detach(), torch.full((3,), 2.0))
    with pytest.raises(ValueError, match="unknown scale 'none'; expected one of learned, fixed"):
        cls(7, 3, scale="none")


@pytest.mark.parametrize("backend", ["explicit", "triton"])
def test_fixed_scale_gradients_on_every_backend_match_the_reference(backend):
    torch.manual_seed(0)
    layer = CWNConv2d(4, 8, 3, backend=backend, scale="fixed", scale_value=1.414)
    ref = CWNConv2d(4, 8, 3, backend="reference", scale="fixed", scale_value=1.414)
    ref.load_state_dict(layer.state_dict())
    layer, ref = layer.double(), ref.double()  # float64: float32 sums in another order differ by ~1e-5
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    layer(x).square().sum().backward()
    ref(x).square().sum().backward()
    torch.testing.assert_close(layer.v.grad, ref.v.grad, rtol=1e-7, atol=1e-9)
    assert layer.g.grad is None
