"""``data.loader: torch``: PIL decoding in DataLoader worker processes.

Samples are addressed by ``(index, epoch)`` keys (``augment.EVAL``: evaluation crop), so the crop
comes from :mod:`cwn_bench.data.augment` and not from a worker's RNG. A corrupt image does
not raise inside a worker (its traceback would reach the user); the item carries the
message and the main process raises it as one clear error.

Each split has one DataLoader whose worker processes start at its first pass and serve every
later one (``persistent_workers``: restarting 2 workers cost ~0.1 s per pass on a 2-core VM, and
a digits training epoch, train + val pass, took 1.22 s instead of 1.05 s, medians over 12 epochs).
Its batch sampler is a :class:`_Plan` given each pass's batches. The workers end when the data
module is garbage-collected or the process exits.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from cwn_bench.config import Config
from cwn_bench.data.augment import box
from cwn_bench.data.images import CorruptImageError, decode, decode_rgb_jpeg, read_sized, tensor_decodable
from cwn_bench.data.module import RawBatch, Source, SourceData
from cwn_bench.data.sources import FileSource, first_readable
from cwn_bench.data.transforms import crop_resize, crop_resize_tensor, decode_scale, inside
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
            j, image, skipped = first_readable(self.source, index, lambda j: self._crop(j, index, epoch),
                                               self.data.skip_corrupt)
        except CorruptImageError as err:
            return torch.zeros(self.channels, size, size, dtype=torch.uint8), -1, 0, str(err)
        return image, int(self.source.labels[j]), skipped, ""

    def _crop(self, j: int, index: int, epoch: int) -> torch.Tensor:
        """Sample ``index``'s crop of image ``j`` (``index`` itself unless it was skipped). A
        JPEG file is decoded only as finely as the crop needs (``data.scaled_decode``); the
        box comes from the header's size, so it is the same either way (and DALI's). An RGB
        JPEG at full scale with its box inside goes straight into a tensor (the same pixels)."""
        size = self.data.image_size
        if not isinstance(self.source, FileSource):
            img = self.source.image(j)
            return crop_resize(img, box(self.data, self.seed, epoch, index, *img.size), size)
        path = self.source.path(j)
        data, width, height = read_sized(path)
        crop = box(self.data, self.seed, epoch, index, width, height)
        scale = decode_scale(crop, size, width, height) if self.data.scaled_decode else 1
        if tensor_decodable(data, self.source.grayscale, scale) and inside(crop, width, height):
            return crop_resize_tensor(decode_rgb_jpeg(data, path), crop, size)
        img = decode(data, path, self.source.grayscale, scale)
        return crop_resize(img, crop, size, round(width / img.width))  # the scale the decoder used


class _Plan:
    """A DataLoader's ``batch_sampler``: the batches of ``(index, epoch)`` keys of the current
    pass, replaced before each pass (the loader calls ``iter`` on it when a pass starts)."""

    def __init__(self) -> None:
        self.keys: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _start(loader: DataLoader) -> Iterator:
    """``iter(loader)`` for its first pass, when its worker processes are forked: the parent's
    garbage is collected first and the rest frozen across the fork (``gc.freeze``), so a
    worker's collector never finalises an object it inherited. One that did hung: a DALI
    pipeline left in a reference cycle (an earlier failed pass, or ``bench data`` timing both
    loaders in one process) whose ``__del__`` waits for threads that exist only in the parent.
    A frozen heap is also not written page by page by the workers' collector (no copy-on-write)."""
    gc.collect()
    gc.freeze()
    try:
        return iter(loader)
    finally:
        gc.unfreeze()


def _collate(items: list[tuple[torch.Tensor, int, int, str]]) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    images, labels, skipped, errors = zip(*items)
    # default_collate stacks a worker's batch straight into shared memory, where torch.stack would
    # make a copy that pickling then copies there (one 9.6 MB copy less per batch of 64 at 224 px)
    return default_collate(list(images)), torch.tensor(labels), sum(skipped), next((e for e in errors if e), "")


class TorchData(SourceData):
    """Folder or in-memory data through ``torch.utils.data.DataLoader`` (``data.workers`` processes
    per split, kept from pass to pass)."""

    def __init__(self, cfg: Config, rank: int, world_size: int, device: torch.device, train: Source, val: Source,
                 num_classes: int, holdout: Source | None = None) -> None:
        super().__init__(cfg, rank, world_size, device, train, val, num_classes, holdout)
        self._loaders = {id(source): self._loader(source) for source in (train, val, holdout) if source is not None}

    def _loader(self, source: Source) -> DataLoader:
        workers = self.cfg.data.workers
        # a generator of its own: the loader draws its workers' base seed from it (once, when they start;
        # without workers at every pass), and drawing from torch's global one would leave a run resumed
        # mid-epoch (whose loader starts afresh) one draw off the uninterrupted run in every later CPU
        # random number and checkpointed RNG state
        return DataLoader(_Samples(source, self.cfg), batch_sampler=_Plan(), num_workers=workers,
                          collate_fn=_collate, pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                          generator=torch.Generator())

    def _load(self, source: Source, plan: list[list[int]], epoch: int) -> Iterator[RawBatch]:
        loader = self._loaders[id(source)]
        keys = loader.batch_sampler.keys = [[(i, epoch) for i in batch] for batch in plan]
        # the loader keeps its persistent workers' iterator (``_iterator``): none yet means this pass forks them
        forks = loader.num_workers > 0 and loader._iterator is None
        # a new pass drops what an abandoned one left queued
        for images, labels, skipped, error in (_start(loader) if forks else loader):
            if error:
                raise UserError(error)
            yield images, labels, skipped
            # checked before fetching again: with persistent workers the loader's one iterator now serves
            # the new pass, and fetching would take that pass's next batch
            if loader.batch_sampler.keys is not keys:
                raise RuntimeError("a second pass over the same split started before this one ended; "
                                   "a data module serves one pass per split at a time")
