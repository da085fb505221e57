"""``cwn-bench bench data``: images per second of the training input pipeline.

Reads ``ROOT`` (ImageNet layout) through ``cwn_bench.data.build`` -- the very pipeline
training uses, so bad input fails here exactly as in training -- with the train transforms
(random-resized crop to ``image_size``, flip, normalise, on the device), and times whole
epochs after a short warm-up. Several loaders are timed alternately, rep by rep, so their
ratio is measured side by side. Writes JSONL: the environment header, one
``{"kind": "data", "loader", "device", "batch_size", "images", "skipped", "img_per_s", ...}``
per loader and rep (``decode-only``: the reference, whole-image decodes of the same train
files in the same order in ``workers`` processes, by the torch loader's decoder (libjpeg-turbo
through torchvision.io for RGB JPEGs), no crop, no resize, no copy; ``decode-eighth``: the same
at 1/8 scale (PIL's ``draft``), libjpeg's DCT scaling, which still entropy-decodes every coefficient but
inverse-transforms 1/64 of the pixels: about the least that decoding any crop of a JPEG costs,
whatever its window or scale) (with ``cpu_ms_per_img``, CPU time of the process and its workers per
image: a cost that a busy machine distorts less than wall time), then ``{"kind":
"data_ratio", ...}`` rows (median of the per-rep img/s ratios of each loader to the last).
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cwn_bench.bench.env import JsonlWriter, environment
from cwn_bench.bench.progress import progress
from cwn_bench.config import DataConfig, TrainConfig, from_dict
from cwn_bench.data import DataModule, build, folder, sharding
from cwn_bench.data.images import decode, decode_rgb_jpeg, read_encoded, tensor_decodable
from cwn_bench.data.sources import FileSource, first_readable
from cwn_bench.data.torch_loader import _Plan, _start

DECODE_ONLY, DECODE_EIGHTH = "decode-only", "decode-eighth"
REFERENCES = {DECODE_ONLY: 1, DECODE_EIGHTH: 8}  # reference "loaders" and their JPEG decode scale


class _Decodes(Dataset):
    """``[index] -> images skipped``: decodes the whole file as the torch loader would (an RGB
    JPEG at full scale through torchvision.io, else PIL; a JPEG at 1/``scale`` of its size)
    and drops the pixels."""

    def __init__(self, source: FileSource, skip_corrupt: bool, scale: int) -> None:
        self.source, self.skip_corrupt, self.scale = source, skip_corrupt, scale

    def _decode(self, j: int) -> tuple[int, int]:
        """(width, height) of file ``j`` as decoded."""
        path = self.source.path(j)
        data = read_encoded(path)
        if tensor_decodable(data, self.source.grayscale, self.scale):
            pixels = decode_rgb_jpeg(data, path)
            return pixels.shape[2], pixels.shape[1]
        return decode(data, path, self.source.grayscale, self.scale).size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> int:
        return first_readable(self.source, index, self._decode, self.skip_corrupt)[2]


def _as_list(items: list[int]) -> list[int]:
    return items


class DecodeOnly:
    """``bench data``'s reference "loaders": the train split's files of ``root`` in the order a
    one-rank run reads them, decoded whole (a JPEG at 1/``scale`` of its size) in
    ``workers`` DataLoader processes (the torch loader's cores), nothing else. Quacks like a
    DataModule for :func:`_time_epochs`."""

    def __init__(self, root: str | Path, batch_size: int, workers: int, skip_corrupt: bool, scale: int = 1,
                 seed: int = 0) -> None:
        files, labels, _ = folder.scan_split(str(root), "train")
        self.source = FileSource(files, labels, grayscale=False)
        self.batch_size, self.seed, self.skipped = batch_size, seed, 0
        self.steps_per_epoch = sharding.steps_per_epoch(len(files), batch_size, 1)
        self.loader = DataLoader(_Decodes(self.source, skip_corrupt, scale), batch_sampler=_Plan(), num_workers=workers,
                                 collate_fn=_as_list, persistent_workers=workers > 0)

    def train_batches(self, epoch: int, start_step: int = 0, stop_step: int | None = None) -> Any:
        self.loader.batch_sampler.keys = sharding.train_batches(len(self.source), self.batch_size, self.seed, epoch,
                                                                0, 1)[start_step:stop_step]
        forks = self.loader.num_workers > 0 and self.loader._iterator is None
        for skipped in _start(self.loader) if forks else self.loader:
            self.skipped += sum(skipped)
            yield skipped, None


def _live_children_cpu_seconds() -> float:
    """CPU time so far of this process's running children (Linux ``/proc``; 0 elsewhere):
    the persistent DataLoader workers, which ``RUSAGE_CHILDREN`` counts only once they have
    exited and been reaped. Reads one small file per process on the machine (~6 ms for 90
    processes, twice per timed pass)."""
    me, ticks = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # after the ")" closing the command name: state, ppid, ..., utime (field 14), stime (15)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # a process that ended while we looked
            continue
        if int(fields[1]) == me:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> float:
    """CPU time of this process (DALI's threads included) and of its children, running
    (DataLoader workers) or finished."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _live_children_cpu_seconds()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch's CPU ops on one thread in the block. The bench's own process only normalises each
    batch (on a CPU device; on a GPU it copies it) while the loader's workers or threads decode:
    with torch's default of a thread per core, the idle OpenMP threads spin-wait between those
    small ops and take a core from the workers (2-core VM, torch loader, 2 workers, 224 px:
    494 -> 606 img/s; this process's CPU time 0.78 -> 0.50 ms/img)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _time_epochs(data: DataModule, loader: str, epochs: int, sync: Any) -> tuple[int, float, float]:
    """Images delivered by ``epochs`` train epochs, their wall seconds and CPU seconds."""
    images, start, cpu = 0, time.perf_counter(), _cpu_seconds()
    for epoch in range(epochs):
        for batch, _ in progress(data.train_batches(epoch), data.steps_per_epoch, f"{loader} epoch {epoch + 1}"):
            images += len(batch)
    sync()
    return images, time.perf_counter() - start, _cpu_seconds() - cpu


def run_data(root: str | Path, loaders: Sequence[str], out: str | Path | None, *,
             batch_size: int = TrainConfig.batch_size, epochs: int = 1, reps: int = 1, skip_corrupt: bool = False,
             image_size: int = DataConfig.image_size, workers: int = DataConfig.workers, warmup: int = 2,
             device: torch.device | None = None) -> list[dict[str, Any]]:
    """Time ``epochs`` train epochs of each of ``loaders`` (dali | torch | decode-only | decode-eighth) over ``root``,
    ``reps`` times alternately, after ``warmup`` untimed batches each; return (and write to
    ``out``) the rows. ``images`` counts the images delivered in the timed epochs;
    ``img_per_s`` = images / their wall seconds."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    modules = {}
    for loader in loaders:  # a bad folder fails before the output file is created
        if loader in REFERENCES:
            modules[loader] = DecodeOnly(root, batch_size, workers, skip_corrupt, REFERENCES[loader])
            continue
        cfg = from_dict({"data": {"name": "imagenet", "root": str(root), "loader": loader, "image_size": image_size,
                                  "workers": workers, "skip_corrupt": skip_corrupt},
                         "train": {"batch_size": batch_size}}, "bench data")
        modules[loader] = build(cfg, device=device)
    rows: list[dict[str, Any]] = []
    header = environment(device, bench="data", main_process_threads=1)  # cpu_threads: the machine's, before
    with _one_thread(), JsonlWriter(out) as writer:
        writer.write(header)
        for loader, data in modules.items():  # starts workers or the pipeline, warms the page cache
            for _ in data.train_batches(epoch=-1, stop_step=warmup):  # a whole pass: no batch left in flight
                pass
        for rep in range(reps):
            for loader, data in modules.items():
                images, seconds, cpu = _time_epochs(data, loader, epochs, sync)
                row = {"kind": "data", "loader": loader, "device": str(device), "batch_size": batch_size,
                       "images": images, "skipped": data.skipped, "img_per_s": images / seconds, "seconds": seconds,
                       "cpu_ms_per_img": 1000 * cpu / images,
                       "epochs": epochs, "rep": rep, "image_size": image_size, "workers": workers, "root": str(root)}
                writer.write(row)
                rows.append(row)
                print(f"{loader} on {device}: {images} images in {seconds:.1f} s = {row['img_per_s']:.0f} img/s, "
                      f"{row['cpu_ms_per_img']:.2f} CPU-ms/img (batch {batch_size}, {workers} workers, "
                      f"{data.skipped} corrupt skipped)")
        last = loaders[-1]
        for loader in loaders[:-1]:
            ratios = [a["img_per_s"] / b["img_per_s"] for a, b in zip(
                (r for r in rows if r["loader"] == loader), (r for r in rows if r["loader"] == last))]
            ratio = {"kind": "data_ratio", "numerator": loader, "denominator": last, "reps": reps,
                     "ratio": statistics.median(ratios), "ratios": ratios}
            writer.write(ratio)
            print(f"{loader}/{last} img/s: median {ratio['ratio']:.2f}x over {reps} alternating rep(s)")
    return rows
