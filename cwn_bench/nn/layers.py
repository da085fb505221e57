"""Drop-in re-parameterised ``nn.Conv2d`` / ``nn.Linear`` layers (WN, CWN and WS).

Each class subclasses the plain layer with its exact constructor signature and only
swaps the learnable ``weight`` for a proxy ``v`` (the plain weight's shape) and, for WN
and CWN, a scale ``g`` (``[out]``, initialised to ``scale_value``, 1 as in the paper).
``scale="learned"`` makes ``g`` a parameter (the paper's ``g``); ``scale="fixed"`` a buffer
that keeps its value (the authors' "NS" conv nets; their PyTorch module uses 1.414). WS has
no scale.  ``.weight`` is a property that returns the effective weight, so the plain
layer's own ``forward`` runs unchanged: ``layer(x) == F.conv2d(x, layer.weight, layer.bias, ...)``.
The math is in :mod:`cwn_bench.nn.functional`; NNN's layer is in :mod:`cwn_bench.nn.nnn`.

Caching: with gradients disabled and the layer in eval mode, the effective weight is
computed once and reused until ``v`` or ``g`` changes (their version counters,
storage, device and the autocast dtype form the key, so an optimizer step,
``load_state_dict`` or ``.to()`` all invalidate it), and it is dropped whenever the layer
enters eval mode (``.eval()`` / ``.train(False)``), so whatever trained in between, a replayed
CUDA graph included (its in-place updates bump no version counter), each evaluation pass
starts from the current weights.  Writes through ``param.data`` in eval mode bypass version
counters; call :meth:`invalidate_weight_cache` after those.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cwn_bench.nn.functional import (
    DEFAULT_EPS, WS_EPS, centered_weight_norm, output_dtype, resolve_backend, weight_norm, weight_standardize)

SCALES = ("learned", "fixed")


class _Reparameterized:
    """Mixin placed before ``nn.Conv2d`` / ``nn.Linear`` in the bases. ``options``: the
    keyword arguments of the class beyond the plain layer's (what ``convert`` passes on)."""

    options: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self._parameters.pop("weight")
        self.v = nn.Parameter(plain.detach())
        self._weight_cache: tuple | None = None

    def _cache_key_tensors(self) -> tuple[Tensor, ...]:
        """The tensors the effective weight depends on."""
        return (self.v,)

    def folded_bias(self) -> Tensor | None:
        """The bias of the equivalent plain layer (``fold``)."""
        return self.bias

    @property
    def weight(self) -> Tensor:
        params = self.__dict__.get("_parameters", {})
        if "v" not in params:  # inside the plain layer's __init__ / reset_parameters
            if "weight" in params:
                return params["weight"]
            raise AttributeError("weight")
        if torch.is_grad_enabled() or self.training or torch.compiler.is_compiling():
            return self.normalize()
        key = (tuple((t._version, t.data_ptr()) for t in self._cache_key_tensors()),
               self.v.device, output_dtype(self.v))
        if self._weight_cache is None or self._weight_cache[0] != key:
            self._weight_cache = (key, self.normalize())
        return self._weight_cache[1]

    def train(self, mode: bool = True) -> Any:
        self._weight_cache = None  # see the module's docstring: an evaluation starts afresh
        return super().train(mode)

    def invalidate_weight_cache(self) -> None:
        """Forget the cached eval-mode weight (only needed after writes through ``.data``)."""
        self._weight_cache = None

    def normalize(self) -> Tensor:
        """The effective weight, of ``v``'s shape."""
        raise NotImplementedError


class _Scaled(_Reparameterized):
    """Adds the scale ``g`` (``[out]``): a parameter (``learned``) or a buffer (``fixed``)
    of initial value ``scale_value``."""

    options = ("scale", "scale_value")

    def __init__(self, *args: Any, scale: str = "learned", scale_value: float = 1.0, **kwargs: Any) -> None:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
        super().__init__(*args, **kwargs)
        g = torch.full((self.v.shape[0],), float(scale_value), device=self.v.device, dtype=self.v.dtype)
        if scale == "learned":
            self.g = nn.Parameter(g)
        else:
            self.register_buffer("g", g)
        self.scale = scale

    def _cache_key_tensors(self) -> tuple[Tensor, ...]:
        return (self.v, self.g)


class _CWN(_Scaled):
    options = ("backend", "eps", *_Scaled.options)

    def __init__(self, *args: Any, backend: str = "auto", eps: float = DEFAULT_EPS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        resolve_backend(backend, self.v)  # reject an unknown name at construction
        self.backend = backend
        self.eps = eps

    def normalize(self) -> Tensor:
        return centered_weight_norm(self.v, self.g, self.eps, self.backend)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend}, scale={self.scale}"


class _WN(_Scaled):
    def normalize(self) -> Tensor:
        return weight_norm(self.v, self.g)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}"


class _WS(_Reparameterized):
    options = ("eps",)

    def __init__(self, *args: Any, eps: float = WS_EPS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps

    def normalize(self) -> Tensor:
        return weight_standardize(self.v, self.eps)


class CWNConv2d(_CWN, nn.Conv2d):
    """``nn.Conv2d`` with centred, normalised filters: row = ``in/groups * kh * kw``."""


class CWNLinear(_CWN, nn.Linear):
    """``nn.Linear`` with centred, normalised rows: row = ``in_features``."""


class WNConv2d(_WN, nn.Conv2d):
    """``nn.Conv2d`` with weight normalisation (Salimans & Kingma, 2016)."""


class WNLinear(_WN, nn.Linear):
    """``nn.Linear`` with weight normalisation (Salimans & Kingma, 2016)."""


class WSConv2d(_WS, nn.Conv2d):
    """``nn.Conv2d`` with weight standardisation (timm's ``StdConv2d``): row = ``in/groups * kh * kw``."""


class WSLinear(_WS, nn.Linear):
    """``nn.Linear`` with weight standardisation: row = ``in_features``."""
