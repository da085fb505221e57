"""Stage the next batch while the current one is consumed: on a GPU its host-to-device
copy (from pinned memory, ``non_blocking``) and normalisation run on a side CUDA stream,
issued before the consumer's step for the batch before it, so the copy overlaps compute."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch
from torch import Tensor

R = TypeVar("R")


def prefetched(batches: Iterable[R], stage: Callable[[R], tuple[Tensor, ...]],
               device: torch.device) -> Iterator[tuple[Tensor, ...]]:
    """``stage(b)`` for each ``b`` of ``batches``, one batch ahead. On CUDA the staging runs
    on a side stream; each yielded batch is made safe for the consumer's stream (it waits
    for the copy, and the tensors are marked used there so the allocator does not reuse
    their memory early). Elsewhere: plain ``map`` (CPU work is synchronous: nothing to overlap)."""
    if device.type != "cuda":
        yield from map(stage, batches)
        return
    side = torch.cuda.Stream(device)
    it = iter(batches)

    def issue() -> tuple[Tensor, ...] | None:
        raw = next(it, None)
        if raw is None:
            return None
        side.wait_stream(torch.cuda.current_stream(device))  # buffers freed by earlier steps are reusable
        with torch.cuda.stream(side):
            return stage(raw)

    ahead = issue()
    while ahead is not None:
        current = torch.cuda.current_stream(device)
        current.wait_stream(side)
        for tensor in ahead:
            tensor.record_stream(current)
        batch, ahead = ahead, issue()
        yield batch
