"""Paired timing: a baseline and a variant measured alternately, pair by pair.

A :class:`Workload` is an untimed ``prepare`` (e.g. the forward before a timed backward,
resetting gradients) and a timed ``step``. :func:`time_pairs` runs ``warmup`` pairs, then
``pairs`` pairs, swapping which of the two goes first every pair so that neither always
runs on a cache or clock state left by the other.

- CUDA: each step sits between two CUDA events; the L2 cache is flushed (a 256 MiB buffer
  zeroed, as ``triton.testing.do_bench`` does) before each one when ``flush_l2``; one
  synchronisation at the end. With ``cuda_graph`` each step is captured once into a CUDA
  graph after warm-up and replayed, which takes Python and launch overhead out.
- CPU: ``time.perf_counter`` around each step (CPU ops are synchronous), at torch's
  current thread count. ``torch.utils.benchmark.Timer`` is not used because each of its
  ``timeit`` calls first runs the statement twice more without the prepare, which a
  one-shot step (a backward through a freshly built graph) cannot take.

:func:`summarize` turns the pairs into the numbers a JSONL row holds: the variant's
median and inter-quartile range (ms) and the median of the pairwise ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

_FLUSH_BYTES = 256 * 2**20


def _noop() -> None:
    return None


@dataclass
class Workload:
    """``step`` is timed; ``prepare`` runs right before it, untimed."""

    step: Callable[[], object]
    prepare: Callable[[], object] = _noop


def _order(base: Workload, variant: Workload, i: int) -> list[tuple[int, Workload]]:
    """Pair ``i``'s running order as ``(0 = base | 1 = variant, workload)``: swapped every pair."""
    pair = [(0, base), (1, variant)]
    return pair if i % 2 == 0 else pair[::-1]


def capture_graph(work: Workload, warmup: int = 3) -> Workload:
    """A workload whose step replays a CUDA graph of ``work.step`` (``prepare`` runs once,
    before the capture; warm-up on a side stream as torch's CUDA-graph docs ask)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            work.prepare()
            work.step()
    torch.cuda.current_stream().wait_stream(stream)
    work.prepare()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        work.step()
    return Workload(step=graph.replay)


def _cuda_pairs(base: Workload, variant: Workload, pairs: int, warmup: int,
                flush_l2: bool) -> list[tuple[float, float]]:
    flush = torch.empty(_FLUSH_BYTES, dtype=torch.uint8, device="cuda") if flush_l2 else None
    events = []
    for i in range(warmup + pairs):
        timed = []
        for which, work in _order(base, variant, i):
            work.prepare()
            if flush is not None:
                flush.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            work.step()
            end.record()
            timed.append((which, start, end))
        if i >= warmup:
            events.append(timed)
    torch.cuda.synchronize()  # the one host-device sync of the measurement
    result = []
    for timed in events:
        ms = {which: start.elapsed_time(end) for which, start, end in timed}
        result.append((ms[0], ms[1]))
    return result


def _cpu_pairs(base: Workload, variant: Workload, pairs: int, warmup: int) -> list[tuple[float, float]]:
    result = []
    for i in range(warmup + pairs):
        ms = {}
        for which, work in _order(base, variant, i):
            work.prepare()
            start = time.perf_counter()
            work.step()
            ms[which] = (time.perf_counter() - start) * 1e3
        if i >= warmup:
            result.append((ms[0], ms[1]))
    return result


def time_pairs(base: Workload, variant: Workload, pairs: int, warmup: int, device: torch.device,
               flush_l2: bool = True) -> list[tuple[float, float]]:
    """``pairs`` tuples ``(base_ms, variant_ms)`` measured alternately on ``device``.
    ``base`` and ``variant`` may be the same workload (an A/A measurement of the noise)."""
    if device.type == "cuda":
        return _cuda_pairs(base, variant, pairs, warmup, flush_l2)
    return _cpu_pairs(base, variant, pairs, warmup)


@dataclass(frozen=True)
class Summary:
    median_ms: float
    iqr_ms: float
    base_median_ms: float
    base_iqr_ms: float
    ratio_vs_plain: float
    pairs: int


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q3 - q1


def summarize(pairs: list[tuple[float, float]]) -> Summary:
    """Medians and IQRs of both sides and the median of the pairwise ratios variant/base."""
    base = [b for b, _ in pairs]
    variant = [v for _, v in pairs]
    return Summary(statistics.median(variant), _iqr(variant), statistics.median(base), _iqr(base),
                   statistics.median([v / b for b, v in pairs]), len(pairs))
