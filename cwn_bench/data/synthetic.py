"""``data.loader: synthetic``: random uint8 images and labels made on the device, for the
model's compute-only throughput (no decoding, no host-to-device copy)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from cwn_bench.config import Config
from cwn_bench.data.augment import mix_seed
from cwn_bench.data.module import DataModule, RawBatch, image_shape

POOL = 4  # distinct batches generated once and cycled: generation stays out of the timing


class SyntheticData(DataModule):
    """``data.synthetic_samples`` train images per epoch (a quarter as many for val),
    ``data.num_classes`` classes (default 1000), ``image_size`` square images."""

    def __init__(self, cfg: Config, rank: int, world_size: int, device: torch.device) -> None:
        super().__init__(cfg, rank, world_size, device, num_classes=cfg.data.num_classes or 1000,
                         in_shape=image_shape(cfg), train_size=cfg.data.synthetic_samples,
                         val_size=max(1, cfg.data.synthetic_samples // 4))
        gen = torch.Generator(device=device).manual_seed(mix_seed(cfg.seed, rank))
        shape = (POOL, self.batch_size, *self.in_shape)
        self.images = torch.randint(0, 256, shape, generator=gen, device=device, dtype=torch.uint8)
        self.labels = torch.randint(0, self.num_classes, (POOL, self.batch_size), generator=gen, device=device)

    def _batches(self, first: int, sizes: list[int]) -> Iterator[RawBatch]:
        for k, size in enumerate(sizes, start=first):
            yield self.images[k % POOL, :size], self.labels[k % POOL, :size], 0

    def _raw_train(self, epoch: int, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._batches(epoch * self.steps_per_epoch + self.steps_per_epoch - len(plan), [len(b) for b in plan])

    def _raw_val(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._batches(0, [len(b) for b in plan])

    def _raw_train_plain(self, plan: list[list[int]]) -> Iterator[RawBatch]:
        return self._batches(0, [len(b) for b in plan])
