"""The CWN function: Algorithm 1's output, Algorithm 2's backward, Proposition 2."""

import pytest
import torch

from cwn_bench.nn.functional import centered_weight_norm, weight_norm

torch.manual_seed(0)
SHAPES = [(6, 5), (4, 3, 3, 3), (3, 2, 1, 7)]


@pytest.mark.parametrize("backend", ["reference", "explicit"])
@pytest.mark.parametrize("shape", SHAPES)
def test_rows_are_zero_mean_with_norm_g(shape, backend):
    v = torch.randn(shape, dtype=torch.float64) * 3 + 1
    g = torch.rand(shape[0], dtype=torch.float64) + 0.5
    w = centered_weight_norm(v, g, eps=0.0, backend=backend).flatten(1)
    torch.testing.assert_close(w.mean(1), torch.zeros(shape[0], dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(w.norm(dim=1), g)


def test_matches_scaled_weight_standardisation():
    # CWN(v) = (v - mean) / (sqrt(d) * std_biased): an independent formula for the same thing.
    v = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    rows = v.flatten(1)
    expected = (rows - rows.mean(1, keepdim=True)) / (rows.shape[1] ** 0.5 * rows.std(1, unbiased=False, keepdim=True))
    torch.testing.assert_close(centered_weight_norm(v, eps=0.0, backend="explicit").flatten(1), expected)


@pytest.mark.parametrize("backend", ["reference", "explicit"])
def test_gradcheck_float64(backend):
    v = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    g = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda v, g: centered_weight_norm(v, g, backend=backend), (v, g))
    assert torch.autograd.gradgradcheck(lambda v, g: centered_weight_norm(v, g, backend="reference"), (v, g))


def test_explicit_backward_equals_reference():
    v = torch.randn(8, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.rand(8, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(8, 3, 3, 3, dtype=torch.float64)
    grads = {}
    for backend in ("reference", "explicit"):
        grads[backend] = torch.autograd.grad((centered_weight_norm(v, g, backend=backend) * upstream).sum(), (v, g))
    for ref, exp in zip(grads["reference"], grads["explicit"]):
        torch.testing.assert_close(exp, ref)


@pytest.mark.parametrize("backend", ["reference", "explicit"])
def test_proposition_2_gradient_orthogonal_to_ones_and_w(backend):
    # exact only for eps=0: with eps, dL/dv . w = r (d . w)(1 - ||w||^2)
    v = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    w = centered_weight_norm(v, eps=0.0, backend=backend)
    (grad_v,) = torch.autograd.grad((w * torch.randn_like(w)).sum(), v)
    torch.testing.assert_close(grad_v.sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close((grad_v * w).sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "explicit"])
def test_bf16_autocast_computes_in_float32_returns_bf16(backend):
    v = torch.randn(16, 3, 3, 3)
    g = torch.rand(16) + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = centered_weight_norm(v, g, backend=backend)
    assert w.dtype == torch.bfloat16
    # rounding the float32 result once: at most half an ulp of bf16 (2**-8 relative)
    torch.testing.assert_close(w.float(), centered_weight_norm(v, g, backend="reference"), rtol=2 ** -8, atol=1e-6)


def test_bad_backend_and_g_shape_named():
    v = torch.randn(3, 4)
    with pytest.raises(ValueError, match="unknown CWN backend 'cuda'.*reference"):
        centered_weight_norm(v, backend="cuda")
    with pytest.raises(ValueError, match=r"g must have shape \[3\]"):
        centered_weight_norm(v, torch.ones(4))


def test_weight_norm_rows_have_norm_g_and_keep_direction():
    v = torch.randn(4, 6, dtype=torch.float64)
    g = torch.rand(4, dtype=torch.float64) + 0.1
    w = weight_norm(v, g)
    torch.testing.assert_close(w.norm(dim=1), g)
    cosine = torch.nn.functional.cosine_similarity(w, v, dim=1)
    torch.testing.assert_close(cosine, torch.ones(4, dtype=torch.float64))
