"""``data.loader: dali``: NVIDIA DALI decodes, crops, resizes and mirrors.

On a GPU the decoder is nvJPEG (``mixed``) and the batch stays on the GPU; without one the
same graph runs CPU-only (``device_id=None``, ../shared/notes/dali-cpu.md). DALI is imported
only by this module.

Samples enter through ``fn.external_source``: a Python callback reads this rank's planned
files (:mod:`cwn_bench.data.sharding`, the same shards as the torch loader) and gives the
crop boxes of :mod:`cwn_bench.data.augment`. So order and augmentation are the same pure
function of (seed, epoch, rank, world_size) as in the torch loader, and resuming at step k
starts the plan at batch k without decoding the ones before (DALI's own reader would have
to replay them, or restore a DALI checkpoint). Each pass (epoch, evaluation) builds a fresh
pipeline (~0.02 s on CPU) so an abandoned pass leaves nothing queued.

Bad files: the callback checks each file's header and end marker and raises a clear error
naming it (or, with ``skip_corrupt``, substitutes the next readable file and counts it). A
file that passes those checks but fails inside the decoder stops DALI; the error is mapped
back to the file by decoding the failing batch's files with PIL. Damage inside the compressed
data (e.g. a bad Huffman code) is only a warning to libjpeg-turbo: DALI decodes such a file
with garbled blocks (libjpeg prints "Corrupt JPEG data" on stderr) where PIL, and so the
torch loader, stops with an error naming it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch

from cwn_bench.data.augment import Box, box
from cwn_bench.data.images import CorruptImageError, decode, read_encoded, read_sized
from cwn_bench.data.module import RawBatch, Source, SourceData
from cwn_bench.data.sources import ArraySource, FileSource, first_readable
from cwn_bench.errors import UserError

try:
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import feed_ndarray
except ImportError as err:  # pragma: no cover - depends on the installation
    raise UserError(f"data.loader=dali needs NVIDIA DALI ({err}); pip install 'cwn-bench[dali]' "
                    "or use data.loader=torch") from None

BoxFn = Callable[[int, int, int], Box]  # (index, width, height) -> crop box


class _Feeder:
    """The batch callback of ``fn.external_source``: for each planned batch of indices, the
    encoded files (or raw HWC arrays), crop anchors ``[x, y]`` and shapes ``[w, h]`` in
    pixels, mirror flags, labels and per-sample skip counts. Raises StopIteration at the end
    of the plan, or at the first unreadable file (kept in ``error``)."""

    def __init__(self, source: Source, plan: list[list[int]], box: BoxFn, skip_corrupt: bool) -> None:
        self.source, self.plan, self.box, self.skip_corrupt = source, iter(plan), box, skip_corrupt
        self.fed: deque[list[str]] = deque()  # paths of batches handed to DALI and not yet delivered
        self.error: CorruptImageError | None = None

    def _read(self, j: int) -> tuple[np.ndarray, int, int]:
        if isinstance(self.source, ArraySource):
            image = self.source.images[j]
            return image, image.shape[1], image.shape[0]
        data, width, height = read_sized(self.source.path(j))
        return np.frombuffer(data, dtype=np.uint8), width, height

    def __call__(self) -> tuple[list[np.ndarray], ...]:
        batch = next(self.plan)
        columns: tuple[list[np.ndarray], ...] = ([], [], [], [], [], [])
        used = []  # the files actually fed (after skips), to name one DALI fails on
        try:
            for i in batch:
                j, (data, width, height), skipped = first_readable(self.source, i, self._read, self.skip_corrupt)
                used.append(j)
                b: Box = self.box(i, width, height)
                for column, value in zip(columns, (data, np.array([b.x, b.y], np.float32),
                                                   np.array([b.w, b.h], np.float32), np.array(b.flip, np.int32),
                                                   np.array(self.source.labels[j], np.int64), np.array(skipped, np.int64))):
                    column.append(value)
        except CorruptImageError as err:
            self.error = err
            raise StopIteration from None
        self.fed.append([self.source.path(j) for j in used] if isinstance(self.source, FileSource) else [])
        return columns


@pipeline_def
def _graph(feeder: _Feeder, size: int, grayscale: bool, encoded: bool, pad: bool, gpu: bool):  # noqa: ANN202
    data, anchor, shape, flip, labels, skipped = fn.external_source(source=feeder, num_outputs=6, batch=True)
    colour = types.GRAY if grayscale else types.RGB
    # stored pixel orientation, as PIL (and torchvision's ImageFolder) decode it: EXIF rotation
    # would also move the crop boxes computed from the header's width and height
    decode = dict(output_type=colour, adjust_orientation=False)
    window = dict(axis_names="WH", normalized_anchor=False, normalized_shape=False)
    if encoded and not pad:  # decode only the crop window (libjpeg-turbo / nvJPEG ROI decoding)
        images = fn.decoders.image_slice(data, anchor, shape, device="mixed" if gpu else "cpu", **decode, **window)
    else:  # whole image, then a window that may reach outside it (zero padding)
        if encoded:
            images = fn.decoders.image(data, device="mixed" if gpu else "cpu", **decode)
        else:
            images = fn.reshape(data.gpu() if gpu else data, layout="HWC")
            if grayscale:
                images = fn.color_space_conversion(images, image_type=types.RGB, output_type=types.GRAY)
        images = fn.slice(images, anchor, shape, out_of_bounds_policy="pad", **window)
    images = fn.resize(images, resize_x=size, resize_y=size, interp_type=types.INTERP_LINEAR, antialias=True)
    images = fn.crop_mirror_normalize(images, mirror=flip, dtype=types.UINT8, output_layout="CHW")
    return images, labels, skipped


def _to_torch(tensor_list, device: torch.device) -> torch.Tensor:
    """Copy a dense DALI batch (CPU, or GPU in ``mixed`` mode) into a new torch tensor on
    ``device`` (DALI reuses its buffers); on the GPU the copy is ordered on torch's stream."""
    dense = tensor_list.as_tensor()
    out = torch.empty(dense.shape(), dtype=torch.uint8, device=device)
    stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
    return feed_ndarray(dense, out, cuda_stream=stream)


def _culprit(paths: list[str], grayscale: bool, dali_error: str) -> UserError:
    """The error for a batch DALI failed to decode: the first of its files PIL cannot decode."""
    for path in paths:
        try:
            decode(read_encoded(path), path, grayscale)
        except CorruptImageError as err:
            return err
    detail = next((line for line in dali_error.splitlines() if line.strip() and "pipeline" not in line), dali_error)
    where = f" on a batch of {len(paths)} files starting with {paths[0]}" if paths else ""
    return UserError(f"DALI failed{where}: {detail}")


class DaliData(SourceData):
    """Folder or in-memory data through a DALI pipeline (``data.workers`` CPU threads per rank)."""

    def _load(self, source: Source, plan: list[list[int]], epoch: int) -> Iterator[RawBatch]:
        d, gpu = self.cfg.data, self.device.type == "cuda"
        feeder = _Feeder(source, plan, partial(box, d, self.cfg.seed, epoch), d.skip_corrupt)
        pipe = _graph(feeder, d.image_size, d.grayscale, isinstance(source, FileSource), d.train_crop == "pad_crop",
                      gpu, batch_size=self.batch_size, num_threads=max(1, d.workers), prefetch_queue_depth=2,
                      device_id=self._gpu_index() if gpu else None, seed=self.cfg.seed)
        pipe.build()
        while True:
            try:
                images, labels, skipped = pipe.run()
            except StopIteration:
                break
            except RuntimeError as err:
                raise _culprit(feeder.fed[0] if feeder.fed else [], d.grayscale, str(err)) from None
            feeder.fed.popleft()
            labels = torch.from_numpy(np.array(labels.as_tensor())).view(-1)  # DALI's labels stay on the CPU
            yield (_to_torch(images, self.device), labels.pin_memory() if gpu else labels,  # images already there
                   int(np.array(skipped.as_tensor()).sum()))
        if feeder.error is not None:
            raise feeder.error

    def _gpu_index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()
