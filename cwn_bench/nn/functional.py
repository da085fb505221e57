"""Centered weight normalisation (Huang et al., ICCV 2017), written once.

For a weight ``v`` of shape ``[out, ...]`` each row ``v[i].flatten()`` (the input
weights of one neuron: ``in_channels * kh * kw`` values for a conv) becomes

    w[i] = g[i] * (v[i] - mean(v[i])) / sqrt(||v[i] - mean(v[i])||^2 + eps)     (Alg. 1)

Algorithm 2's backward, with ``r = 1 / sqrt(||v_hat||^2 + eps)`` and ``u = w / g`` the
unit row, needs no autograd graph over the normalisation:

    dL/dg[i] = <dL/dw[i], u[i]>
    dL/dv[i] = r[i] * (d[i] - <d[i], u[i]> u[i] - mean(d[i])),   d = g * dL/dw

The result is zero-mean and orthogonal to ``u`` (Proposition 2).  It is exact for any
``eps`` because ``u = v_hat * r`` whatever ``||u||`` is.

Backends (all return the same numbers):
  ``reference``  plain autograd over the formula above: the ground truth for tests;
  ``explicit``   a ``torch.autograd.Function`` with the one-pass backward;
  ``triton``     fused GPU kernels (``cwn_bench.nn.triton_cwn``);
  ``auto``       ``triton`` on CUDA tensors when Triton is importable, else ``explicit``.

The baselines' math lives here too: :func:`weight_norm` (WN), :func:`weight_standardize`
(WS) and :func:`pca_whitening` (NNN's re-estimation).

Precision: the arithmetic runs in float32 (float64 stays float64); under autocast the
result is returned in the autocast dtype, so it replaces the cast the conv would do.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

DEFAULT_EPS = 1e-5
BACKENDS = ("auto", "reference", "explicit", "triton")


def output_dtype(v: Tensor) -> torch.dtype:
    """The dtype a conv/linear would consume ``v`` in: the autocast dtype when autocast
    is on for ``v``'s device and ``v`` is floating point, else ``v.dtype``."""
    device_type = v.device.type
    if torch.is_autocast_enabled(device_type) and v.dtype in (torch.float32, torch.float64):
        return torch.get_autocast_dtype(device_type)
    return v.dtype


def compute_dtype(v: Tensor) -> torch.dtype:
    """float64 stays float64, everything else is normalised in float32."""
    return torch.float64 if v.dtype == torch.float64 else torch.float32


def _reference(v: Tensor, g: Tensor | None, eps: float) -> Tensor:
    rows = v.reshape(v.shape[0], -1).to(compute_dtype(v))
    centered = rows - rows.mean(dim=1, keepdim=True)
    w = centered * torch.rsqrt(centered.pow(2).sum(dim=1, keepdim=True) + eps)
    if g is not None:
        w = w * g.to(w.dtype).unsqueeze(1)
    return w.to(output_dtype(v)).reshape(v.shape)


class _ExplicitCWN(torch.autograd.Function):
    """Forward and Algorithm 2's backward in one pass each; saves the unit rows ``u``
    (``[out, fan_in]``, compute dtype) and ``r`` (``[out, 1]``)."""

    @staticmethod
    def forward(ctx, v: Tensor, g: Tensor | None, eps: float, out_dtype: torch.dtype) -> Tensor:
        rows = v.reshape(v.shape[0], -1).to(compute_dtype(v))
        centered = rows - rows.mean(dim=1, keepdim=True)
        r = torch.rsqrt(centered.pow(2).sum(dim=1, keepdim=True) + eps)
        u = centered * r
        w = u if g is None else u * g.to(u.dtype).unsqueeze(1)
        ctx.save_for_backward(u, r, g)
        ctx.v_meta = (v.shape, v.dtype)
        return w.to(out_dtype).reshape(v.shape)

    @staticmethod
    def backward(ctx, grad_w: Tensor):
        u, r, g = ctx.saved_tensors
        shape, v_dtype = ctx.v_meta
        grad = grad_w.reshape(shape[0], -1).to(u.dtype)
        grad_g = None
        if g is not None:
            if ctx.needs_input_grad[1]:
                grad_g = (grad * u).sum(dim=1).to(g.dtype)
            grad = grad * g.to(u.dtype).unsqueeze(1)
        grad_v = r * (grad - (grad * u).sum(dim=1, keepdim=True) * u - grad.mean(dim=1, keepdim=True))
        return grad_v.to(v_dtype).reshape(shape), grad_g, None, None


def _explicit(v: Tensor, g: Tensor | None, eps: float) -> Tensor:
    return _ExplicitCWN.apply(v, g, eps, output_dtype(v))


# Looked up once at import: ``torch.compile`` traces ``resolve_backend`` and would break
# the graph at a call to ``importlib``.
_TRITON_FOUND = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    """True when Triton can be imported (it ships with torch's CUDA builds)."""
    return _TRITON_FOUND


def resolve_backend(backend: str, v: Tensor) -> str:
    """Map ``auto`` to a concrete backend for ``v``'s device; reject unknown names."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown CWN backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return "triton" if v.is_cuda and triton_available() else "explicit"


def centered_weight_norm(
    v: Tensor, g: Tensor | None = None, eps: float = DEFAULT_EPS, backend: str = "auto"
) -> Tensor:
    """Centre and normalise each row of ``v`` (``[out, ...]``), then scale row ``i`` by
    ``g[i]`` (``g``: ``[out]`` or None). Returns a tensor of ``v``'s shape in
    :func:`output_dtype`."""
    if g is not None and g.shape != (v.shape[0],):
        raise ValueError(f"g must have shape [{v.shape[0]}] (one scale per output row), got {list(g.shape)}")
    chosen = resolve_backend(backend, v)
    if chosen == "reference":
        return _reference(v, g, eps)
    if chosen == "explicit":
        return _explicit(v, g, eps)
    from cwn_bench.nn import triton_cwn

    return triton_cwn.centered_weight_norm_triton(v, g, eps, output_dtype(v))


def weight_norm(v: Tensor, g: Tensor, eps: float = 0.0) -> Tensor:
    """Salimans & Kingma's weight normalisation, ``w[i] = g[i] * v[i] / ||v[i]||``, with
    the same precision rules as :func:`centered_weight_norm` (``v``: ``[out, ...]``,
    ``g``: ``[out]``)."""
    rows = v.reshape(v.shape[0], -1).to(compute_dtype(v))
    w = rows * (g.to(rows.dtype) * torch.rsqrt(rows.pow(2).sum(dim=1) + eps)).unsqueeze(1)
    return w.to(output_dtype(v)).reshape(v.shape)


WS_EPS = 1e-6  # timm's StdConv2d default


def weight_standardize(v: Tensor, eps: float = WS_EPS) -> Tensor:
    """Weight standardisation (Qiao et al. 2019; timm's ``StdConv2d``): each row of ``v``
    (``[out, ...]``) becomes ``(v[i] - mean(v[i])) / sqrt(var(v[i]) + eps)`` with the biased
    (1/n) variance and no scale. Same precision rules as :func:`centered_weight_norm`."""
    rows = v.reshape(v.shape[0], -1).to(compute_dtype(v))
    centered = rows - rows.mean(dim=1, keepdim=True)
    w = centered * torch.rsqrt(centered.pow(2).mean(dim=1, keepdim=True) + eps)
    return w.to(output_dtype(v)).reshape(v.shape)


def pca_whitening(inputs: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """NNN's whitening of a batch of layer inputs (Desjardins et al. 2015, as the authors'
    ``NormLinear_new.lua``): ``inputs`` ``[n, d]`` -> (``mu`` ``[d]``, ``U`` ``[d, d]``,
    ``U^-1`` ``[d, d]``) with ``mu`` their mean, ``Sigma = cov_biased(inputs) + eps * I =
    E diag(l) E^T``, ``U = diag(l^-1/2) E^T`` and ``U^-1 = E diag(l^1/2)``, so ``(x - mu) U^T``
    has covariance ``U Sigma U^T = I``. Computed in float64, returned in ``inputs``' dtype."""
    x = inputs.detach().to(torch.float64)
    mu = x.mean(dim=0)
    centered = x - mu
    sigma = centered.T @ centered / x.shape[0] + eps * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    eigvals, eigvecs = torch.linalg.eigh(sigma)
    whitening = eigvals.rsqrt().unsqueeze(1) * eigvecs.T
    inverse = eigvecs * eigvals.sqrt().unsqueeze(0)
    return mu.to(inputs.dtype), whitening.to(inputs.dtype), inverse.to(inputs.dtype)
