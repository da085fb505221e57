"""Name -> model, then ``cwn_bench.nn.convert`` to the chosen re-parameterisation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from cwn_bench.config import ModelConfig
from cwn_bench.models import googlenet, googlenet_bn, mlp, resnet, vgg
from cwn_bench.nn import convert, initialize
from cwn_bench.nn.nnn import DEFAULT_EPS as NNN_EPS
from cwn_bench.nn.nnn import DEFAULT_INTERVAL as NNN_INTERVAL


@dataclass(frozen=True)
class _Spec:
    make: Callable[..., nn.Module]  # (num_classes, in_shape, **options) -> plain model
    first: str  # qualified name of the first linear map (keep_first_plain)
    classifier: tuple[str, ...]  # the classifier's linear maps (keep_classifier_plain)
    options: tuple[str, ...] = ()  # the keyword options of build() that make takes
    # (model, init) -> None: what the authors' WN/CWN variant of the net initialises differently
    reparam_init: Callable[[nn.Module, str], None] | None = None


_SPECS = {
    "googlenet_bn": _Spec(googlenet_bn.GoogLeNetBN, "stem.0.conv", ("fc",), ("relu_before_bn",)),
    "googlenet": _Spec(googlenet.make, "conv1.conv", ("fc",), ("aux_logits",)),
    "resnet56": _Spec(resnet.resnet56, "stem.conv", ("fc",)),
    # the authors' vggA_CWN/WN.lua keep both linear maps of the classifier plain
    "vgg_a": _Spec(vgg.VGGA, "features.0", ("classifier.fc1", "classifier.fc2"),
                   reparam_init=vgg.authors_reparam_init),
    "mlp": _Spec(mlp.MLP, "fc1", ("classifier",), ("hidden", "batchnorm"), reparam_init=mlp.authors_reparam_init),
}
NAMES = tuple(_SPECS)


def build(name: str, num_classes: int, method: str = "plain", *, in_shape: tuple[int, ...] = (3, 224, 224),
          hidden: Sequence[int] = (128, 64, 48, 48), keep_first_plain: bool = False,
          keep_classifier_plain: bool = False, aux_logits: bool = False, backend: str = "auto",
          init: str = "default", scale: str = "learned", scale_value: float = 1.0, batchnorm: bool = False,
          relu_before_bn: bool = True, nnn_interval: int = NNN_INTERVAL, nnn_eps: float = NNN_EPS,
          nnn_first_plain: bool = True) -> nn.Module:
    """Build model ``name`` for inputs ``[B, *in_shape]`` and ``num_classes`` outputs, drawn with
    ``init`` (``cwn_bench.nn.init``; ``default``: the authors' init of that model), with every
    conv/linear re-parameterised by ``method`` (plain | wn | cwn | nnn | ws) except the first
    and/or the classifier's linear maps when asked (and, for ``nnn`` with ``nnn_first_plain``,
    the first, as the authors' NNN MLP). ``hidden`` and ``batchnorm`` are used by ``mlp``,
    ``aux_logits`` by ``googlenet``, ``relu_before_bn`` by ``googlenet_bn``; ``backend`` chooses
    the CWN implementation, ``scale``/``scale_value`` the WN/CWN ``g``, ``nnn_interval``/``nnn_eps``
    NNN's re-whitening (see README, model keys)."""
    if name not in _SPECS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(NAMES)}")
    spec = _SPECS[name]
    given = {"hidden": tuple(hidden), "aux_logits": aux_logits, "batchnorm": batchnorm,
             "relu_before_bn": relu_before_bn}
    model = initialize(spec.make(num_classes, tuple(in_shape), **{k: given[k] for k in spec.options}), init)
    authors_nnn = method == "nnn" and nnn_first_plain and isinstance(model.get_submodule(spec.first), nn.Linear)
    exclude = [spec.first] if keep_first_plain or authors_nnn else []
    exclude += list(spec.classifier) if keep_classifier_plain else []
    # convert checks ``method`` (ValueError naming the choices); each option reaches the layers that take it
    model = convert(model, method, exclude=exclude, backend=backend, scale=scale, scale_value=scale_value,
                    nnn_interval=nnn_interval, nnn_eps=nnn_eps)
    if spec.reparam_init is not None and method in ("wn", "cwn"):
        spec.reparam_init(model, init)
    return model


def from_config(model_cfg: ModelConfig, num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
    """:func:`build` with the options of ``model_cfg`` (``model:`` section of a config)."""
    options = ("hidden", "keep_first_plain", "keep_classifier_plain", "aux_logits", "backend", "init", "scale",
               "scale_value", "batchnorm", "relu_before_bn", "nnn_interval", "nnn_eps", "nnn_first_plain")
    return build(model_cfg.name, num_classes, model_cfg.method, in_shape=in_shape,
                 **{k: getattr(model_cfg, k) for k in options})
