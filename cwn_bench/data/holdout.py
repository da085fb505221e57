"""``data.holdout``: a seeded validation split taken from the training split.

The paper picks its MLP hyper-parameters on "5% of the training set" and reports test error
(Sec. 4.1); the held-out samples are evaluated every epoch as ``holdout_*`` beside the
``val_*`` (test) metrics and are never trained on.
"""

from __future__ import annotations

import torch

from cwn_bench.config import DataConfig
from cwn_bench.data.augment import mix_seed
from cwn_bench.data.sources import Source
from cwn_bench.errors import UserError

HOLDOUT_TAG = 0x401D  # mixed with data.split_seed: the holdout split's own stream


def check(data: DataConfig) -> None:
    """Refuse ``data.holdout`` for synthetic data, which has no training set to hold out from."""
    if data.holdout is not None and (data.loader == "synthetic" or data.name == "synthetic"):
        raise UserError("data.holdout: synthetic data has no training set to hold out from; unset data.holdout")


def count(fraction: float, n: int) -> int:
    """How many of ``n`` training samples :func:`split` holds out."""
    return round(fraction * n)


def split(train: Source, fraction: float, seed: int) -> tuple[Source, Source]:
    """``(train without the holdout, holdout)``: :func:`count` samples drawn by a generator
    seeded from (``seed``, ``HOLDOUT_TAG``); both keep the original order."""
    n = len(train)
    k = count(fraction, n)
    if not 0 < fraction < 1 or not 0 < k < n:
        raise UserError(f"data.holdout={fraction}: expected a fraction in (0, 1) that holds out at least one of the "
                        f"{n} training samples and keeps at least one")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, HOLDOUT_TAG)))
    return train.subset(sorted(perm[k:].tolist())), train.subset(sorted(perm[:k].tolist()))
