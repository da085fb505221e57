"""Fused Triton kernels for centered weight normalisation, as a ``torch.library`` op.

Forward (one launch): ``V [R, K] -> W [R, K]`` with, per row,
``mean = sum(v) / K``, ``r = 1 / sqrt(||v - mean||^2 + eps)``, ``w = g * (v - mean) * r``,
written directly in ``out_dtype`` (the dtype the conv consumes: under bf16 autocast this
replaces the fp32 -> bf16 weight cast instead of adding work). It saves ``mean`` and ``r``
(``[R]`` each, 8 bytes per row in float32), not the unit rows.

Backward (one launch): ``dW -> dV, dg`` with ``u = (v - mean) * r`` recomputed on the fly,
``dg = <dW, u>`` and ``dV = r * g * (dW - <dW, u> u - mean(dW))`` (Algorithm 2 with
``d = g * dW``, as in :mod:`cwn_bench.nn.functional`).

Each program handles ``BLOCK_R`` rows and walks the fan-in ``K`` in ``BLOCK_K`` chunks
of up to 4096, so any fan-in works. Every layer of the paper's nets fits one chunk
(GoogLeNet-BN's largest is 1024 * 2 * 2 = 4096; the paper's conv 128 * 3 * 3 = 1152 in a
chunk of 2048): then each pass is one load, and as the forward reads V three times (sum,
centred square sum, write) and the backward V and dW twice, the re-reads are L1 hits of
the program's own tile. The kernels are latency-bound (a weight is at most a few MB):
one DRAM round trip and a launch each, a few microseconds.

Rows may be stored in any order inside a row (CWN is invariant to permuting the fan-in),
so a channels_last conv weight, whose rows are dense but permuted, is used in place and
the output keeps the input's strides.

Arithmetic runs in float32, or float64 for float64 inputs (for ``gradcheck``). Without a
GPU, set ``TRITON_INTERPRET=1`` before this module is imported and the same kernels run
on CPU tensors through Triton's interpreter (slow: a few ms per program).

Eagerly the kernels run through a ``torch.autograd.Function`` (cheapest on the CPU side);
under ``torch.compile`` through the ``torch.library`` ops ``cwn_bench::cwn_fwd`` /
``cwn_bench::cwn_bwd``, whose fake (meta) implementations let dynamo keep a CWN layer in
one graph.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

# Largest chunk of the fan-in a program loads at once; BLOCK_R * BLOCK_K <= _TILE elements
# keeps a tile at 32 KiB of float32 per program (8 warps: 32 values per thread).
MAX_BLOCK_K = 4096
_TILE = 8192
_MAX_BLOCK_R = 16


@triton.jit
def _cwn_fwd_kernel(v_ptr, g_ptr, w_ptr, mean_ptr, r_ptr, n_rows, n_cols, eps,
                    HAS_G: tl.constexpr, ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < n_rows
    base = rows.to(tl.int64)[:, None] * n_cols
    cols = tl.arange(0, BLOCK_K)[None, :]
    total = tl.zeros([BLOCK_R], dtype=ACC)
    for k0 in range(0, n_cols, BLOCK_K):
        ok = row_ok[:, None] & (k0 + cols < n_cols)
        total += tl.sum(tl.load(v_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC), axis=1)
    mean = total / n_cols
    square = tl.zeros([BLOCK_R], dtype=ACC)
    for k0 in range(0, n_cols, BLOCK_K):
        ok = row_ok[:, None] & (k0 + cols < n_cols)
        x = tl.load(v_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC)
        centred = tl.where(ok, x - mean[:, None], 0.0)
        square += tl.sum(centred * centred, axis=1)
    r = 1.0 / tl.sqrt(square + eps)
    scale = r
    if HAS_G:
        scale = r * tl.load(g_ptr + rows, mask=row_ok, other=0.0).to(ACC)
    for k0 in range(0, n_cols, BLOCK_K):
        ok = row_ok[:, None] & (k0 + cols < n_cols)
        x = tl.load(v_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC)
        w = (x - mean[:, None]) * scale[:, None]
        tl.store(w_ptr + base + k0 + cols, w.to(w_ptr.dtype.element_ty), mask=ok)
    tl.store(mean_ptr + rows, mean, mask=row_ok)
    tl.store(r_ptr + rows, r, mask=row_ok)


@triton.jit
def _cwn_bwd_kernel(dw_ptr, v_ptr, g_ptr, mean_ptr, r_ptr, dv_ptr, dg_ptr, n_rows, n_cols,
                    HAS_G: tl.constexpr, ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < n_rows
    base = rows.to(tl.int64)[:, None] * n_cols
    cols = tl.arange(0, BLOCK_K)[None, :]
    mean = tl.load(mean_ptr + rows, mask=row_ok, other=0.0)
    r = tl.load(r_ptr + rows, mask=row_ok, other=0.0)
    grad_sum = tl.zeros([BLOCK_R], dtype=ACC)
    grad_dot_u = tl.zeros([BLOCK_R], dtype=ACC)
    for k0 in range(0, n_cols, BLOCK_K):
        ok = row_ok[:, None] & (k0 + cols < n_cols)
        x = tl.load(v_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC)
        dw = tl.load(dw_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC)
        u = tl.where(ok, (x - mean[:, None]) * r[:, None], 0.0)
        grad_sum += tl.sum(dw, axis=1)
        grad_dot_u += tl.sum(dw * u, axis=1)
    grad_mean = grad_sum / n_cols
    scale = r
    if HAS_G:
        tl.store(dg_ptr + rows, grad_dot_u.to(dg_ptr.dtype.element_ty), mask=row_ok)
        scale = r * tl.load(g_ptr + rows, mask=row_ok, other=0.0).to(ACC)
    for k0 in range(0, n_cols, BLOCK_K):
        ok = row_ok[:, None] & (k0 + cols < n_cols)
        x = tl.load(v_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC)
        dw = tl.load(dw_ptr + base + k0 + cols, mask=ok, other=0.0).to(ACC)
        u = (x - mean[:, None]) * r[:, None]
        dv = scale[:, None] * (dw - grad_dot_u[:, None] * u - grad_mean[:, None])
        tl.store(dv_ptr + base + k0 + cols, dv.to(dv_ptr.dtype.element_ty), mask=ok)


def launch_config(n_rows: int, n_cols: int) -> tuple[int, int, int, int]:
    """``(BLOCK_R, BLOCK_K, programs, num_warps)`` for an ``[n_rows, n_cols]`` weight: the
    fan-in in chunks of at most ``MAX_BLOCK_K``, as many rows per program as fill a
    ``_TILE``, 8 warps for a full tile (32 values per thread), else 4."""
    block_k = min(triton.next_power_of_2(max(n_cols, 1)), MAX_BLOCK_K)
    block_r = max(1, min(_MAX_BLOCK_R, _TILE // block_k, triton.next_power_of_2(max(n_rows, 1))))
    return block_r, block_k, triton.cdiv(n_rows, block_r), 8 if block_r * block_k >= _TILE else 4


def _row_dense(t: Tensor) -> bool:
    """True when each ``t[i]`` is one dense block of ``numel / len(t)`` elements in memory
    (contiguous, channels_last, any dense layout whose slowest dimension is 0)."""
    inner = sorted(range(1, t.dim()), key=lambda d: -t.stride(d))
    return t.permute(0, *inner).is_contiguous()


def _layout(v: Tensor) -> Tensor:
    """``v`` itself when its rows are dense, else a contiguous copy."""
    return v if _row_dense(v) else v.contiguous()


def _acc_dtype(v: Tensor) -> torch.dtype:
    return torch.float64 if v.dtype == torch.float64 else torch.float32


def _tl_acc(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32


def fused_forward(v: Tensor, g: Tensor | None, eps: float, out_dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """``(w, mean, r)``: ``w`` of ``v``'s shape and strides in ``out_dtype``; ``mean`` and
    ``r = 1/||v_hat||`` of shape ``[out]`` in the accumulation dtype."""
    v = _layout(v)
    n_rows = v.shape[0]
    n_cols = v.numel() // max(n_rows, 1)
    acc = _acc_dtype(v)
    w = torch.empty_like(v, dtype=out_dtype)
    mean = torch.empty(n_rows, device=v.device, dtype=acc)
    r = torch.empty(n_rows, device=v.device, dtype=acc)
    if v.numel():
        block_r, block_k, programs, warps = launch_config(n_rows, n_cols)
        _cwn_fwd_kernel[(programs,)](
            v, g if g is not None else v, w, mean, r, n_rows, n_cols, eps,
            HAS_G=g is not None, ACC=_tl_acc(acc), BLOCK_R=block_r, BLOCK_K=block_k, num_warps=warps)
    return w, mean, r


def fused_backward(grad_w: Tensor, v: Tensor, g: Tensor | None, mean: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """``(dv, dg)``: ``dv`` of ``v``'s shape, strides and dtype; ``dg`` of ``g``'s shape and
    dtype (an empty tensor when ``g`` is None)."""
    v = _layout(v)
    # the kernel reads grad_w in v's memory order; strides of size-1 dims do not matter (a 1x1
    # conv's channels_last weight comes as (I, 1, I, I) or (I, 1, 1, 1): one layout, no copy)
    if any(a != b for a, b, n in zip(grad_w.stride(), v.stride(), v.shape) if n > 1):
        grad_w = torch.empty_like(v, dtype=grad_w.dtype).copy_(grad_w)
    n_rows = v.shape[0]
    n_cols = v.numel() // max(n_rows, 1)
    dv = torch.empty_like(v)
    dg = torch.empty_like(g) if g is not None else v.new_empty(0)
    if v.numel():
        block_r, block_k, programs, warps = launch_config(n_rows, n_cols)
        _cwn_bwd_kernel[(programs,)](
            grad_w, v, g if g is not None else v, mean, r, dv, dg, n_rows, n_cols,
            HAS_G=g is not None, ACC=_tl_acc(mean.dtype), BLOCK_R=block_r, BLOCK_K=block_k, num_warps=warps)
    return dv, dg


# The same two functions as ``torch.library`` ops for ``torch.compile``: dynamo sees their
# fake implementations and keeps one graph. Schemas are spelled out rather than inferred
# from the annotations, whose inference (``X | None``, future annotations) varies across
# torch 2.11 - 2.14.
cwn_fwd = torch.library.custom_op(
    "cwn_bench::cwn_fwd", fused_forward, mutates_args=(),
    schema="(Tensor v, Tensor? g, float eps, ScalarType out_dtype) -> (Tensor, Tensor, Tensor)")
cwn_bwd = torch.library.custom_op(
    "cwn_bench::cwn_bwd", fused_backward, mutates_args=(),
    schema="(Tensor grad_w, Tensor v, Tensor? g, Tensor mean, Tensor r) -> (Tensor, Tensor)")


@cwn_fwd.register_fake
def _cwn_fwd_fake(v: Tensor, g: Tensor | None, eps: float, out_dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    v = _layout(v)
    acc = _acc_dtype(v)
    stats = v.new_empty(v.shape[0], dtype=acc)
    return torch.empty_like(v, dtype=out_dtype), stats, torch.empty_like(stats)


@cwn_bwd.register_fake
def _cwn_bwd_fake(grad_w: Tensor, v: Tensor, g: Tensor | None, mean: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    v = _layout(v)
    return torch.empty_like(v), torch.empty_like(g) if g is not None else v.new_empty(0)


def _setup_context(ctx, inputs, output) -> None:
    v, g, _eps, _out_dtype = inputs
    _w, mean, r = output
    ctx.mark_non_differentiable(mean, r)
    ctx.save_for_backward(v, g, mean, r)


def _grads(ctx, grad_w: Tensor, bwd) -> tuple[Tensor, Tensor | None, None, None]:
    """Gradients for ``(v, g, eps, out_dtype)`` through ``bwd`` (the op or the function)."""
    v, g, mean, r = ctx.saved_tensors
    dv, dg = bwd(grad_w, v, g, mean, r)
    return dv, (dg if g is not None else None), None, None


cwn_fwd.register_autograd(lambda ctx, grad_w, _grad_mean, _grad_r: _grads(ctx, grad_w, cwn_bwd),
                          setup_context=_setup_context)


class _EagerCWN(torch.autograd.Function):
    """The eager path: the kernels without the op dispatcher, which costs tens of
    microseconds of Python per call (per layer and step) on top of the launch."""

    @staticmethod
    def forward(ctx, v: Tensor, g: Tensor | None, eps: float, out_dtype: torch.dtype) -> Tensor:
        w, mean, r = fused_forward(v, g, eps, out_dtype)
        ctx.save_for_backward(v, g, mean, r)
        return w

    @staticmethod
    def backward(ctx, grad_w: Tensor):
        return _grads(ctx, grad_w, fused_backward)


def centered_weight_norm_triton(v: Tensor, g: Tensor | None, eps: float, out_dtype: torch.dtype) -> Tensor:
    """The ``triton`` backend of :func:`cwn_bench.nn.functional.centered_weight_norm`:
    ``v`` ``[out, ...]`` (any float dtype, on CUDA or on CPU under ``TRITON_INTERPRET=1``),
    ``g`` ``[out]`` or None; returns the effective weight in ``out_dtype``."""
    if torch.compiler.is_compiling():
        return cwn_fwd(v, g, eps, out_dtype)[0]
    return _EagerCWN.apply(v, g, eps, out_dtype)
