"""Swap the linear maps of any model between plain, WN and CWN, and fold back.

``convert(model, "cwn")`` replaces every ``nn.Conv2d`` / ``nn.Linear`` in place, keeping
module names (so state_dict keys change only from ``weight`` to ``v``/``g``), with ``v``
copied from the existing weight and ``g`` set to 1.  ``fold(model)`` returns a new model
of plain layers whose weights are the effective ones: for inference and export.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cwn_bench.nn.layers import CWNConv2d, CWNLinear, WNConv2d, WNLinear, _Reparameterized

METHODS = ("plain", "wn", "cwn")
_LAYERS = {
    "wn": {nn.Conv2d: WNConv2d, nn.Linear: WNLinear},
    "cwn": {nn.Conv2d: CWNConv2d, nn.Linear: CWNLinear},
}


def _plain_type(module: nn.Module) -> type[nn.Module] | None:
    for plain in (nn.Conv2d, nn.Linear):
        if isinstance(module, plain):
            return plain
    return None


def _constructor_args(module: nn.Module, plain: type[nn.Module]) -> dict[str, Any]:
    weight = module.v if isinstance(module, _Reparameterized) else module.weight
    common = {"bias": module.bias is not None, "device": weight.device, "dtype": weight.dtype}
    if plain is nn.Linear:
        return {"in_features": module.in_features, "out_features": module.out_features, **common}
    return {
        "in_channels": module.in_channels, "out_channels": module.out_channels,
        "kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
        "dilation": module.dilation, "groups": module.groups, "padding_mode": module.padding_mode,
        **common,
    }


@torch.no_grad()
def _rebuild(module: nn.Module, method: str, layer_kwargs: dict[str, Any]) -> nn.Module:
    plain = _plain_type(module)
    target = plain if method == "plain" else _LAYERS[method][plain]
    new = target(**_constructor_args(module, plain), **(layer_kwargs if method == "cwn" else {}))
    (new.weight if method == "plain" else new.v).copy_(module.weight)
    if module.bias is not None:
        new.bias.copy_(module.bias)
    new.train(module.training)
    return new


def convert(model: nn.Module, method: str, exclude: Iterable[str] = (), **layer_kwargs: Any) -> nn.Module:
    """Re-parameterise every conv/linear of ``model`` in place and return it.

    ``method``: ``plain`` (WN/CWN layers become plain ones with their effective weight),
    ``wn`` or ``cwn``.  ``exclude``: qualified module names (``"conv1"``, ``"fc"``) left as
    they are.  ``layer_kwargs`` (``backend=``, ``eps=``) go to the CWN layers.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if isinstance(model, (nn.Conv2d, nn.Linear)):
        raise TypeError("convert() replaces children; wrap a single layer in nn.Sequential first")
    excluded = set(exclude)
    for name, module in list(model.named_modules()):
        if name in excluded or _plain_type(module) is None:
            continue
        already = isinstance(module, _Reparameterized)
        wanted = None if method == "plain" else _LAYERS[method][_plain_type(module)]
        if (method == "plain" and not already) or (already and type(module) is wanted):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, _rebuild(module, method, layer_kwargs))
    return model


def fold(model: nn.Module) -> nn.Module:
    """A new model, equivalent to ``model``, with every WN/CWN layer folded into a plain
    ``nn.Conv2d`` / ``nn.Linear``; ``model`` itself is left untouched."""
    return convert(copy.deepcopy(model), "plain")
