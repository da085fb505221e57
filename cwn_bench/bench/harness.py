"""The GPU check's ``harness`` part: what the training harness itself costs.

For each batch size, googlenet_bn (CWN) is trained on synthetic data through
:func:`cwn_bench.train.run` (2 epochs of ``steps`` steps, the second one timed: its epoch
record's ``img_per_s_compute``) and timed by ``bench step`` on the same model, batch, dtype
and memory format (on a GPU also with ``train.cuda_graph`` against ``bench step
--cuda-graph``, at ``graph_batch_sizes``); the row's ``ratio`` = train / bench step img/s (target:
:data:`cwn_bench.bench.targets.TARGETS` ``["harness"]``). The run goes under
``torch.cuda.set_sync_debug_mode("warn")``: ``sync_warnings`` counts the host-device syncs
torch reports inside the timed epoch's step loop but outside its sync points (should be 0;
on a CPU torch reports none); ``sync_warnings_first_epoch`` the same in the warm-up epoch
(cuDNN autotuning and first kernel compilations happen there).
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from cwn_bench.bench.env import JsonlWriter, environment
from cwn_bench.bench.options import StepBenchSpec
from cwn_bench.bench.step import run_step
from cwn_bench.bench.table import format_table

# the trainer's sync points (cwn_bench.train.run / flags): a sync inside them is by design
SYNC_POINTS = {"collect", "now", "agree", "save", "fail", "_handle"}
COLUMNS = ("batch", "dtype", "memory_format", "cuda_graph", "train_img_per_s", "step_img_per_s", "ratio", "sync_warnings")


@dataclass
class HarnessSpec:
    batch_sizes: list[int] = field(default_factory=lambda: [8, 64, 256])  # per GPU
    image_size: int = 224
    dtype: str = "bf16"  # bf16 (autocast) or fp32
    memory_format: str = "nhwc"
    device: str | None = None
    steps: int = 100  # per epoch; 2 epochs, the second timed
    graph_batch_sizes: list[int] = field(default_factory=lambda: [8])  # also with CUDA graphs (GPU only)
    reps: int | None = None  # bench step's pairs
    warmup: int | None = None


def _config(spec: HarnessSpec, batch: int, device: torch.device, cuda_graph: bool) -> Any:
    from cwn_bench.config import from_dict

    return from_dict({
        "name": "harness", "seed": 0, "model": {"name": "googlenet_bn", "method": "cwn"},
        "data": {"name": "synthetic", "loader": "synthetic", "image_size": spec.image_size, "num_classes": 1000,
                 "synthetic_samples": spec.steps * batch, "normalize": "imagenet"},
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}, "sched": {"name": "constant"},
        "train": {"epochs": 2, "batch_size": batch, "amp": "bf16" if spec.dtype == "bf16" else "none",
                  "channels_last": spec.memory_format == "nhwc", "device": device.type, "deterministic": False,
                  "checkpoint_minutes": 1e6, "keep_checkpoints": 1, "log_every": spec.steps,
                  "cuda_graph": cuda_graph}}, "gpu-check harness")


def loop_epoch(frame: FrameType | None) -> int | None:
    """The epoch (0-based) of the step loop (``train_one_epoch``) that ``frame`` runs in, or
    None when it runs outside the loop or inside one of its sync points."""
    inner: set[str] = set()
    while frame is not None:
        name = frame.f_code.co_name
        if name == "train_one_epoch":
            return None if SYNC_POINTS & inner else frame.f_locals.get("epoch")
        inner.add(name)
        frame = frame.f_back
    return None


def _train(spec: HarnessSpec, batch: int, device: torch.device, cuda_graph: bool) -> tuple[float, list[int]]:
    """(compute img/s of the second epoch, syncs reported inside the step loop in the first
    and in the second epoch)."""
    from cwn_bench.train import run
    from cwn_bench.rundir import METRICS

    found = [0, 0]  # syncs reported in the step loop between sync points: first epoch (warm-up), timed epoch

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        epoch = loop_epoch(sys._getframe())
        if epoch is not None:
            found[min(epoch, 1)] += 1

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            run(_config(spec, batch, device, cuda_graph), Path(tmp) / "run", signals=())
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        epochs = [r for r in map(json.loads, (Path(tmp) / "run" / METRICS).read_text().splitlines())
                  if r["kind"] == "epoch"]
    return epochs[-1]["img_per_s_compute"], found


def run_harness(spec: HarnessSpec, out: str | Path | None = None) -> list[dict[str, Any]]:
    """One ``{"kind": "harness", ...}`` row per batch size; JSONL to ``out``, table on stdout."""
    from cwn_bench.bench.conv import resolve_device

    device = resolve_device(spec.device)
    with JsonlWriter(out) as writer:
        writer.write(environment(device, bench="harness", steps=spec.steps))
        graphs = spec.graph_batch_sizes if device.type == "cuda" else []
        for batch, cuda_graph in [(b, False) for b in spec.batch_sizes] + [(b, True) for b in graphs]:
            step_rows = run_step(StepBenchSpec([batch], spec.image_size, spec.dtype, spec.memory_format, str(device),
                                               spec.reps, spec.warmup, cuda_graph), out=None, show=False)
            step = next(r for r in step_rows if r.get("kind") == "measurement" and r["variant"] == "cwn")
            train, (warmup_syncs, syncs) = _train(spec, batch, device, cuda_graph)
            writer.write({"kind": "harness", "bench": "harness", "batch": batch, "dtype": spec.dtype,
                          "memory_format": spec.memory_format, "cuda_graph": cuda_graph, "train_img_per_s": train,
                          "step_img_per_s": step["img_per_s"], "ratio": train / step["img_per_s"],
                          "sync_warnings": syncs, "sync_warnings_first_epoch": warmup_syncs,
                          "steps": spec.steps})
    print(format_table(writer.rows[1:], COLUMNS))
    return writer.rows
