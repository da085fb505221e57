"""Drop-in re-parameterised ``nn.Conv2d`` / ``nn.Linear`` layers (WN and CWN).

Each class subclasses the plain layer with its exact constructor signature and only
swaps the learnable ``weight`` for a proxy ``v`` (the plain weight's shape) and a scale
``g`` (``[out]``, initialised to 1 as in the paper).  ``.weight`` is a property that
returns the effective weight, so the plain layer's own ``forward`` runs unchanged:
``layer(x) == F.conv2d(x, layer.weight, layer.bias, ...)``.

Caching: with gradients disabled and the layer in eval mode, the effective weight is
computed once and reused until ``v`` or ``g`` changes (their version counters,
storage, device and the autocast dtype form the key, so an optimizer step,
``load_state_dict`` or ``.to()`` all invalidate it).  Writes through ``param.data``
bypass version counters; call :meth:`invalidate_weight_cache` after those.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cwn_bench.nn.functional import DEFAULT_EPS, centered_weight_norm, output_dtype, resolve_backend, weight_norm


class _Reparameterized:
    """Mixin placed before ``nn.Conv2d`` / ``nn.Linear`` in the bases."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self._parameters.pop("weight")
        self.v = nn.Parameter(plain.detach())
        self.g = nn.Parameter(torch.ones(plain.shape[0], device=plain.device, dtype=plain.dtype))
        self._weight_cache: tuple | None = None

    @property
    def weight(self) -> Tensor:
        params = self.__dict__.get("_parameters", {})
        if "v" not in params:  # inside the plain layer's __init__ / reset_parameters
            if "weight" in params:
                return params["weight"]
            raise AttributeError("weight")
        if torch.is_grad_enabled() or self.training or torch.compiler.is_compiling():
            return self.normalize()
        key = (self.v._version, self.g._version, self.v.data_ptr(), self.g.data_ptr(),
               self.v.device, output_dtype(self.v))
        if self._weight_cache is None or self._weight_cache[0] != key:
            self._weight_cache = (key, self.normalize())
        return self._weight_cache[1]

    def invalidate_weight_cache(self) -> None:
        """Forget the cached eval-mode weight (only needed after writes through ``.data``)."""
        self._weight_cache = None

    def normalize(self) -> Tensor:
        """The effective weight, of ``v``'s shape."""
        raise NotImplementedError


class _CWN(_Reparameterized):
    def __init__(self, *args: Any, backend: str = "auto", eps: float = DEFAULT_EPS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        resolve_backend(backend, self.v)  # reject an unknown name at construction
        self.backend = backend
        self.eps = eps

    def normalize(self) -> Tensor:
        return centered_weight_norm(self.v, self.g, self.eps, self.backend)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend}"


class _WN(_Reparameterized):
    def normalize(self) -> Tensor:
        return weight_norm(self.v, self.g)


class CWNConv2d(_CWN, nn.Conv2d):
    """``nn.Conv2d`` with centred, normalised filters: row = ``in/groups * kh * kw``."""


class CWNLinear(_CWN, nn.Linear):
    """``nn.Linear`` with centred, normalised rows: row = ``in_features``."""


class WNConv2d(_WN, nn.Conv2d):
    """``nn.Conv2d`` with weight normalisation (Salimans & Kingma, 2016)."""


class WNLinear(_WN, nn.Linear):
    """``nn.Linear`` with weight normalisation (Salimans & Kingma, 2016)."""
