"""``DataModule``: what every backend hands the training loop.

A backend yields uint8 batches ``[B, C, S, S]`` (any device) with int labels and the number
of corrupt images it skipped; this base class moves them to the device, normalises them
(:class:`~cwn_bench.data.transforms.Normalizer`) and counts the skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from cwn_bench.config import Config
from cwn_bench.data import sharding
from cwn_bench.data.augment import EVAL
from cwn_bench.data.sources import Source
from cwn_bench.data.transforms import Normalizer, feature_stats, feature_sums
from cwn_bench.errors import UserError

RawBatch = tuple[Tensor, Tensor, int]  # uint8 images [B, C, S, S], labels [B], skipped
Stats = tuple[Tensor, Tensor]  # the train split's per-feature mean and std [C, S, S], float32 on the CPU


def image_shape(cfg: Config) -> tuple[int, int, int]:
    """Per-sample shape ``(C, S, S)``: 1 channel with ``data.grayscale``, S = ``data.image_size``."""
    return (1 if cfg.data.grayscale else 3, cfg.data.image_size, cfg.data.image_size)


class DataModule:
    """Train and val batches for one rank.

    Attributes: ``num_classes``; ``in_shape`` (per-sample shape, e.g. ``(3, 224, 224)``);
    ``steps_per_epoch`` (full train batches per rank, equal on all ranks); ``train_size`` /
    ``val_size`` (whole splits); ``skipped`` (corrupt images skipped so far); ``stats``
    (the :data:`Stats` in use with ``data.normalize: dataset``, else None)."""

    def __init__(self, cfg: Config, rank: int, world_size: int, device: torch.device, *, num_classes: int,
                 in_shape: tuple[int, ...], train_size: int, val_size: int) -> None:
        self.cfg, self.rank, self.world_size, self.device = cfg, rank, world_size, device
        self.num_classes, self.in_shape = num_classes, in_shape
        self.train_size, self.val_size = train_size, val_size
        self.batch_size = cfg.train.batch_size
        self.steps_per_epoch = sharding.steps_per_epoch(train_size, self.batch_size, world_size)
        self.skipped = 0
        self.holdout_size = 0  # data.holdout: samples of the train split held out (not in train_size)
        self.splits: dict[str, Any] = {}  # split seeds and the holdout size, for run.json
        self.stats: Stats | None = None
        self.normalize = Normalizer.imagenet(in_shape[0], device, cfg.train.channels_last)

    def use_dataset_stats(self, stats: Stats | None = None) -> None:
        """Standardise each input feature with the train split's mean and std: ``stats`` (saved
        by an earlier start of the run) or, when None, :meth:`dataset_stats`."""
        self.stats = self.dataset_stats() if stats is None else stats
        self.normalize = Normalizer(*self.stats, self.device, self.cfg.train.channels_last)

    def dataset_stats(self) -> Stats:
        """The train split's per-feature mean and std with the evaluation crop. In a
        torch.distributed group (a collective: every rank calls this) each rank sums every
        ``world_size``-th batch of the split and an all_reduce adds the sums; the sums are
        exact integers, so the result is bitwise the same for any number of ranks, and each
        rank decodes 1/world_size of the split. An unreadable image in one rank's share stops
        every rank with its message (the others would otherwise wait in the all_reduce until
        the group's timeout, or fail there with a connection error)."""
        shared = self.world_size > 1 and dist.is_available() and dist.is_initialized()
        plan = self._plain_plan()[self.rank::self.world_size] if shared else self._plain_plan()
        sums, problem = torch.zeros(3, *self.in_shape, dtype=torch.int64), None
        try:
            sums = feature_sums((images for images, _, _ in self._raw_train_plain(plan)), self.in_shape)
        except UserError as err:
            if not shared:
                raise
            problem = str(err)
        if shared:
            problems: list[str | None] = [None] * self.world_size
            dist.all_gather_object(problems, problem)  # a few bytes per rank
            if (first := next((p for p in problems if p is not None), None)) is not None:
                raise UserError(first)
            sums = sums.to(self.device)  # [3, C, S, S] int64: 3.6 MB at 3x224x224
            dist.all_reduce(sums)
        return feature_stats(sums.cpu())

    def train_batches(self, epoch: int, start_step: int = 0,
                      stop_step: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Float images ``[B, *in_shape]`` and int64 labels ``[B]`` on the device; batches
        ``start_step, ..., stop_step - 1`` (default ``steps_per_epoch - 1``) of ``epoch`` (the
        others are not decoded; a pass stopped early instead leaves its prefetched batches to
        be decoded and dropped). Order and augmentation depend only on (seed, epoch, rank, world_size)."""
        plan = sharding.train_batches(self.train_size, self.batch_size, self.cfg.seed, epoch, self.rank,
                                      self.world_size)[start_step:stop_step]
        yield from self._finish(self._raw_train(epoch, plan))

    def val_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's contiguous share of the val split (every image exactly once across ranks)."""
        yield from self._finish(self._raw_val(sharding.val_batches(self.val_size, self.batch_size, self.rank,
                                                                     self.world_size)))

    def train_samples(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """Train samples ``indices`` with the evaluation crop, normalised, on the device, as one
        batch: float images ``[N, *in_shape]`` and int64 labels ``[N]`` (e.g. a fixed probe set,
        read once before training; corrupt images skipped here are not added to ``skipped``)."""
        b = self.batch_size
        parts = [(self.normalize(images.to(self.device)), labels.to(self.device, torch.int64))
                 for images, labels, _ in self._raw_train_plain([indices[i:i + b] for i in range(0, len(indices), b)])]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def holdout_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """As :meth:`val_batches`, over the holdout split (``data.holdout``; none without it)."""
        yield from self._finish(self._raw_holdout(sharding.val_batches(self.holdout_size, self.batch_size, self.rank,
                                                                         self.world_size) if self.holdout_size else []))

    def _finish(self, raw: Iterator[RawBatch]) -> Iterator[tuple[Tensor, Tensor]]:
        non_blocking = self.device.type == "cuda"
        for images, labels, skipped in raw:
            self.skipped += skipped
            images = images.to(self.device, non_blocking=non_blocking)
            yield self.normalize(images), labels.to(self.device, torch.int64, non_blocking=non_blocking)

    # backends implement these three
    def _raw_train(self, epoch: int, plan: list[list[int]]) -> Iterator[RawBatch]:
        """Train batches of sample indices ``plan`` with ``epoch``'s augmentation."""
        raise NotImplementedError

    def _raw_val(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        """Val batches of indices ``plan``, evaluation crop."""
        raise NotImplementedError

    def _raw_train_plain(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        """Train batches of indices ``plan`` with the evaluation crop (for dataset statistics)."""
        raise NotImplementedError

    def _raw_holdout(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        """Holdout batches of indices ``plan``, evaluation crop (backends with ``data.holdout``)."""
        raise NotImplementedError

    def _plain_plan(self) -> list[list[int]]:
        """The whole train split in order, in batches (the last one may be short)."""
        n, b = self.train_size, self.batch_size
        return [list(range(s, min(s + b, n))) for s in range(0, n, b)]


class SourceData(DataModule):
    """A data module over train and val sources (image files or in-memory arrays); a backend
    implements only :meth:`_load`."""

    def __init__(self, cfg: Config, rank: int, world_size: int, device: torch.device, train: Source, val: Source,
                 num_classes: int, holdout: Source | None = None) -> None:
        super().__init__(cfg, rank, world_size, device, num_classes=num_classes, in_shape=image_shape(cfg),
                         train_size=len(train), val_size=len(val))
        self.train_source, self.val_source, self.holdout_source = train, val, holdout
        self.holdout_size = len(holdout) if holdout is not None else 0

    def _load(self, source: Source, plan: list[list[int]], epoch: int) -> Iterator[RawBatch]:
        """Batches of ``source``'s samples ``plan`` with :func:`cwn_bench.data.augment.box`'s
        crops for ``epoch`` (``EVAL``: evaluation crop)."""
        raise NotImplementedError

    def _raw_train(self, epoch: int, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._load(self.train_source, plan, epoch)

    def _raw_val(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._load(self.val_source, plan, EVAL)

    def _raw_train_plain(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._load(self.train_source, plan, EVAL)

    def _raw_holdout(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._load(self.holdout_source, plan, EVAL)
