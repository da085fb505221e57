"""Natural neural network layer (Desjardins et al. 2015), the paper's NNN baseline.

``NNNLinear`` keeps the authors' parameterisation (``module/NormLinear_new.lua``): a proxy
``v`` (``V``, ``[out, in]``), a bias ``c`` (``bias``), an input mean ``mu`` (``[in]``, starts 0)
and a whitening ``U`` (``[in, in]``, starts I); ``y = (x - mu) U^T V^T + c``, so the effective
weight is ``W = V U`` and gradients reach ``V`` and ``c`` only.

Every ``nnn_interval`` optimizer updates the layer re-estimates ``mu`` and ``U`` from the
input of its most recent training forward (the mini-batch of that update) with damping
``nnn_eps`` (:func:`cwn_bench.nn.functional.pca_whitening`) and rewrites
``V = W U_new^-1``, ``c = c - W mu_old + W mu_new``: the layer's function is unchanged.
(The authors' ``exp_MLP.lua`` forwards 0.1*T random training images for the estimate; the
update's own mini-batch, here, reads no extra data. With gradient accumulation it is the
last micro-batch.)

The update hook belongs to the layer, so the training loop does not know which method runs:
one process-wide ``torch.optim`` step post-hook (registered with the first NNN layer) calls
:meth:`NNNLinear.count_update` on every live NNN layer whose ``v`` that optimizer holds, in
creation order. It fires on real updates only (``GradScaler`` skips ``step()`` on inf
gradients), never on forwards, so gradient accumulation and extra forwards (probes,
evaluation) do not move the schedule.

Resume: ``mu``, ``U`` are buffers and the update count is the layer's extra state, all in
``state_dict``; re-estimation happens inside ``step()``, so a checkpoint taken between steps
needs no saved input.

CUDA graphs: a replayed graph runs no Python, so the count would stop; a step captured into
one (``train.cuda_graph``) is refused with a UserError.

DDP: every rank re-estimates from the global batch (the local inputs all-gathered, as a
single process with the global batch size would), then rank 0's result is broadcast so the
ranks' ``V``, ``c``, ``mu``, ``U`` stay bitwise identical (DDP only keeps them in step through
identical updates).
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from cwn_bench.errors import UserError
from cwn_bench.nn.functional import pca_whitening
from cwn_bench.nn.layers import _Reparameterized

DEFAULT_INTERVAL = 200  # the authors' exp_MLP.lua -T
DEFAULT_EPS = 1.0  # the authors' exp_MLP.lua -epcilo ("the revised term")

_LIVE: weakref.WeakSet[NNNLinear] = weakref.WeakSet()
_ORDER = itertools.count()
_HOOK: Any = None


def _after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    if not _LIVE:
        return
    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for layer in sorted((m for m in _LIVE if id(m.v) in stepped), key=lambda m: m._nnn_order):
        layer.count_update()


def _track(layer: NNNLinear) -> None:
    global _HOOK
    if _HOOK is None:
        _HOOK = register_optimizer_step_post_hook(_after_step)
    layer._nnn_order = next(_ORDER)
    _LIVE.add(layer)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _global_batch(inputs: Tensor) -> Tensor:
    """``inputs`` ``[n_local, d]`` of every rank concatenated in rank order (sizes may differ)."""
    if not _distributed():
        return inputs
    world = dist.get_world_size()
    size = torch.tensor([inputs.shape[0]], device=inputs.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    most = int(max(s.item() for s in sizes))
    padded = torch.zeros(most, inputs.shape[1], device=inputs.device, dtype=inputs.dtype)
    padded[: inputs.shape[0]] = inputs
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes)])


class NNNLinear(_Reparameterized, nn.Linear):
    """``nn.Linear``'s signature plus ``nnn_interval`` (updates between re-estimations) and
    ``nnn_eps`` (damping of the input covariance). Always has its bias ``c``."""

    options = ("nnn_interval", "nnn_eps")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None, *, nnn_interval: int = DEFAULT_INTERVAL, nnn_eps: float = DEFAULT_EPS) -> None:
        if not bias:
            raise ValueError("NNNLinear needs its bias c (the re-estimation moves the mean into it)")
        if nnn_interval < 1 or nnn_eps < 0:
            raise ValueError(f"nnn_interval must be >= 1 and nnn_eps >= 0, got {nnn_interval} and {nnn_eps}")
        super().__init__(in_features, out_features, True, device, dtype)
        self.register_buffer("mu", torch.zeros(in_features, device=self.v.device, dtype=self.v.dtype))
        self.register_buffer("U", torch.eye(in_features, device=self.v.device, dtype=self.v.dtype))
        self.nnn_interval, self.nnn_eps = int(nnn_interval), float(nnn_eps)
        self.updates = 0  # optimizer updates seen (extra state)
        self.reestimations = 0  # re-estimations done (extra state)
        self._last_input: Tensor | None = None
        _track(self)

    def __setstate__(self, state: dict[str, Any]) -> None:  # deepcopy / pickle: track the copy too
        super().__setstate__(state)
        _track(self)

    def _cache_key_tensors(self) -> tuple[Tensor, ...]:
        return (self.v, self.U)

    def normalize(self) -> Tensor:
        """``W = V U`` (``[out, in]``)."""
        return self.v @ self.U

    def folded_bias(self) -> Tensor:
        """``c - W mu``: the plain layer's bias."""
        return self.bias - self.weight @ self.mu

    def fim_input(self, x: Tensor) -> Tensor:
        """The whitened input ``(x - mu) U^T`` (``[..., in]``) that the learned ``V`` multiplies:
        the input of Figure 2's FIM for NNN, as the authors' ``NormLinear_new.lua``."""
        return (x - self.mu) @ self.U.T

    def forward(self, x: Tensor) -> Tensor:
        """``(x - mu) U^T V^T + c``; a training forward with gradients on keeps ``x`` (a
        reference, no copy) for the next re-estimation, eval and no-grad forwards change nothing."""
        if self.training and torch.is_grad_enabled():
            self._last_input = x.detach()
        return F.linear(x - self.mu, self.weight, self.bias)

    def get_extra_state(self) -> dict[str, int]:
        return {"updates": self.updates, "reestimations": self.reestimations}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.updates, self.reestimations = int(state["updates"]), int(state["reestimations"])

    def count_update(self) -> None:
        """Called after each optimizer update; re-estimates every ``nnn_interval``-th."""
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise UserError("model.method: nnn counts optimizer updates in Python, which a captured CUDA graph "
                            "replays without: set train.cuda_graph=false for NNN runs")
        self.updates += 1
        if self.updates % self.nnn_interval == 0 and self._last_input is not None:
            self.reestimate(self._last_input)

    @torch.no_grad()
    def reestimate(self, inputs: Tensor) -> None:
        """Re-whiten from ``inputs`` (``[..., in]``; all-gathered over ranks), keeping the
        layer's function: ``V = W U_new^-1``, ``c += W (mu_new - mu_old)``."""
        batch = _global_batch(inputs.reshape(-1, self.in_features))
        wide = torch.float64
        w = self.v.to(wide) @ self.U.to(wide)
        mu, whitening, inverse = pca_whitening(batch.to(wide), self.nnn_eps)
        self.bias.add_((w @ (mu - self.mu.to(wide))).to(self.bias.dtype))
        self.v.copy_(w @ inverse)
        self.mu.copy_(mu)
        self.U.copy_(whitening)
        if _distributed():
            for tensor in (self.v, self.bias, self.mu, self.U):
                dist.broadcast(tensor, src=0)
        self.reestimations += 1
        self._last_input = None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nnn_interval={self.nnn_interval}, nnn_eps={self.nnn_eps}"
