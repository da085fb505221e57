"""ImageNet-sized JPEGs for loader benchmarks: ``make_sized_jpegs(out)`` writes
``out/{train,val}/<class>/*.JPEG`` of smooth random colour waves plus noise, 500x375 px by
default (ImageNet's most common size), ~100 KB each at quality 90 like ImageNet's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cwn_bench.data.folder import new_folder
from cwn_bench.errors import UserError


def make_sized_jpegs(out: str | Path, classes: int = 10, per_class: int = 50, width: int = 500, height: int = 375,
                     seed: int = 0) -> Path:
    """Write ``classes * per_class`` train and a tenth as many val JPEGs to ``out`` (absent or empty)."""
    out = new_folder(out)
    if min(classes, per_class, width, height) < 1:
        raise UserError(f"{classes} classes x {per_class} images of {width}x{height} px: expected at least 1 of "
                        "each (--classes, --per-class, --size of 2 or more)")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    for split, count in (("train", per_class), ("val", max(1, per_class // 10))):
        for c in range(classes):
            folder = out / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(count):
                freq = rng.uniform(0.005, 0.05, 6)  # cycles per pixel along x and y, per channel
                waves = np.stack([127 + 100 * np.sin(xx * freq[k] + yy * freq[k + 3]) for k in range(3)], axis=-1)
                pixels = np.clip(waves + rng.normal(0, 20, waves.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:05d}.JPEG", quality=90)
    return out
