"""What the ``cwn-bench bench conv|step|data`` sub-commands measure: the specs, their
choices and defaults, and the command-line options built from them.

Kept free of torch so that ``cwn-bench --help`` stays fast; the modules that run the
benchmarks (:mod:`~cwn_bench.bench.conv`, :mod:`~cwn_bench.bench.step`) take the specs.
"""

from __future__ import annotations

import argparse
import datetime
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cwn_bench.config import DataConfig, TrainConfig
from cwn_bench.errors import UserError

VARIANTS = ("plain", "cwn-reference", "cwn-explicit", "cwn-triton", "cwn-compiled", "wn", "ws")
PASSES = ("fwd", "bwd", "fwd+bwd", "eval-fwd")
DTYPES = ("fp32", "tf32", "bf16")
FORMATS = ("nchw", "nhwc")
T = TypeVar("T")
# (measured pairs, warm-up pairs) when --reps / --warmup are not given, by bench and device type
DEFAULT_PAIRS = {"conv": {"cuda": (50, 10), "cpu": (10, 2)}, "step": {"cuda": (20, 5), "cpu": (3, 1)}}
SHAPES_HELP = ("shape sets (paper, googlenet_bn) and/or shapes [SET:]NxCxHxW-OxKHxKW[sS][pP] (conv, stride S, "
               "padding P, default KH//2) or [SET:]NxC-O (linear), e.g. test:2x8x8x8-8x3x3")


@dataclass
class ConvBenchSpec:
    """What ``bench conv`` measures. ``None`` means the device's default: dtypes bf16 + tf32
    on a GPU, fp32 on a CPU; device cuda when available; pairs from :data:`DEFAULT_PAIRS`."""

    shapes: list[str] = field(default_factory=lambda: ["paper"])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    passes: list[str] = field(default_factory=lambda: ["fwd+bwd"])
    dtypes: list[str] | None = None
    formats: list[str] = field(default_factory=lambda: ["nchw"])
    device: str | None = None
    reps: int | None = None  # measured pairs
    warmup: int | None = None  # warm-up pairs
    cuda_graph: bool = False
    flush_l2: bool = True


@dataclass
class StepBenchSpec:
    """What ``bench step`` measures; ``None`` as in :class:`ConvBenchSpec`."""

    batch_sizes: list[int] = field(default_factory=lambda: [64, 256])
    image_size: int = 224  # pixels
    dtype: str = "bf16"
    memory_format: str = "nhwc"
    device: str | None = None
    reps: int | None = None
    warmup: int | None = None
    cuda_graph: bool = False  # the whole step captured once and replayed


def default_out(bench: str) -> Path:
    """``runs/bench/<bench>-<UTC time>.jsonl``: a new file for every run."""
    return Path("runs") / "bench" / f"{bench}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}.jsonl"


def resolve_pairs(bench: str, device_type: str, reps: int | None, warmup: int | None) -> tuple[int, int]:
    """``(reps, warmup)``, ``bench``'s defaults for ``device_type`` (cuda | cpu) where None."""
    default_reps, default_warmup = DEFAULT_PAIRS[bench][device_type]
    reps = default_reps if reps is None else reps
    warmup = default_warmup if warmup is None else warmup
    if reps < 1 or warmup < 0:
        raise UserError(f"--reps {reps} / --warmup {warmup}: need at least 1 pair and no negative warm-up")
    return reps, warmup


def at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an int >= ``low`` (and <= ``high``): ``--batch-size 0`` or a size
    that no memory holds is a usage error, not a crash."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected an integer of at most {high}, got {value}")
        return value
    parse.__name__ = "int"  # argparse's "invalid int value: 'abc'" for non-numbers
    return parse


def finite(text: str) -> float:
    """argparse type: a float that is not NaN or infinite (``--img-per-s nan`` is a usage
    error, not a traceback further down)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return value


finite.__name__ = "float"  # argparse's "invalid float value: 'abc'" for non-numbers


def _common(p: argparse.ArgumentParser, bench: str) -> None:
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    (gpu_reps, gpu_warmup), (cpu_reps, cpu_warmup) = DEFAULT_PAIRS[bench]["cuda"], DEFAULT_PAIRS[bench]["cpu"]
    p.add_argument("--reps", type=int, help=f"measured pairs (default: {gpu_reps} on a GPU, {cpu_reps} on a CPU)")
    p.add_argument("--warmup", type=int,
                   help=f"warm-up pairs, not recorded (default: {gpu_warmup} on a GPU, {cpu_warmup} on a CPU)")
    p.add_argument("--out", type=Path,
                   help=f"JSONL to create (default: {default_out(bench).parent}/{bench}-<time>.jsonl)")


def _listed(values: Sequence[object]) -> str:
    return " ".join(map(str, values))


def add_conv_arguments(p: argparse.ArgumentParser) -> None:
    spec = ConvBenchSpec()
    p.add_argument("--shapes", nargs="+", default=spec.shapes, metavar="SHAPE",
                   help=f"{SHAPES_HELP} (default: {_listed(spec.shapes)})")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=spec.variants, metavar="VARIANT",
                   help=f"{', '.join(VARIANTS)} (default: all)")
    p.add_argument("--passes", nargs="+", choices=PASSES, default=spec.passes, metavar="PASS",
                   help=f"{', '.join(PASSES)} (default: {_listed(spec.passes)})")
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=spec.dtypes, metavar="DTYPE",
                   help="fp32, tf32, bf16 (autocast) (default: bf16 tf32 on a GPU, fp32 on a CPU)")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=spec.formats, metavar="FORMAT",
                   help=f"nchw, nhwc (channels_last) (default: {_listed(spec.formats)})")
    p.add_argument("--cuda-graph", action="store_true", help="replay each pass as a CUDA graph (GPU; not with bwd)")
    p.add_argument("--no-flush-l2", dest="flush_l2", action="store_false",
                   help="do not flush the L2 cache before each timed repetition")
    _common(p, "conv")


def add_step_arguments(p: argparse.ArgumentParser) -> None:
    spec = StepBenchSpec()
    p.add_argument("--batch-sizes", nargs="+", type=at_least(1, 1 << 16), default=spec.batch_sizes, metavar="N",
                   help=f"(default: {_listed(spec.batch_sizes)})")
    p.add_argument("--image-size", type=at_least(1, 4096), default=spec.image_size,
                   help=f"square input side in pixels (default: {spec.image_size})")
    p.add_argument("--dtype", choices=DTYPES, default=spec.dtype, help=f"(default: {spec.dtype}, autocast)")
    p.add_argument("--format", dest="memory_format", choices=FORMATS, default=spec.memory_format,
                   help=f"(default: {spec.memory_format})")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture the whole step (fwd, bwd, SGD) once as a CUDA graph and replay it (GPU)")
    _common(p, "step")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The loader options; their defaults are training's (``data.*``, ``train.batch_size``)."""
    data, train = DataConfig(), TrainConfig()
    p.add_argument("root", metavar="ROOT", help="ImageNet-layout folder (train/<class>/*.jpg, val/<class>/*.jpg)")
    p.add_argument("--loader", nargs="+", choices=("dali", "torch", "decode-eighth", "decode-only"), required=True,
                   metavar="LOADER",
                   help="dali, torch, decode-eighth and/or decode-only (the reference: whole-image decodes of the same "
                        "files on the same cores, nothing else; decode-eighth: the same at 1/8 scale, about the least "
                        "any crop's decode costs); several are timed alternately and each one's img/s ratio to the "
                        "last printed")
    p.add_argument("--reps", type=at_least(1), default=1, help="alternating repetitions (default: 1)")
    p.add_argument("--batch-size", type=at_least(1), default=train.batch_size,
                   help=f"images per batch (default: {train.batch_size})")
    p.add_argument("--epochs", type=at_least(1), default=1, help="timed epochs (default: 1)")
    p.add_argument("--image-size", type=at_least(1), default=data.image_size,
                   help=f"train crop side, pixels (default: {data.image_size})")
    p.add_argument("--workers", type=at_least(0), default=data.workers,
                   help=f"DataLoader processes / DALI threads (default: {data.workers})")
    p.add_argument("--warmup", type=at_least(0), default=2, help="untimed batches first (default: 2)")
    p.add_argument("--skip-corrupt", action="store_true", help="skip and count unreadable images instead of failing")
    p.add_argument("--out", type=Path,
                   help=f"JSONL to create (default: {default_out('data').parent}/data-<time>.jsonl)")


BENCHES = {  # name: (help, description, options)
    "conv": ("plain conv/linear vs CWN (reference, explicit, Triton, compiled), WN, WS",
             "Time each variant against the plain layer, alternating pair by pair; write JSONL (env header, one "
             "row per measurement) and print a table.", add_conv_arguments),
    "step": ("googlenet_bn training steps (fwd, bwd, SGD) plain vs CWN, img/s",
             "Time whole training steps of googlenet_bn on synthetic images, plain and CWN alternately; write "
             "JSONL and print img/s and the ratio.", add_step_arguments),
    "data": ("img/s of the training input pipeline (dali or torch) over a JPEG folder, vs a decode-only reference",
             "Read ROOT (train/<class>/*.jpg) through the training pipeline for whole epochs after a short "
             "warm-up; print img/s and write JSONL (one row per loader and rep; with two loaders, their median "
             "img/s ratio).", add_data_arguments),
}


def add_parser(benches: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """``bench NAME`` (a key of :data:`BENCHES`) with its help, description and options."""
    help_text, description, add_arguments = BENCHES[name]
    p = benches.add_parser(name, help=help_text, description=description)
    add_arguments(p)
    return p


def spec_from_args(spec_type: type[T], args: argparse.Namespace) -> T:
    """An instance of the dataclass ``spec_type`` from the parsed flags of the same names."""
    return spec_type(**{name: getattr(args, name) for name in spec_type.__dataclass_fields__})
