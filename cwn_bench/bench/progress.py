"""Progress for long benchmarks: a tqdm bar on a terminal, plain lines otherwise (logs,
CI, or a bare GPU box without tqdm). Both go to stderr; stdout keeps the result table."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield ``items`` while showing ``label`` and how many of ``total`` are done."""
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(items, total=total, desc=label, file=sys.stderr)
            return
    start = time.monotonic()
    for i, item in enumerate(items, 1):
        print(f"[{label} {i}/{total}, {time.monotonic() - start:.0f} s]", file=sys.stderr, flush=True)
        yield item
