"""The fused Triton kernels against the reference, on CPU through TRITON_INTERPRET=1
(set by conftest.py when there is no GPU): tiny shapes, a few programs each."""

import pytest
import torch

from cwn_bench.nn import CWNConv2d, functional
from cwn_bench.nn import triton_cwn as tc

EPS = functional.DEFAULT_EPS
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(shape, dtype=torch.float32, with_g=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    v = (torch.randn(shape, generator=gen, dtype=dtype) + 0.5).to(DEVICE).requires_grad_()
    g = (torch.rand(shape[0], generator=gen, dtype=dtype) + 0.5).to(DEVICE).requires_grad_() if with_g else None
    return v, g


def _forward_backward(fn, v, g, grad_w):
    w = fn(v, g)
    inputs = (v, g) if g is not None else (v,)
    return (w, *torch.autograd.grad(w, inputs, grad_w))


@pytest.mark.parametrize("shape", [(5, 3, 3, 3), (2, 4100), (1, 7)], ids=["conv", "fan_in_over_block", "one_row"])
@pytest.mark.parametrize("with_g", [True, False], ids=["g", "no_g"])
def test_float32_forward_and_backward_match_reference(shape, with_g):
    v, g = _inputs(shape, with_g=with_g)
    grad_w = torch.randn(shape, device=DEVICE)
    got = _forward_backward(lambda a, b: tc.centered_weight_norm_triton(a, b, EPS, torch.float32), v, g, grad_w)
    ref = _forward_backward(lambda a, b: functional._reference(a, b, EPS), v, g, grad_w)
    assert got[0].dtype == torch.float32 and got[0].shape == v.shape
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_rows_are_centred_unit_vectors_scaled_by_g():
    v, g = _inputs((4, 2, 3, 3))
    w = tc.centered_weight_norm_triton(v, g, EPS, torch.float32).detach().reshape(4, -1)
    torch.testing.assert_close(w.mean(dim=1), torch.zeros(4, device=DEVICE), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.norm(dim=1), g.detach(), atol=1e-4, rtol=1e-4)


def test_gradcheck_float64():
    v, g = _inputs((3, 2, 2, 2), torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: tc.centered_weight_norm_triton(a, b, EPS, torch.float64), (v, g))


def test_gradcheck_float64_through_the_multi_chunk_loop(monkeypatch):
    monkeypatch.setattr(tc, "MAX_BLOCK_K", 4)  # fan-in 9 -> chunks of 4, 4 and a masked 1
    assert tc.launch_config(3, 9)[1] == 4
    v, g = _inputs((3, 1, 3, 3), torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: tc.centered_weight_norm_triton(a, b, EPS, torch.float64), (v, g))


def test_launch_config_puts_several_rows_in_a_program_and_covers_all_rows():
    block_r, block_k, programs, warps = tc.launch_config(128, 128 * 9)  # the paper's conv: one chunk
    assert block_k == 2048 and block_r >= 2 and block_r * programs >= 128 and warps == 8
    block_r, block_k, programs, warps = tc.launch_config(64, 27)
    assert (block_r, block_k, programs, warps) == (16, 32, 4, 4)
    block_r, block_k, programs, _ = tc.launch_config(3, 9000)  # past MAX_BLOCK_K: chunks
    assert block_k == tc.MAX_BLOCK_K and block_r * programs >= 3


def test_channels_last_weight_is_used_in_place_and_bf16_output_written_directly():
    v, g = _inputs((6, 4, 3, 3))
    v_cl = v.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    grad_w = torch.randn(6, 4, 3, 3, device=DEVICE).to(torch.bfloat16)
    w, dv, dg = _forward_backward(lambda a, b: tc.centered_weight_norm_triton(a, b, EPS, torch.bfloat16),
                                  v_cl, g, grad_w)
    assert w.dtype == torch.bfloat16 and w.stride() == v_cl.stride() and dv.stride() == v_cl.stride()
    ref_w, ref_dv, ref_dg = _forward_backward(lambda a, b: functional._reference(a, b, EPS), v, g, grad_w.float())
    torch.testing.assert_close(w.float(), ref_w, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(dv, ref_dv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dg, ref_dg, rtol=1e-5, atol=1e-5)


class _CountingKernel:
    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


def test_triton_backend_launches_one_kernel_each_way(monkeypatch):
    fwd, bwd = _CountingKernel(tc._cwn_fwd_kernel), _CountingKernel(tc._cwn_bwd_kernel)
    monkeypatch.setattr(tc, "_cwn_fwd_kernel", fwd)
    monkeypatch.setattr(tc, "_cwn_bwd_kernel", bwd)
    v, g = _inputs((4, 3, 3, 3))
    w = functional.centered_weight_norm(v, g, EPS, backend="triton")
    w.sum().backward()
    assert (fwd.launches, bwd.launches) == (1, 1)
    assert v.grad is not None and g.grad is not None


def test_cwn_layer_on_the_triton_backend_compiles_without_graph_break():
    torch._dynamo.reset()
    layer = CWNConv2d(3, 4, 3, padding=1, backend="triton").to(DEVICE)
    x = torch.randn(2, 3, 5, 5, device=DEVICE, requires_grad=True)
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)  # fake impls + autograd, no codegen
    y = compiled(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in (x, layer.v, layer.g)]
    for p in (x, layer.v, layer.g):
        p.grad = None
    layer(x).square().sum().backward()
    torch.testing.assert_close(y, layer(x))
    for got, p in zip(grads, (x, layer.v, layer.g)):
        torch.testing.assert_close(got, p.grad)


def test_a_gradient_in_the_weights_layout_with_other_size_one_strides_is_used_without_a_copy(monkeypatch):
    v = torch.randn(6, 5, dtype=torch.float64).as_strided((6, 5, 1, 1), (5, 1, 5, 5))  # channels_last's strides
    g = torch.rand(6, dtype=torch.float64) + 0.5
    _, mean, r = tc.fused_forward(v, g, 1e-5, v.dtype)
    dense = torch.randn(6, 5, dtype=torch.float64)
    same_order = dense.view(6, 5, 1, 1)  # strides (5, 1, 1, 1); v's are (5, 1, 5, 5): one memory order
    assert same_order.stride() != v.stride()
    allocations = []
    empty_like = torch.empty_like
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: allocations.append(a[0].shape) or empty_like(*a, **k))
    dv, dg = tc.fused_backward(same_order, v, g, mean, r)
    assert allocations == [v.shape, g.shape]  # dv and dg only: the gradient was not copied first
    monkeypatch.undo()
    dv_ref, dg_ref = tc.fused_backward(torch.empty_like(v).copy_(same_order), v, g, mean, r)
    torch.testing.assert_close(dv, dv_ref, rtol=0, atol=0)
    torch.testing.assert_close(dg, dg_ref, rtol=0, atol=0)
    transposed = torch.randn(5, 6, dtype=torch.float64).t().reshape(6, 5, 1, 1)  # rows not dense: copied first
    dv_t, _ = tc.fused_backward(transposed, v, g, mean, r)
    torch.testing.assert_close(dv_t, tc.fused_backward(transposed.contiguous(), v, g, mean, r)[0], rtol=0, atol=0)
