"""A real ImageNet-layout JPEG folder from scikit-learn's bundled digits (no download).

``make_digits_dataset(out)`` writes ``out/{train,val}/<digit>/<index>.jpg``: the 1797 8x8
digits of ``sklearn.datasets.load_digits`` upscaled (bicubic) to ``size`` px RGB JPEGs, one
in five of each class (by position within the class) in ``val`` -> 1442 train / 355 val.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cwn_bench.data.folder import new_folder
from cwn_bench.errors import UserError


def make_digits_dataset(out: str | Path, size: int = 32, val_every: int = 5, quality: int = 95) -> Path:
    """Write the digits JPEG folder to ``out`` (must be absent or empty) and return its path.

    Every ``val_every``-th image of each class goes to ``val``; ``size`` is the side in pixels."""
    from sklearn.datasets import load_digits

    out = new_folder(out)
    if size < 8:
        raise UserError(f"image size {size}: expected at least 8 pixels (the digits are 8x8)")
    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # values 0..16 -> 0..255
    seen = np.zeros(10, dtype=int)
    for index, (image, label) in enumerate(zip(pixels, digits.target)):
        split = "val" if seen[label] % val_every == val_every - 1 else "train"
        seen[label] += 1
        folder = out / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        big = Image.fromarray(image, mode="L").resize((size, size), Image.BICUBIC).convert("RGB")
        big.save(folder / f"{index:04d}.jpg", quality=quality)
    return out
