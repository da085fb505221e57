"""Where samples come from: image files (checked, decoded by PIL) or in-memory uint8 arrays
(CIFAR/SVHN). A source knows its length, labels and how to give sample ``i`` as a PIL image;
with ``skip_corrupt`` an unreadable sample is replaced by the next readable one (wrapping),
which keeps batches full and the replacement a pure function of the files. A source remembers
the samples found unreadable (``unreadable``, per process: the main one, or each DataLoader
worker for itself) and passes over them later without reading them again."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from PIL import Image

from cwn_bench.data.images import CorruptImageError, decode, read_encoded

T = TypeVar("T")


class FileSource:
    """Image files and labels from :func:`cwn_bench.data.folder.scan_split`.

    Paths and labels are kept in two numpy buffers, not Python lists: a DataLoader worker
    reading a list's items writes their reference counts and so copies every page they sit
    on (measured: 167 MB per worker for ImageNet's 1.28M train paths, x workers x ranks per
    node), while a buffer stays shared copy-on-write with the main process."""

    def __init__(self, files: list[str], labels: list[int], grayscale: bool) -> None:
        self._paths = np.array([os.fsencode(f) for f in files], dtype=np.bytes_)  # [N] fixed-width bytes
        self.labels = np.asarray(labels, dtype=np.int64)
        self.grayscale = grayscale
        self.unreadable: set[int] = set()  # indices first_readable found unreadable

    def __len__(self) -> int:
        return len(self._paths)

    def subset(self, indices: list[int]) -> FileSource:
        """The samples ``indices`` (in that order) as a source of their own."""
        return FileSource([self.path(i) for i in indices], self.labels[indices].tolist(), self.grayscale)

    def path(self, i: int) -> str:
        return os.fsdecode(self._paths[i])

    def image(self, i: int) -> Image.Image:
        path = self.path(i)
        return decode(read_encoded(path), path, self.grayscale)


class ArraySource:
    """``images`` uint8 ``[N, H, W, C]`` and ``labels`` ``[N]`` held in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, grayscale: bool) -> None:
        self.images, self.labels = np.ascontiguousarray(images), labels.astype(np.int64)
        self.grayscale = grayscale
        self.unreadable: set[int] = set()  # stays empty: arrays in memory always read

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: list[int]) -> ArraySource:
        """The samples ``indices`` (in that order) as a source of their own."""
        return ArraySource(self.images[indices], self.labels[indices], self.grayscale)

    def image(self, i: int) -> Image.Image:
        img = Image.fromarray(self.images[i])
        return img.convert("L" if self.grayscale else "RGB")


Source = FileSource | ArraySource


def first_readable(source: Source, i: int, read: Callable[[int], T], skip_corrupt: bool) -> tuple[int, T, int]:
    """``(index, read(index), skipped)`` for sample ``i`` of ``source``, or with ``skip_corrupt``
    the next readable one (wrapping) and how many unreadable ones were passed over; those are
    added to ``source.unreadable`` and passed over unread next time (same index, same count).
    Without ``skip_corrupt`` the :class:`CorruptImageError` of sample ``i`` propagates."""
    n = len(source)
    for skipped in range(n):
        j = (i + skipped) % n
        if j in source.unreadable:
            continue
        try:
            return j, read(j), skipped
        except CorruptImageError:
            if not skip_corrupt:
                raise
            source.unreadable.add(j)
    raise CorruptImageError(f"all {n} images", "none could be decoded")
