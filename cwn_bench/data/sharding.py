"""Which samples each rank sees: pure functions of (seed, epoch, rank, world_size).

Train: one permutation of all ``n`` samples per epoch (same on every rank), rank ``r``
takes ``perm[r::world]`` (DistributedSampler's split), cut to ``steps * batch`` so every
rank runs the same number of full batches. Validation: contiguous disjoint chunks, no
padding, so across ranks every image is evaluated exactly once.
"""

from __future__ import annotations

import torch

from cwn_bench.data.augment import mix_seed
from cwn_bench.errors import UserError


def steps_per_epoch(n: int, batch_size: int, world_size: int, what: str = "train split") -> int:
    """Full batches per rank per epoch: ``(n // world_size) // batch_size``; an error if 0."""
    if n < world_size:
        raise UserError(f"{what}: {n} samples, fewer than the {world_size} ranks; every rank needs data")
    steps = (n // world_size) // batch_size
    if steps == 0:
        raise UserError(f"{what}: {n} samples give no full batch of {batch_size} on each of {world_size} "
                        f"rank(s); lower train.batch_size to at most {n // world_size}")
    return steps


def train_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world_size: int) -> list[list[int]]:
    """This rank's batches of sample indices for ``epoch`` (``steps_per_epoch`` lists of ``batch_size``)."""
    steps = steps_per_epoch(n, batch_size, world_size)
    gen = torch.Generator().manual_seed(mix_seed(seed, epoch))
    mine = torch.randperm(n, generator=gen)[rank::world_size][: steps * batch_size].tolist()
    return [mine[i: i + batch_size] for i in range(0, len(mine), batch_size)]


def val_batches(n: int, batch_size: int, rank: int, world_size: int) -> list[list[int]]:
    """This rank's contiguous share of ``range(n)`` in batches (the last one may be short)."""
    lo, hi = rank * n // world_size, (rank + 1) * n // world_size
    return [list(range(i, min(i + batch_size, hi))) for i in range(lo, hi, batch_size)]
