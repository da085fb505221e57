"""Where each sample is cropped, as a pure function of (seed, epoch, index).

Every transform of this project is "crop a box of the original image (zero padding outside
it), resize it to ``image_size`` x ``image_size``, maybe mirror it". This module draws the
box and the mirror flag with a ``random.Random`` seeded from (seed, epoch, index), so the
torch and DALI backends crop the same boxes and a resumed epoch repeats the original one.

``train_crop``: ``random_resized`` (torchvision's RandomResizedCrop, scale 0.08-1, ratio
3/4-4/3), ``resize_crop`` (the paper: resize the short side to ``resize_size``, random
``image_size`` crop), ``pad_crop`` (CIFAR: 4 px zero padding, random crop), ``resize``
(whole image, no flip: the MLP protocol). Validation: centre crop of the image resized to
``resize_size`` for the first two, the whole image for the last two.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import NamedTuple

from cwn_bench.config import DataConfig

PAD = 4  # pad_crop padding, pixels
EVAL = -1  # the "epoch" of the deterministic evaluation crop in :func:`box`


class Box(NamedTuple):
    """Crop ``[x, x + w) x [y, y + h)`` of the original image, then mirror if ``flip``."""
    x: int
    y: int
    w: int
    h: int
    flip: bool


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions)."""
    digest = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _random_resized(rng: random.Random, width: int, height: int) -> tuple[int, int, int, int]:
    area, log_lo, log_hi = width * height, math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    ratio = width / height  # fallback: the largest centred crop with an allowed aspect ratio
    w, h = (width, round(width * 3 / 4)) if ratio < 3 / 4 else (round(height * 4 / 3), height) if ratio > 4 / 3 else (width, height)
    return (width - w) // 2, (height - h) // 2, w, h


def _resized_side(cfg: DataConfig, width: int, height: int) -> int:
    """Side in original pixels of an ``image_size`` crop taken after resizing the short side to ``resize_size``."""
    return max(1, min(width, height, round(cfg.image_size * min(width, height) / cfg.resize_size)))


def train_box(cfg: DataConfig, seed: int, epoch: int, index: int, width: int, height: int) -> Box:
    """The training crop of sample ``index`` in ``epoch``."""
    rng = random.Random(mix_seed(seed, epoch, index))
    if cfg.train_crop == "resize":
        return Box(0, 0, width, height, False)
    if cfg.train_crop == "random_resized":
        x, y, w, h = _random_resized(rng, width, height)
    elif cfg.train_crop == "resize_crop":
        w = h = _resized_side(cfg, width, height)
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    else:  # pad_crop
        w, h = width, height
        x, y = rng.randint(-PAD, PAD), rng.randint(-PAD, PAD)
    return Box(x, y, w, h, rng.random() < 0.5)


def val_box(cfg: DataConfig, width: int, height: int) -> Box:
    """The deterministic evaluation crop (also used for dataset statistics)."""
    if cfg.train_crop in ("resize", "pad_crop"):
        return Box(0, 0, width, height, False)
    side = _resized_side(cfg, width, height)
    return Box((width - side) // 2, (height - side) // 2, side, side, False)


def box(cfg: DataConfig, seed: int, epoch: int, index: int, width: int, height: int) -> Box:
    """The crop of sample ``index``: ``epoch``'s training crop, or the evaluation crop for ``EVAL``."""
    return val_box(cfg, width, height) if epoch == EVAL else train_box(cfg, seed, epoch, index, width, height)
