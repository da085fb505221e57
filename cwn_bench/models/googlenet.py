"""torchvision's GoogLeNet (Inception v1 with BN), from scratch, for any input channel count."""

from __future__ import annotations

from torch import nn
from torchvision.models import GoogLeNet


def make(num_classes: int, in_shape: tuple[int, ...] = (3, 224, 224), aux_logits: bool = False) -> nn.Module:
    """``torchvision.models.GoogLeNet`` with random init and no input re-scaling; in train mode
    with ``aux_logits`` it returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``."""
    model = GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, transform_input=False, init_weights=True)
    if in_shape[0] != 3:
        old = model.conv1.conv
        model.conv1.conv = nn.Conv2d(in_shape[0], old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    return model
