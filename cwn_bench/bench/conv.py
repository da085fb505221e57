"""``cwn-bench bench conv``: normalised convs (and linears) against the plain layer.

For every shape x precision x memory format x pass, one plain layer is the baseline and
each variant (:mod:`cwn_bench.bench.variants`) is timed against it pair by pair
(:mod:`cwn_bench.bench.timing`); ``plain`` itself is timed against the baseline too, an
A/A measurement whose ratio shows the noise floor. Passes:

- ``fwd``       training-mode forward (autograd records the graph), output dropped;
- ``bwd``       backward alone: the forward runs untimed before each repetition;
- ``fwd+bwd``   forward and backward (weight, bias and input gradients);
- ``eval-fwd``  eval-mode forward under ``torch.no_grad`` (CWN layers reuse their cached
                effective weight there).

Gradients are reset to None before each timed backward, as ``zero_grad()`` does, so each
repetition allocates them like a training step. Linear shapes have no memory format and
are timed for ``nchw`` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cwn_bench.bench import precision
from cwn_bench.bench.env import JsonlWriter, environment
from cwn_bench.bench.options import PASSES, VARIANTS, ConvBenchSpec, resolve_pairs
from cwn_bench.bench.progress import progress
from cwn_bench.bench.shapes import LayerShape, resolve_shapes
from cwn_bench.bench.table import print_table
from cwn_bench.bench.timing import Workload, capture_graph, summarize, time_pairs
from cwn_bench.bench.variants import Unavailable, build_layer
from cwn_bench.errors import UserError, brief

COMPILING = {"cwn-compiled": "torch.compile", "cwn-triton": "Triton"}  # variant -> what compiles it


def resolve_device(name: str | None) -> torch.device:
    """``cuda`` when a GPU is present and ``name`` is None; refuse ``cuda`` without one."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {brief(name)}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is visible to torch on this machine")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: expected cpu, cuda or cuda:N")
    return device


def _check_choices(flag: str, values: list[str], allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise UserError(f"{flag}: unknown value {brief(value)}; expected one of {', '.join(allowed)}")


def _resolve(spec: ConvBenchSpec) -> tuple[torch.device, list[LayerShape], list[str], int, int]:
    """Validate ``spec``; return ``(device, shapes, dtypes, reps, warmup)`` with defaults filled."""
    device = resolve_device(spec.device)
    cuda = device.type == "cuda"
    _check_choices("--variants", spec.variants, VARIANTS)
    _check_choices("--passes", spec.passes, PASSES)
    dtypes = spec.dtypes or (["bf16", "tf32"] if cuda else ["fp32"])
    for dtype in dtypes:
        precision.check_dtype(dtype, device)
    for fmt in spec.formats:
        precision.memory_format(fmt)
    reps, warmup = resolve_pairs("conv", device.type, spec.reps, spec.warmup)
    if spec.cuda_graph and not cuda:
        raise UserError(f"--cuda-graph needs a CUDA device, got --device {device}")
    if spec.cuda_graph and "bwd" in spec.passes:
        raise UserError("--cuda-graph replays whole passes: expected --passes from fwd, fwd+bwd, eval-fwd")
    return device, resolve_shapes(spec.shapes), dtypes, reps, warmup


def _inputs(shape: LayerShape, dtype: str, fmt: str, device: torch.device) -> torch.Tensor:
    x = torch.randn(shape.input_shape(), device=device, dtype=precision.activation_dtype(dtype))
    return x.contiguous(memory_format=precision.memory_format(fmt)) if shape.kind == "conv" else x


def _workload(layer: nn.Module, x: torch.Tensor, dy: torch.Tensor, pass_: str, dtype: str) -> Workload:
    """The timed step (and untimed prepare) of ``pass_`` for ``layer`` on input ``x``,
    output gradient ``dy``."""
    device = x.device
    layer.train(pass_ != "eval-fwd")
    x.requires_grad_(pass_ != "eval-fwd")
    params = list(layer.parameters())

    def forward() -> torch.Tensor:
        with precision.autocast(dtype, device):
            return layer(x)

    def zero_grad() -> None:
        for p in (*params, x):
            p.grad = None

    if pass_ == "eval-fwd":
        return Workload(torch.no_grad()(forward))
    if pass_ == "fwd":
        return Workload(forward)
    if pass_ == "fwd+bwd":
        return Workload(lambda: forward().backward(dy), zero_grad)
    pending: list[torch.Tensor] = []

    def prepare() -> None:
        zero_grad()
        pending.append(forward())

    return Workload(lambda: pending.pop().backward(dy), prepare)


@dataclass
class _Config:
    shape: LayerShape
    dtype: str
    fmt: str
    pass_: str

    def row(self, variant: str, **fields: Any) -> dict[str, Any]:
        return {"shape": self.shape.name, "variant": variant, "pass": self.pass_, "dtype": self.dtype,
                "memory_format": self.fmt, "layer": self.shape.kind, "fan_in": self.shape.fan_in, **fields}


def _configs(shapes: list[LayerShape], dtypes: list[str], formats: list[str], passes: list[str]) -> list[_Config]:
    return [_Config(s, d, f, p) for s in shapes for d in dtypes for f in formats for p in passes
            if s.kind == "conv" or f == "nchw"]


def _layer(variant: str, cfg: _Config, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    layer = build_layer(variant, cfg.shape, device)
    return layer.to(memory_format=precision.memory_format(cfg.fmt)) if cfg.shape.kind == "conv" else layer


def _measure_config(cfg: _Config, variants: list[str], device: torch.device, reps: int, warmup: int,
                    spec: ConvBenchSpec) -> Iterator[dict[str, Any]]:
    """One row per variant for one config (shape, precision, format, pass)."""
    x = _inputs(cfg.shape, cfg.dtype, cfg.fmt, device)
    plain = _layer("plain", cfg, device)
    with precision.autocast(cfg.dtype, device):
        dy = torch.randn_like(plain(x).detach())
    prepare = capture_graph if spec.cuda_graph else (lambda work: work)
    base = prepare(_workload(plain, x, dy, cfg.pass_, cfg.dtype))
    for variant in variants:
        try:
            work = base if variant == "plain" else prepare(_workload(_layer(variant, cfg, device), x, dy,
                                                                     cfg.pass_, cfg.dtype))
            stats = summarize(time_pairs(base, work, reps, warmup, device, spec.flush_l2))
        except Unavailable as err:
            yield cfg.row(variant, kind="skipped", reason=str(err))
            continue
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            yield cfg.row(variant, kind="skipped", reason="out of memory")
            continue
        except Exception as err:  # noqa: BLE001 - compiling needs a toolchain; report it, keep measuring
            # both compile code at run time (inductor / Triton: a C compiler, ptxas); their failure
            # must not cost the other variants' rows. The kernel-correctness check names the fault.
            if variant not in COMPILING:
                raise
            yield cfg.row(variant, kind="skipped", reason=f"{COMPILING[variant]} failed: {type(err).__name__}: {err}")
            continue
        yield {"kind": "measurement", "bench": "conv", **cfg.row(variant), "median_ms": stats.median_ms,
               "iqr_ms": stats.iqr_ms, "ratio_vs_plain": stats.ratio_vs_plain,
               "plain_median_ms": stats.base_median_ms, "pairs": stats.pairs, "cuda_graph": spec.cuda_graph}


def run_conv(spec: ConvBenchSpec, out: str | Path | None = None, show: bool = True) -> list[dict[str, Any]]:
    """Measure ``spec``; write the JSONL to ``out`` (env header first) and print the table
    when ``show``. Returns every row written, header included."""
    device, shapes, dtypes, reps, warmup = _resolve(spec)
    torch.backends.cudnn.benchmark = True  # recorded in the header: cuDNN picks its fastest algorithm
    configs = _configs(shapes, dtypes, spec.formats, spec.passes)
    with JsonlWriter(out) as writer:
        writer.write(environment(device, bench="conv", pairs=reps, warmup_pairs=warmup,
                                 cuda_graph=spec.cuda_graph, flush_l2=spec.flush_l2))
        for cfg in progress(configs, len(configs), "bench conv"):
            with precision.tf32_mode(cfg.dtype != "fp32"):
                for row in _measure_config(cfg, spec.variants, device, reps, warmup, spec):
                    writer.write(row)
    if show:
        print_table(writer.rows)
    return writer.rows
