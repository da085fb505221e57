"""Layer shapes for the micro-benchmark: parsing, naming, and the named shape sets.

Shape syntax (also how shapes are named in the JSONL, prefixed by their set):

    [SET:]NxCxHxW-OxKHxKW[sS][pP]   a conv: batch N, C input channels, an H x W input map,
                                    O filters of KH x KW, stride S (default 1), zero padding
                                    P (default KH // 2, "same" for odd kernels)
    [SET:]NxC-O                     a linear layer: batch N, C inputs, O outputs

e.g. ``paper:64x128x32x32-128x3x3`` (the paper's 3x3 conv), ``test:2x8x8x8-8x3x3``,
``googlenet_bn:64x3x224x224-64x7x7s2p3``, ``googlenet_bn:64x1024-1000``. Without a
``SET:`` prefix a shape is put in the set ``cli``.

Named sets: ``paper`` (one shape) and ``googlenet_bn`` (every distinct conv and linear of
that model at 224 px, batch 64 and 256, found by running the model once on the meta
device with forward hooks).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from cwn_bench.errors import UserError, brief

SETS = ("paper", "googlenet_bn")
GOOGLENET_BATCHES = (64, 256)
_NAME = r"(?:(?P<set>[A-Za-z_][\w.-]*):)?"
_CONV = re.compile(_NAME + r"(?P<n>\d+)x(?P<c>\d+)x(?P<h>\d+)x(?P<w>\d+)-(?P<o>\d+)x(?P<kh>\d+)x(?P<kw>\d+)"
                   r"(?:s(?P<s>\d+))?(?:p(?P<p>\d+))?$")
_LINEAR = re.compile(_NAME + r"(?P<n>\d+)x(?P<c>\d+)-(?P<o>\d+)$")
SYNTAX = "[SET:]NxCxHxW-OxKHxKW[sS][pP] (conv) or [SET:]NxC-O (linear)"


@dataclass(frozen=True)
class LayerShape:
    """One layer to time. ``kind`` is ``conv`` (input ``[batch, cin, height, width]``,
    weight ``[cout, cin, kh, kw]``) or ``linear`` (input ``[batch, cin]``, weight
    ``[cout, cin]``; the spatial fields are 0)."""

    set: str
    kind: str
    batch: int
    cin: int
    cout: int
    height: int = 0
    width: int = 0
    kh: int = 0
    kw: int = 0
    stride: int = 1
    padding: int = 0

    @property
    def name(self) -> str:
        """``SET:dims`` in the syntax above (stride and padding only when not the default)."""
        if self.kind == "linear":
            return f"{self.set}:{self.batch}x{self.cin}-{self.cout}"
        dims = f"{self.batch}x{self.cin}x{self.height}x{self.width}-{self.cout}x{self.kh}x{self.kw}"
        dims += f"s{self.stride}" if self.stride != 1 else ""
        dims += f"p{self.padding}" if self.padding != self.kh // 2 else ""
        return f"{self.set}:{dims}"

    @property
    def fan_in(self) -> int:
        """Length of one weight row: ``cin * kh * kw`` (conv) or ``cin`` (linear)."""
        return self.cin * self.kh * self.kw if self.kind == "conv" else self.cin

    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.cin, self.height, self.width) if self.kind == "conv" else (self.batch, self.cin)


PAPER = LayerShape("paper", "conv", 64, 128, 128, 32, 32, 3, 3, 1, 1)


MAX_ELEMENTS = 1 << 31  # input, weight or output elements of one timed layer


def _checked(shape: LayerShape, spec: str) -> LayerShape:
    """``shape`` if it can run: sizes of at least 1, a kernel that fits its padded input,
    and tensors of at most MAX_ELEMENTS elements; else a UserError naming ``spec``."""
    sizes = [shape.batch, shape.cin, shape.cout] + ([shape.height, shape.width, shape.kh, shape.kw, shape.stride]
                                                    if shape.kind == "conv" else [])
    if min(sizes) < 1:
        raise UserError(f"--shapes {brief(spec)}: every size must be at least 1")
    out_h = (shape.height + 2 * shape.padding - shape.kh) // shape.stride + 1
    out_w = (shape.width + 2 * shape.padding - shape.kw) // shape.stride + 1
    if shape.kind == "conv" and (out_h < 1 or out_w < 1):
        raise UserError(f"--shapes {brief(spec)}: the {shape.kh}x{shape.kw} kernel is larger than the "
                        f"{shape.height}x{shape.width} input padded by {shape.padding}; expected a kernel that fits")
    weight = shape.cout * shape.fan_in
    output = shape.batch * shape.cout * (out_h * out_w if shape.kind == "conv" else 1)
    if max(math.prod(shape.input_shape()), weight, output) > MAX_ELEMENTS:
        raise UserError(f"--shapes {brief(spec)}: more than {MAX_ELEMENTS} elements in one tensor; expected a "
                        "layer that fits in memory")
    return shape


def parse_shape(spec: str) -> LayerShape:
    """One shape from the syntax in the module docstring; a :class:`UserError` otherwise."""
    if m := _CONV.match(spec):
        kh = int(m["kh"])
        dims = {k: int(m[k]) for k in ("n", "c", "h", "w", "o", "kw")}
        return _checked(LayerShape(m["set"] or "cli", "conv", dims["n"], dims["c"], dims["o"], dims["h"], dims["w"],
                                   kh, dims["kw"], int(m["s"] or 1), int(m["p"]) if m["p"] else kh // 2), spec)
    if m := _LINEAR.match(spec):
        return _checked(LayerShape(m["set"] or "cli", "linear", int(m["n"]), int(m["c"]), int(m["o"])), spec)
    raise UserError(f"--shapes {brief(spec)}: expected a set ({', '.join(SETS)}) or a shape {SYNTAX}")


def resolve_shapes(items: list[str]) -> list[LayerShape]:
    """Expand set names and parse shapes, keeping the order and dropping repeats."""
    shapes: list[LayerShape] = []
    for item in items:
        found = [PAPER] if item == "paper" else googlenet_bn_shapes() if item == "googlenet_bn" else [parse_shape(item)]
        shapes += [s for s in found if s not in shapes]
    return shapes


def _square(value: int | tuple[int, ...], what: str, module: nn.Module) -> int:
    values = (value,) if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise ValueError(f"{module!r}: only square {what} can be named as a shape, got {value}")
    return values[0]


def trace_layer_shapes(model: nn.Module, in_shape: tuple[int, ...], batches: tuple[int, ...], set_name: str
                       ) -> list[LayerShape]:
    """Every distinct conv/linear of ``model`` (input ``[B, *in_shape]``) once per batch
    size, in the order the forward reaches them. The model runs once on the meta device."""
    seen: list[LayerShape] = []

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if isinstance(module, nn.Conv2d):
            if module.groups != 1 or _square(module.dilation, "dilation", module) != 1:
                raise ValueError(f"{module!r}: grouped or dilated convs are not benchmarked")
            kh, kw = module.kernel_size
            shape = LayerShape(set_name, "conv", 1, module.in_channels, module.out_channels, x.shape[2], x.shape[3],
                               kh, kw, _square(module.stride, "stride", module),
                               _square(module.padding, "padding", module))
        else:
            shape = LayerShape(set_name, "linear", 1, module.in_features, module.out_features)
        if shape not in seen:
            seen.append(shape)

    model = model.to("meta").eval()
    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.empty(1, *in_shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return [LayerShape(**{**s.__dict__, "batch": b}) for b in batches for s in seen]


def googlenet_bn_model(num_classes: int = 1000, method: str = "plain", image_size: int = 224) -> tuple[nn.Module, str]:
    """``(model, source)``: ``cwn_bench.models``' googlenet_bn when it can be imported,
    else torchvision's GoogLeNet (also with BN, no auxiliary heads) re-parameterised by
    ``cwn_bench.nn.convert``. ``source`` names which one was built."""
    try:
        from cwn_bench.models import build
    except ImportError:  # a bare checkout without the config's dependencies (pyyaml)
        import torchvision

        from cwn_bench.nn import convert

        model = torchvision.models.googlenet(num_classes=num_classes, aux_logits=False, init_weights=True)
        return convert(model, method), "torchvision.googlenet"
    model = build("googlenet_bn", num_classes, method, in_shape=(3, image_size, image_size))
    return model, "cwn_bench.models.googlenet_bn"


def model_set_name(source: str) -> str:
    """``googlenet_bn``, or ``tv_googlenet`` when :func:`googlenet_bn_model` fell back."""
    return "googlenet_bn" if source.endswith("googlenet_bn") else "tv_googlenet"


def googlenet_bn_shapes(batches: tuple[int, ...] = GOOGLENET_BATCHES) -> list[LayerShape]:
    """The ``googlenet_bn`` set: its distinct convs and linears at 224 px for each batch
    (named ``tv_googlenet:...`` when torchvision's GoogLeNet stood in for it)."""
    with torch.device("meta"):
        model, source = googlenet_bn_model()
    return trace_layer_shapes(model, (3, 224, 224), batches, model_set_name(source))
