"""The Extended Yale Face Database B, cropped faces as published (``CroppedYale``; no download).

``data.root`` is the ``CroppedYale`` folder: one folder per subject, ``yaleB01`` ... ``yaleB39``
(38 subjects: there is no yaleB14), each holding 64 grey 168x192 PGM images named
``yaleBNN_P00A+AAAE+EE.pgm`` (azimuth, elevation of the light) plus one ambient-light image
``yaleBNN_P00_Ambient.pgm``, which is skipped (as are the published ``*.pgm.bad`` files,
which are not ``.pgm``). Subjects are the classes, in folder-name order.

Split as the paper (Huang et al. 2017, Sec. 4.1, after NNN's protocol): 10 test images per
subject, chosen by a generator seeded from ``data.split_seed``; the rest is the train split.
Images are held in memory at their stored size (2414 x 192 x 168 bytes, 78 MB) and resized by
the loader (``data.image_size: 32``, ``train_crop: resize`` for the paper's 32x32 input).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cwn_bench.data.augment import mix_seed
from cwn_bench.data.images import PIL_ERRORS, bombs_refused
from cwn_bench.data.sources import ArraySource
from cwn_bench.errors import UserError, one_line

TEST_PER_SUBJECT = 10
SUBJECT = re.compile(r"yaleB\d\d")
LAYOUT = ("the CroppedYale folder of the Extended Yale Face Database B: ROOT/yaleBNN/yaleBNN_P00A+AAAE+EE.pgm, "
          "one folder per subject (38), 64 PGM images each")
TEST_TAG = 0x7E57  # mixed with data.split_seed: the test split's own stream


def _read(path: Path) -> np.ndarray:
    try:
        with bombs_refused(), Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except PIL_ERRORS as err:
        raise UserError(f"{path}: unreadable PGM image ({one_line(err, 200) or type(err).__name__}); "
                        f"expected {LAYOUT}") from None


def scan(root: Path) -> list[tuple[str, list[Path]]]:
    """``[(subject, its non-ambient .pgm files, sorted)]`` in subject order, the layout checked."""
    if not root.is_dir():
        raise UserError(f"data.root {root}: no such folder; expected {LAYOUT}")
    subjects = sorted(p for p in root.iterdir() if p.is_dir() and SUBJECT.fullmatch(p.name))
    if not subjects:
        hint = f" ({root / 'CroppedYale'} exists: point data.root at it)" if (root / "CroppedYale").is_dir() else ""
        raise UserError(f"{root}: no yaleBNN subject folders{hint}; expected {LAYOUT}")
    found = []
    for folder in subjects:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".pgm" and "Ambient" not in p.name and p.is_file())
        if len(files) <= TEST_PER_SUBJECT:
            raise UserError(f"{folder}: {len(files)} non-ambient .pgm images; expected more than {TEST_PER_SUBJECT} "
                            f"(10 go to the test split); expected {LAYOUT}")
        found.append((folder.name, files))
    return found


def load(root: str | Path, grayscale: bool, seed: int) -> tuple[ArraySource, ArraySource, list[str]]:
    """Train and test sources (grey uint8 ``[N, H, W]``) and the subject names."""
    subjects = scan(Path(root))
    gen = torch.Generator().manual_seed(mix_seed(seed, TEST_TAG))
    images, labels, test = [], [], []
    first = subjects[0][1][0]
    for label, (_, files) in enumerate(subjects):
        chosen = set(torch.randperm(len(files), generator=gen)[:TEST_PER_SUBJECT].tolist())
        for i, path in enumerate(files):
            image = _read(path)
            if images and image.shape != images[0].shape:
                (h, w), (h0, w0) = image.shape, images[0].shape
                raise UserError(f"{path}: {w}x{h} pixels, but {first} is {w0}x{h0}; expected the cropped "
                                "images, all of one size")
            images.append(image)
            labels.append(label)
            test.append(i in chosen)
    pixels, targets, is_test = np.stack(images), np.asarray(labels), np.asarray(test)
    return (ArraySource(pixels[~is_test], targets[~is_test], grayscale),
            ArraySource(pixels[is_test], targets[is_test], grayscale), [name for name, _ in subjects])
