"""``cwn-bench bench data``: images per second of the training input pipeline.

Reads ``ROOT`` (ImageNet layout) through ``cwn_bench.data.build`` -- the very pipeline
training uses, so bad input fails here exactly as in training -- with the train transforms
(random-resized crop to ``image_size``, flip, normalise, on the device), and times whole
epochs after a short warm-up. Writes JSONL: the environment header, then one
``{"kind": "data", "loader", "device", "batch_size", "images", "skipped", "img_per_s", ...}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from cwn_bench.bench.env import JsonlWriter, environment
from cwn_bench.bench.progress import progress
from cwn_bench.config import from_dict
from cwn_bench.data import build


def run_data(root: str | Path, loader: str, out: str | Path | None, *, batch_size: int = 64, epochs: int = 1,
             skip_corrupt: bool = False, image_size: int = 224, workers: int = 2, warmup: int = 2,
             device: torch.device | None = None) -> dict[str, Any]:
    """Time ``epochs`` train epochs of ``loader`` (dali | torch) over ``root`` after ``warmup``
    untimed batches; return (and write to ``out``) the result row. ``images`` counts the
    images delivered in the timed epochs; ``img_per_s`` = images / their wall seconds."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = from_dict({"data": {"name": "imagenet", "root": str(root), "loader": loader, "image_size": image_size,
                              "workers": workers, "skip_corrupt": skip_corrupt},
                     "train": {"batch_size": batch_size}}, "bench data")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = build(cfg, device=device)  # a bad folder fails before the output file is created
    with JsonlWriter(out) as writer:
        writer.write(environment(device, bench="data"))
        for _ in zip(range(warmup), data.train_batches(epoch=-1)):  # starts workers or the pipeline, warms caches
            pass
        sync()
        images, start = 0, time.perf_counter()
        for epoch in range(epochs):
            for batch, _ in progress(data.train_batches(epoch), data.steps_per_epoch, f"{loader} epoch {epoch + 1}"):
                images += len(batch)
        sync()
        seconds = time.perf_counter() - start
        row = {"kind": "data", "loader": loader, "device": str(device), "batch_size": batch_size, "images": images,
               "skipped": data.skipped, "img_per_s": images / seconds, "seconds": seconds, "epochs": epochs,
               "image_size": image_size, "workers": workers, "root": str(root)}
        writer.write(row)
    print(f"{loader} on {device}: {images} images in {seconds:.1f} s = {row['img_per_s']:.0f} img/s "
          f"(batch {batch_size}, {workers} workers, {data.skipped} corrupt skipped)")
    return row
