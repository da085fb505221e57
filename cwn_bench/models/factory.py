"""Name -> model, then ``cwn_bench.nn.convert`` to the chosen re-parameterisation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from cwn_bench.config import ModelConfig
from cwn_bench.models import googlenet, googlenet_bn, mlp, resnet, vgg
from cwn_bench.nn import convert


@dataclass(frozen=True)
class _Spec:
    make: Callable[..., nn.Module]  # (num_classes, in_shape, **options) -> plain model
    first: str  # qualified name of the first linear map (keep_first_plain)
    classifier: str  # qualified name of the last linear map (keep_classifier_plain)
    options: tuple[str, ...] = ()  # the keyword options of build() that make takes


_SPECS = {
    "googlenet_bn": _Spec(googlenet_bn.GoogLeNetBN, "stem.0.conv", "fc"),
    "googlenet": _Spec(googlenet.make, "conv1.conv", "fc", ("aux_logits",)),
    "resnet56": _Spec(resnet.resnet56, "stem.conv", "fc"),
    "vgg_a": _Spec(vgg.VGGA, "features.0", "classifier.fc3"),
    "mlp": _Spec(mlp.MLP, "fc1", "classifier", ("hidden",)),
}
NAMES = tuple(_SPECS)


def build(name: str, num_classes: int, method: str = "plain", *, in_shape: tuple[int, ...] = (3, 224, 224),
          hidden: Sequence[int] = (128, 64, 48, 48), keep_first_plain: bool = False,
          keep_classifier_plain: bool = False, aux_logits: bool = False, backend: str = "auto") -> nn.Module:
    """Build model ``name`` for inputs ``[B, *in_shape]`` and ``num_classes`` outputs, with every
    conv/linear re-parameterised by ``method`` (plain | wn | cwn) except the first and/or the
    classifier when asked. ``hidden`` is used by ``mlp``, ``aux_logits`` by ``googlenet``;
    ``backend`` chooses the CWN implementation."""
    if name not in _SPECS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(NAMES)}")
    spec = _SPECS[name]
    given = {"hidden": tuple(hidden), "aux_logits": aux_logits}
    model = spec.make(num_classes, tuple(in_shape), **{k: given[k] for k in spec.options})
    exclude = [n for n, keep in ((spec.first, keep_first_plain), (spec.classifier, keep_classifier_plain)) if keep]
    # convert checks ``method`` (ValueError naming the choices); backend reaches CWN layers only
    return convert(model, method, exclude=exclude, backend=backend)


def from_config(model_cfg: ModelConfig, num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
    """:func:`build` with the options of ``model_cfg`` (``model:`` section of a config)."""
    return build(model_cfg.name, num_classes, model_cfg.method, in_shape=in_shape, hidden=model_cfg.hidden,
                 keep_first_plain=model_cfg.keep_first_plain, keep_classifier_plain=model_cfg.keep_classifier_plain,
                 aux_logits=model_cfg.aux_logits, backend=model_cfg.backend)
