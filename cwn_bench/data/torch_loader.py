"""``data.loader: torch``: PIL decoding in DataLoader worker processes.

Samples are addressed by ``(index, epoch)`` keys (``augment.EVAL``: evaluation crop), so the crop
comes from :mod:`cwn_bench.data.augment` and not from a worker's RNG. A corrupt image does
not raise inside a worker (its traceback would reach the user); the item carries the
message and the main process raises it as one clear error.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from cwn_bench.config import Config
from cwn_bench.data.augment import box
from cwn_bench.data.images import CorruptImageError
from cwn_bench.data.module import RawBatch, Source, SourceData
from cwn_bench.data.sources import first_readable
from cwn_bench.data.transforms import crop_resize
from cwn_bench.errors import UserError


class _Samples(Dataset):
    """``[(index, epoch)] -> (uint8 [C, S, S], label, skipped, error message or "")``."""

    def __init__(self, source: Source, cfg: Config) -> None:
        self.source, self.data, self.seed = source, cfg.data, cfg.seed
        self.channels = 1 if cfg.data.grayscale else 3

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int, str]:
        index, epoch = key
        size = self.data.image_size
        try:
            j, img, skipped = first_readable(len(self.source), index, self.source.image, self.data.skip_corrupt)
        except CorruptImageError as err:
            return torch.zeros(self.channels, size, size, dtype=torch.uint8), -1, 0, str(err)
        crop = box(self.data, self.seed, epoch, index, *img.size)
        return crop_resize(img, crop, size), self.source.labels[j], skipped, ""


def _collate(items: list[tuple[torch.Tensor, int, int, str]]) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    images, labels, skipped, errors = zip(*items)
    return torch.stack(images), torch.tensor(labels), sum(skipped), next((e for e in errors if e), "")


class TorchData(SourceData):
    """Folder or in-memory data through ``torch.utils.data.DataLoader`` (``data.workers`` processes)."""

    def _load(self, source: Source, plan: list[list[int]], epoch: int) -> Iterator[RawBatch]:
        keys = [[(i, epoch) for i in batch] for batch in plan]
        # a generator of its own: each iterator draws its workers' base seed from it, and drawing from
        # torch's global one would leave a run resumed mid-epoch (which starts this loader afresh) one
        # draw off the uninterrupted run in every later CPU random number and checkpointed RNG state
        loader = DataLoader(_Samples(source, self.cfg), batch_sampler=keys, num_workers=self.cfg.data.workers,
                            collate_fn=_collate, pin_memory=self.device.type == "cuda", generator=torch.Generator())
        for images, labels, skipped, error in loader:
            if error:
                raise UserError(error)
            yield images, labels, skipped
