"""Apply a crop :class:`~cwn_bench.data.augment.Box` to a PIL image, and the per-batch
normalisation done on the device after every backend."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from cwn_bench.data.augment import Box

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# the same statistics for luma (0.299 R + 0.587 G + 0.114 B), used with data.grayscale
IMAGENET_GREY_MEAN, IMAGENET_GREY_STD = (0.459,), (0.226,)
MIN_STD = 1 / 255  # per-feature std floor: a feature varying less than one grey level is not amplified


SCALES = (8, 4, 2)  # the reduced JPEG decodes libjpeg offers (PIL's Image.draft)


def inside(box: Box, width: int, height: int) -> bool:
    """Whether ``box`` lies within a ``width`` x ``height`` image (no zero padding)."""
    return box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height


def decode_scale(box: Box, size: int, width: int, height: int) -> int:
    """The coarsest JPEG decode scale (8, 4, 2, else 1) at which ``box`` of a ``width`` x
    ``height`` image still spans at least ``size`` pixels each way; 1 for a box reaching
    outside the image (zero padding is done at full scale)."""
    if not inside(box, width, height):
        return 1
    return next((s for s in SCALES if min(box.w, box.h) >= s * size), 1)


def crop_resize(img: Image.Image, box: Box, size: int, scale: int = 1) -> Tensor:
    """uint8 ``[C, size, size]`` (C = 1 for ``L`` images): ``box`` of ``img`` (zeros outside
    it), bilinear resize (antialiased), mirror if ``box.flip``. ``scale``: ``img`` was decoded
    at 1/scale of the size ``box`` refers to (:func:`decode_scale`); the same region is
    resized from it by PIL, in fractional pixels; at full scale :func:`resize_region` does it."""
    if scale > 1:
        region = (box.x / scale, box.y / scale, (box.x + box.w) / scale, (box.y + box.h) / scale)
        array = np.array(img.resize((size, size), Image.BILINEAR, box=region))  # [S, S] or [S, S, C]
        out = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        return (out.flip(-1) if box.flip else out).contiguous()
    array = np.array(img.crop((box.x, box.y, box.x + box.w, box.y + box.h)))  # a writable copy, zeros outside
    pixels = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))  # a [C, h, w] view
    return resize_region(pixels, size, box.flip)


def crop_resize_tensor(pixels: Tensor, box: Box, size: int) -> Tensor:
    """:func:`crop_resize` of a uint8 ``[C, H, W]`` image that ``box`` lies within (:func:`inside`)."""
    return resize_region(pixels[:, box.y:box.y + box.h, box.x:box.x + box.w], size, box.flip)


def resize_region(region: Tensor, size: int, flip: bool) -> Tensor:
    """uint8 ``[C, h, w]`` (any strides) -> ``[C, size, size]``: torch's uint8 antialiased
    bilinear resize (3x faster than PIL's on this CPU, within one grey level of it), mirrored if ``flip``."""
    out = F.interpolate(region[None], size=(size, size), mode="bilinear", antialias=True)[0]
    return (out.flip(-1) if flip else out).contiguous()


class Normalizer:
    """uint8 ``[B, C, H, W]`` (or flattened later by the model) -> float ``(x / 255 - mean) / std``
    on the device, channels_last when asked. ``mean``/``std`` broadcast against ``[C, H, W]``:
    ``[C, 1, 1]`` per channel (imagenet) or ``[C, H, W]`` per feature (dataset)."""

    def __init__(self, mean: Tensor, std: Tensor, device: torch.device, channels_last: bool) -> None:
        self.mean = mean.to(device=device, dtype=torch.float32)
        self.inv_std = 1.0 / std.clamp_min(MIN_STD).to(device=device, dtype=torch.float32)
        self._shift, self._scale = self.mean * 255, self.inv_std / 255  # on the uint8 scale
        self.channels_last = channels_last

    @classmethod
    def imagenet(cls, channels: int, device: torch.device, channels_last: bool) -> "Normalizer":
        mean, std = (IMAGENET_GREY_MEAN, IMAGENET_GREY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
        return cls(torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1), device, channels_last)

    def __call__(self, images: Tensor) -> Tensor:
        x = images.float().sub_(self._shift).mul_(self._scale)  # two in-place passes over the batch
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def feature_sums(batches: Iterable[Tensor], shape: tuple[int, ...]) -> Tensor:
    """``[3, *shape]`` int64 over uint8 batches ``[B, *shape]``: the number of images (in every
    element), the sum and the sum of squares of each feature. Integers, so the sums of shards
    add up to exactly the whole split's in any order (255**2 * N < 2**63 for N < 1.4e14)."""
    sums = torch.zeros(3, *shape, dtype=torch.int64)
    for images in batches:
        # int32 squares (at most 255**2) summed into int64 (torch sums integers as int64): half the
        # memory of an int64 copy, 2 x 154 MB for a batch of 256 at 3x224x224
        x = images.cpu().to(torch.int32)
        sums[0] += len(x)
        sums[1] += x.sum(0)
        sums[2] += (x * x).sum(0)
    return sums


def feature_stats(sums: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature mean and std (float32 ``[C, H, W]``, images scaled to [0, 1]) from
    :func:`feature_sums`, computed in float64."""
    count, total, squares = sums.double()
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    return (mean / 255).float(), (std / 255).float()
