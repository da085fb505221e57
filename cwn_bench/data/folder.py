"""The ImageNet folder layout: ``ROOT/{train,val}/<class>/<image>``, checked before use."""

from __future__ import annotations

import os
from pathlib import Path

from cwn_bench.errors import UserError

EXTENSIONS = (".jpg", ".jpeg", ".png")  # what both backends decode; other files are ignored
LAYOUT = "ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (ImageNet layout)"


def scan_split(root: str | Path, split: str, classes: list[str] | None = None) -> tuple[list[str], list[int], list[str]]:
    """Image paths (sorted by class, then name), their integer labels and the class names of
    ``root/split``. ``classes``: the train split's class names, which val must use."""
    root = Path(root)
    folder = root / split
    if not root.is_dir():
        raise UserError(f"data.root {root}: no such folder; expected {LAYOUT}")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; expected {LAYOUT}")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not names:
        raise UserError(f"{folder}: no class folders; expected {LAYOUT}")
    if classes is not None and set(names) - set(classes):
        extra = sorted(set(names) - set(classes))[:5]
        raise UserError(f"{folder}: class folders not in train/: {', '.join(extra)}; both splits need the same classes")
    index = {c: i for i, c in enumerate(classes if classes is not None else names)}
    files, labels = [], []
    for name in names:
        with os.scandir(folder / name) as entries:  # file types from the directory listing: no stat per image
            images = sorted(e.path for e in entries if e.name.lower().endswith(EXTENSIONS) and e.is_file())
        if not images:
            raise UserError(f"{folder / name}: empty class folder; expected image files ({', '.join(EXTENSIONS)})")
        files += images
        labels += [index[name]] * len(images)
    return files, labels, classes if classes is not None else names


def new_folder(out: str | Path) -> Path:
    """``out`` as a Path, checked to be absent or an empty folder (a dataset writer's output)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not an empty folder; choose a new output path")
    return out
