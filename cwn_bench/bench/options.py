"""Command-line options of ``cwn-bench bench conv`` / ``bench step`` and their choices.

Kept free of torch so that ``cwn-bench --help`` stays fast; the modules that run the
benchmarks import their choices from here.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TypeVar

VARIANTS = ("plain", "cwn-reference", "cwn-explicit", "cwn-triton", "cwn-compiled", "wn", "ws")
PASSES = ("fwd", "bwd", "fwd+bwd", "eval-fwd")
DTYPES = ("fp32", "tf32", "bf16")
FORMATS = ("nchw", "nhwc")
T = TypeVar("T")
SHAPES_HELP = ("shape sets (paper, googlenet_bn) and/or shapes [SET:]NxCxHxW-OxKHxKW[sS][pP] (conv, stride S, "
               "padding P, default KH//2) or [SET:]NxC-O (linear), e.g. test:2x8x8x8-8x3x3 (default: paper)")


def default_out(bench: str) -> Path:
    """``runs/bench/<bench>-<UTC time>.jsonl``: a new file for every run."""
    return Path("runs") / "bench" / f"{bench}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}.jsonl"


def _common(p: argparse.ArgumentParser, bench: str) -> None:
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--reps", type=int, help="measured pairs (default: see above)")
    p.add_argument("--warmup", type=int, help="warm-up pairs, not recorded (default: see above)")
    p.add_argument("--out", type=Path,
                   help=f"JSONL to create (default: {default_out(bench).parent}/{bench}-<time>.jsonl)")


def add_conv_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", nargs="+", default=["paper"], metavar="SHAPE", help=SHAPES_HELP)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="VARIANT",
                   help=f"{', '.join(VARIANTS)} (default: all)")
    p.add_argument("--passes", nargs="+", choices=PASSES, default=["fwd+bwd"], metavar="PASS",
                   help=f"{', '.join(PASSES)} (default: fwd+bwd)")
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, metavar="DTYPE",
                   help="fp32, tf32, bf16 (autocast) (default: bf16 tf32 on a GPU, fp32 on a CPU)")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=["nchw"], metavar="FORMAT",
                   help="nchw, nhwc (channels_last) (default: nchw)")
    p.add_argument("--cuda-graph", action="store_true", help="replay each pass as a CUDA graph (GPU; not with bwd)")
    p.add_argument("--no-flush-l2", dest="flush_l2", action="store_false",
                   help="do not flush the L2 cache before each timed repetition")
    _common(p, "conv")


def add_step_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256], metavar="N", help="(default: 64 256)")
    p.add_argument("--image-size", type=int, default=224, help="square input side in pixels (default: 224)")
    p.add_argument("--dtype", choices=DTYPES, default="bf16", help="(default: bf16 autocast)")
    p.add_argument("--format", dest="memory_format", choices=FORMATS, default="nhwc", help="(default: nhwc)")
    _common(p, "step")


def spec_from_args(spec_type: type[T], args: argparse.Namespace) -> T:
    """An instance of the dataclass ``spec_type`` from the parsed flags of the same names."""
    return spec_type(**{name: getattr(args, name) for name in spec_type.__dataclass_fields__})
