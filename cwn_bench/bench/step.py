"""``cwn-bench bench step``: one whole training step of googlenet_bn, plain vs CWN.

A step is ``zero_grad`` (to None), forward under bf16 autocast, cross-entropy on random
labels, backward and ``SGD(momentum=0.9)``, on synthetic channels_last images (float32
in, as a loader would hand them over). The plain and CWN models are stepped alternately,
pair by pair (:mod:`cwn_bench.bench.timing`, no L2 flush: the step is far larger than
L2), and each batch size gives one row per model with images per second; the CWN row
carries ``ratio_vs_plain``, the median of the pairwise step-time ratios.

CWN layers use the ``auto`` backend: the Triton kernels on a GPU, ``explicit`` on a CPU.
The model is ``cwn_bench.models``' googlenet_bn (torchvision's GoogLeNet when that
package cannot be imported, see :func:`cwn_bench.bench.shapes.googlenet_bn_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cwn_bench.bench import precision
from cwn_bench.bench.conv import resolve_device
from cwn_bench.bench.env import JsonlWriter, environment
from cwn_bench.bench.options import StepBenchSpec, resolve_pairs
from cwn_bench.bench.progress import progress
from cwn_bench.bench.shapes import googlenet_bn_model, model_set_name
from cwn_bench.bench.table import format_table
from cwn_bench.bench.timing import Workload, capture_graph, summarize, time_pairs
from cwn_bench.errors import UserError

STEP_COLUMNS = ("shape", "variant", "dtype", "memory_format", "median_ms", "iqr_ms", "img_per_s", "ratio_vs_plain")
NUM_CLASSES = 1000


def _resolve(spec: StepBenchSpec) -> tuple[torch.device, int, int]:
    """Validate ``spec``; return ``(device, reps, warmup)`` with defaults filled."""
    device = resolve_device(spec.device)
    precision.check_dtype(spec.dtype, device)
    precision.memory_format(spec.memory_format)
    reps, warmup = resolve_pairs("step", device.type, spec.reps, spec.warmup)
    if spec.cuda_graph and device.type != "cuda":
        raise UserError(f"bench step --cuda-graph needs a CUDA device, got --device {device}")
    if min(spec.batch_sizes, default=0) < 1 or spec.image_size < 32:
        raise UserError("bench step: need batch sizes >= 1 and --image-size >= 32")
    return device, reps, warmup


def _train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, dtype: str,
                cuda_graph: bool = False) -> Workload:
    """The step as a workload; with ``cuda_graph`` captured once (after a warm-up) and replayed."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast(dtype, images.device, cache=not cuda_graph):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    return capture_graph(Workload(step)) if cuda_graph else Workload(step)


def _model(method: str, spec: StepBenchSpec, device: torch.device) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    model, source = googlenet_bn_model(NUM_CLASSES, method, spec.image_size)
    return model.to(device, memory_format=precision.memory_format(spec.memory_format)).train(), source


def _row(set_name: str, batch: int, spec: StepBenchSpec, variant: str, **fields: Any) -> dict[str, Any]:
    side = spec.image_size
    return {"kind": "measurement", "bench": "step", "shape": f"{set_name}:{batch}x3x{side}x{side}",
            "variant": variant, "pass": "train-step", "dtype": spec.dtype, "memory_format": spec.memory_format,
            "batch": batch, "cuda_graph": spec.cuda_graph, **fields}


def _measure(models: dict[str, nn.Module], batch: int, spec: StepBenchSpec, device: torch.device, reps: int,
             warmup: int, set_name: str) -> list[dict[str, Any]]:
    """The plain and the CWN row for one batch size (one skipped row when out of memory)."""
    images = torch.randn(batch, 3, spec.image_size, spec.image_size, device=device)
    images = images.contiguous(memory_format=precision.memory_format(spec.memory_format))
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    try:
        plain, cwn = (_train_step(models[m], images, labels, spec.dtype, spec.cuda_graph) for m in ("plain", "cwn"))
        stats = summarize(time_pairs(plain, cwn, reps, warmup, device, flush_l2=False))
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return [_row(set_name, batch, spec, "cwn", kind="skipped", reason="out of memory")]
    return [_row(set_name, batch, spec, variant, median_ms=median, iqr_ms=iqr, img_per_s=batch / median * 1e3,
                 ratio_vs_plain=ratio, pairs=stats.pairs)
            for variant, median, iqr, ratio in (("plain", stats.base_median_ms, stats.base_iqr_ms, 1.0),
                                                ("cwn", stats.median_ms, stats.iqr_ms, stats.ratio_vs_plain))]


def run_step(spec: StepBenchSpec, out: str | Path | None = None, show: bool = True) -> list[dict[str, Any]]:
    """Time plain vs CWN training steps per batch size; JSONL to ``out``, table on stdout."""
    device, reps, warmup = _resolve(spec)
    torch.backends.cudnn.benchmark = True
    built = {m: _model(m, spec, device) for m in ("plain", "cwn")}
    source = built["plain"][1]
    models = {m: model for m, (model, _) in built.items()}
    with JsonlWriter(out) as writer, precision.tf32_mode(spec.dtype != "fp32"):
        writer.write(environment(device, bench="step", model=source, pairs=reps, warmup_pairs=warmup))
        for batch in progress(spec.batch_sizes, len(spec.batch_sizes), "bench step"):
            for row in _measure(models, batch, spec, device, reps, warmup, model_set_name(source)):
                writer.write(row)
    if show:
        print(format_table([r for r in writer.rows if r.get("kind") == "measurement"], STEP_COLUMNS))
    return writer.rows
