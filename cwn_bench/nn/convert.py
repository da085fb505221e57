"""Swap the linear maps of any model between plain, WN, CWN, NNN and WS, and fold back.

``convert(model, "cwn")`` replaces every ``nn.Conv2d`` / ``nn.Linear`` in place, keeping
module names (so state_dict keys change only from ``weight`` to ``v``/``g``), with ``v``
copied from the existing weight (the effective one when the layer is already
re-parameterised) and ``g`` set to ``scale_value`` (1).  ``fold(model)`` returns a new model
of plain layers whose weights and biases are the effective ones: for inference and export.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cwn_bench.errors import UserError
from cwn_bench.nn.layers import (
    CWNConv2d, CWNLinear, WNConv2d, WNLinear, WSConv2d, WSLinear, _Reparameterized)
from cwn_bench.nn.nnn import NNNLinear

METHODS = ("plain", "wn", "cwn", "nnn", "ws")
_LAYERS: dict[str, dict[type[nn.Module], type[nn.Module]]] = {
    "wn": {nn.Conv2d: WNConv2d, nn.Linear: WNLinear},
    "cwn": {nn.Conv2d: CWNConv2d, nn.Linear: CWNLinear},
    "nnn": {nn.Linear: NNNLinear},  # linear layers only, as the paper (convs are an error)
    "ws": {nn.Conv2d: WSConv2d, nn.Linear: WSLinear},
}
_OPTIONS = {option for layers in _LAYERS.values() for cls in layers.values() for option in cls.options}


def _plain_type(module: nn.Module) -> type[nn.Module] | None:
    for plain in (nn.Conv2d, nn.Linear):
        if isinstance(module, plain):
            return plain
    return None


def _constructor_args(module: nn.Module, plain: type[nn.Module], bias: bool) -> dict[str, Any]:
    weight = module.v if isinstance(module, _Reparameterized) else module.weight
    common = {"bias": bias, "device": weight.device, "dtype": weight.dtype}
    if plain is nn.Linear:
        return {"in_features": module.in_features, "out_features": module.out_features, **common}
    return {
        "in_channels": module.in_channels, "out_channels": module.out_channels,
        "kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding,
        "dilation": module.dilation, "groups": module.groups, "padding_mode": module.padding_mode,
        **common,
    }


@torch.no_grad()
def _rebuild(module: nn.Module, target: type[nn.Module], layer_kwargs: dict[str, Any]) -> nn.Module:
    plain = _plain_type(module)
    bias = module.folded_bias() if isinstance(module, _Reparameterized) else module.bias
    options = getattr(target, "options", ())
    new = target(**_constructor_args(module, plain, bias is not None or target is NNNLinear),
                 **{k: v for k, v in layer_kwargs.items() if k in options})
    (new.v if isinstance(new, _Reparameterized) else new.weight).copy_(module.weight)
    if new.bias is not None and bias is not None:
        new.bias.copy_(bias)
    elif new.bias is not None:  # NNN's c for a bias-free linear
        new.bias.zero_()
    new.train(module.training)
    return new


def convert(model: nn.Module, method: str, exclude: Iterable[str] = (), **layer_kwargs: Any) -> nn.Module:
    """Re-parameterise every conv/linear of ``model`` in place and return it.

    ``method``: ``plain`` (re-parameterised layers become plain ones with their effective
    weight and bias), ``wn``, ``cwn``, ``ws`` or ``nnn`` (linear layers only: a conv not in
    ``exclude`` is a :class:`UserError` naming it).  ``exclude``: qualified module names
    (``"conv1"``, ``"fc"``) left as they are.  ``layer_kwargs`` go to the layers that take
    them (each class's ``options``): ``backend=``, ``eps=`` (CWN; ``eps`` also WS),
    ``scale=``, ``scale_value=`` (WN, CWN), ``nnn_interval=``, ``nnn_eps=`` (NNN).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    unknown = set(layer_kwargs) - _OPTIONS
    if unknown:
        raise TypeError(f"convert() got unknown layer options {sorted(unknown)}; known: {sorted(_OPTIONS)}")
    if isinstance(model, (nn.Conv2d, nn.Linear)):
        raise TypeError("convert() replaces children; wrap a single layer in nn.Sequential first")
    excluded = set(exclude)
    todo = [(name, m) for name, m in model.named_modules() if name not in excluded and _plain_type(m) is not None]
    if method != "plain":
        for name, module in todo:
            if _plain_type(module) not in _LAYERS[method]:
                raise UserError(f"model.method: {method} re-parameterises linear layers only (the paper's MLPs), "
                                f"but layer {name!r} is a {_plain_type(module).__name__}; choose a method in "
                                f"{', '.join(m for m in METHODS if m != method)} or an MLP")
    for name, module in todo:
        already = isinstance(module, _Reparameterized)
        target = _plain_type(module) if method == "plain" else _LAYERS[method][_plain_type(module)]
        if (method == "plain" and not already) or (already and type(module) is target):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, _rebuild(module, target, layer_kwargs))
    return model


def fold(model: nn.Module) -> nn.Module:
    """A new model, equivalent to ``model``, with every re-parameterised layer folded into a
    plain ``nn.Conv2d`` / ``nn.Linear``; ``model`` itself is left untouched."""
    return convert(copy.deepcopy(model), "plain")
