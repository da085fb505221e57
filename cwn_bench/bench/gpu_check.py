"""``make gpu-check``: the one GPU check of the fused kernels and of CWN's cost.

Runs from a bare checkout (``PYTHONPATH=. python -m cwn_bench.bench.gpu_check``; needs
only torch and Triton) in a few minutes on one GPU:

1. ``kernel-correctness`` (:mod:`cwn_bench.bench.kernel_check`): the Triton forward and
   backward against the float64 reference, plus ``gradcheck`` in float64;
2. ``bench conv`` on the paper shape: every variant and pass, bf16 and tf32, nchw and nhwc;
3. ``bench conv`` on the googlenet_bn shapes (batch 64 and 256): cwn-triton and
   cwn-reference, fwd+bwd and eval-fwd, bf16 channels_last; then cwn-triton again with
   CUDA-graph replay (GPU time alone: small convs are otherwise launch-bound);
4. ``bench step``: googlenet_bn training steps, batch 64 and 256, bf16 channels_last;
5. ``harness`` (:mod:`cwn_bench.bench.harness`): googlenet_bn trained through
   ``cwn_bench.train.run`` on synthetic data against ``bench step``, batch 8, 64 and 256,
   under ``torch.cuda.set_sync_debug_mode("warn")``;
6. ``conv-paper-compiled``: the paper shape's ``cwn-compiled`` fwd+bwd (torch.compile), in its
   own file and last: each config compiles afresh (inductor, minutes in all), so a run cut
   short at the device's time limit loses only this part.

Everything goes to ``results/<UTC date>-<card>/``: one ``<part>.jsonl`` per part
(``correctness``, ``conv-paper``, ``conv-googlenet_bn``, ``conv-googlenet_bn-graph``, ``step``,
``harness``, ``conv-paper-compiled``), ``errors.txt`` with the trace of a part that
raised, and ``summary.md`` / ``summary.json`` (failed parts, seconds per part, parts not
run yet), rewritten after every part. The overhead table against the targets of
:mod:`cwn_bench.bench.targets` is printed. Exit status 1 when a kernel is wrong or a part failed. ``--quick --device cpu``
is a dry run of the same path on tiny shapes (the kernels through ``TRITON_INTERPRET=1``);
its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import shutil
import sys
import sysconfig
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cwn_bench.bench.conv import resolve_device, run_conv
from cwn_bench.bench.env import card_name
from cwn_bench.bench.harness import HarnessSpec, run_harness
from cwn_bench.bench.kernel_check import check_kernels
from cwn_bench.bench.options import ConvBenchSpec, StepBenchSpec
from cwn_bench.bench.step import run_step
from cwn_bench.bench.table import format_table, geomean_rows
from cwn_bench.bench.targets import TARGETS, Target
from cwn_bench.errors import UserError

def _results_dir(root: Path, device: torch.device) -> Path:
    card = re.sub(r"[^a-z0-9]+", "-", card_name(device).lower()).strip("-")
    base = root / f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}-{card}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _find(rows: list[dict], **match: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def overhead_table(results: dict[str, list[dict]], dtypes: list[str]) -> list[dict]:
    """The targets of :data:`cwn_bench.bench.targets.TARGETS` next to what was measured
    (``met`` is "-" when not measured or not a target)."""
    lines = []

    def add(what: str, value: float | None, target: Target | None) -> None:
        met = None if value is None or target is None else target.met(value)
        lines.append({"quantity": what, "ratio": _fmt(value), "target": target.text() if target else "(reported)",
                      "met": "-" if met is None else "yes" if met else "NO"})

    for dtype in dtypes:
        for variant, target in (("cwn-triton", TARGETS["paper_conv"]), ("cwn-reference", None), ("cwn-compiled", None)):
            row = _find(results.get("conv-paper", []) + results.get("conv-paper-compiled", []), kind="measurement",
                        variant=variant, dtype=dtype, memory_format="nchw", **{"pass": "fwd+bwd"})
            add(f"paper fwd+bwd {dtype} nchw {variant} / plain", row and row["ratio_vs_plain"], target)
    for part, how in (("conv-googlenet_bn", ""), ("conv-googlenet_bn-graph", " CUDA graph")):
        convs = [r for r in results.get(part, []) if r.get("layer") == "conv"]
        for pass_, target in (("fwd+bwd", TARGETS["googlenet_convs"]), ("eval-fwd", TARGETS["googlenet_convs_eval"])):
            for summary in geomean_rows([r for r in convs if r["pass"] == pass_]):
                add(f"googlenet_bn convs geomean {pass_} {summary['dtype']} {summary['memory_format']}{how} "
                    f"{summary['variant']} / plain ({summary['shapes']} shapes)", summary["geomean_ratio"],
                    target if summary["variant"] == "cwn-triton" else None)
    for row in results.get("step", []):
        if row.get("kind") == "measurement" and row["variant"] == "cwn":
            add(f"googlenet_bn train step batch {row['batch']} {row['dtype']} {row['memory_format']} cwn / plain "
                f"({row['img_per_s']:.4g} img/s)", row["ratio_vs_plain"], TARGETS["train_step"])
    for row in results.get("harness", []):
        if row.get("kind") == "harness":
            how = " CUDA graph" if row.get("cuda_graph") else ""
            add(f"harness batch {row['batch']} {row['dtype']} {row['memory_format']}{how} train / bench step img/s "
                f"({row['train_img_per_s']:.4g} vs {row['step_img_per_s']:.4g}; "
                f"{row['sync_warnings']} sync warnings between sync points)", row["ratio"], TARGETS["harness"])
    return lines


def _parts(device: torch.device, quick: bool, out_dir: Path) -> tuple[list[tuple[str, Callable[[], Any]]], list[str]]:
    """``([(name, run)], dtypes)``: the benchmark parts in order and the precisions timed."""
    cuda = device.type == "cuda"
    dtypes = ["bf16", "tf32"] if cuda else ["bf16", "fp32"]
    reps = {} if not quick else {"reps": 2, "warmup": 1}
    paper = ["paper"] if not quick else ["paper:2x8x8x8-8x3x3"]
    googlenet = ["googlenet_bn"] if not quick else ["googlenet_bn:2x8x8x8-16x1x1", "googlenet_bn:2x16x4x4-8x2x2s2p0"]
    variants = ["plain", "cwn-reference", "cwn-explicit", "cwn-triton", "wn", "ws"]
    conv_paper = ConvBenchSpec(paper, variants, ["fwd", "bwd", "fwd+bwd", "eval-fwd"], dtypes, ["nchw", "nhwc"],
                               str(device), **reps)
    conv_compiled = ConvBenchSpec(paper, ["cwn-compiled"], ["fwd+bwd"], dtypes, ["nchw", "nhwc"], str(device), **reps)
    conv_googlenet = ConvBenchSpec(googlenet, ["cwn-triton", "cwn-reference"], ["fwd+bwd", "eval-fwd"], ["bf16"],
                                   ["nhwc"], str(device), **reps)
    conv_graph = ConvBenchSpec(googlenet, ["cwn-triton"], ["fwd+bwd", "eval-fwd"], ["bf16"], ["nhwc"], str(device),
                               cuda_graph=True, **reps)
    step = StepBenchSpec([64, 256] if not quick else [2], 224 if not quick else 64, "bf16" if cuda else "fp32", "nhwc",
                         str(device), **reps)
    harness = HarnessSpec([8, 64, 256] if not quick else [2], step.image_size, step.dtype, step.memory_format,
                          str(device), steps=60 if not quick else 2, **reps)
    parts = [("conv-paper", run_conv, conv_paper), ("conv-googlenet_bn", run_conv, conv_googlenet),
             ("conv-googlenet_bn-graph", run_conv, conv_graph), ("step", run_step, step),
             ("harness", run_harness, harness), ("conv-paper-compiled", run_conv, conv_compiled)]
    left_out = {"conv-paper-compiled"} if quick else set()  # 20-30 s of inductor per config on a CPU
    left_out |= set() if cuda else {"conv-googlenet_bn-graph"}  # CUDA graphs need a GPU
    return [(name, functools.partial(run, spec, out_dir / f"{name}.jsonl")) for name, run, spec in parts
            if name not in left_out], dtypes


PARTS = ("kernel-correctness", "conv-paper", "conv-googlenet_bn", "conv-googlenet_bn-graph", "step", "harness",
         "conv-paper-compiled")


def toolchain_problem() -> str | None:
    """Why Triton could not build its kernel launcher here, or None: on its first kernel it
    compiles a small C module with ``$CC``, else gcc or clang, against Python's headers
    (``triton.runtime.build``). Checked before any part runs, so a bare machine without them
    costs seconds of device time, not a run of failed parts."""
    cc = os.environ.get("CC")
    if cc and not shutil.which(cc):
        return f"CC={cc!r} is not a program on PATH: Triton builds its kernel launcher with it"
    if not (cc or shutil.which("gcc") or shutil.which("clang")):
        return ("no C compiler: Triton builds its kernel launcher with $CC, gcc or clang; install gcc "
                "(e.g. apt-get install build-essential) or set CC")
    scheme = sysconfig.get_default_scheme()  # as triton.runtime.build picks Python's include folder
    header = Path(sysconfig.get_paths(scheme="posix_prefix" if scheme == "posix_local" else scheme)["include"]) / "Python.h"
    if not header.is_file():
        return f"{header} is missing: Triton builds its kernel launcher against Python's headers; install them (python3-dev)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cwn_bench.bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="(default: cuda)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), metavar="PART",
                        help=f"parts to run, in this order: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 2 pairs: a dry run of the path")
    parser.add_argument("--results-root", type=Path, default=Path("results"), help="(default: results)")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except UserError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
    if device.type == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are defined
    elif problem := toolchain_problem():
        print(f"gpu-check: error: {problem}", file=sys.stderr)
        return 2
    started = time.monotonic()
    out_dir = _results_dir(args.results_root, device)
    out_dir.mkdir(parents=True)
    print(f"# gpu-check on {card_name(device)}: writing {out_dir}", flush=True)
    parts, dtypes = _parts(device, args.quick, out_dir)
    parts.insert(0, ("kernel-correctness", functools.partial(check_kernels, device, args.quick,
                                                             out_dir / "correctness.jsonl")))
    parts = [(name, run) for name, run in parts if name in args.parts]
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for done, (name, run) in enumerate(parts, 1):
        print(f"\n# {name}", flush=True)
        part_start = time.monotonic()
        try:
            results[name] = run()
        except Exception:  # noqa: BLE001 - keep the other parts' results; the trace goes to errors.txt
            results[name] = None
            with (out_dir / "errors.txt").open("a") as f:
                f.write(f"== {name}\n{traceback.format_exc()}\n")
            traceback.print_exc()
        seconds[name] = round(time.monotonic() - part_start, 1)
        # rewritten after every part: a run killed at the device's time limit keeps its table
        summary, failed = _write_summary(out_dir, device, args.quick, results, dtypes, seconds, started,
                                         [later for later, _ in parts[done:]])
    print("\n" + summary)
    return 1 if failed else 0


def _write_summary(out_dir: Path, device: torch.device, quick: bool, results: dict[str, Any], dtypes: list[str],
                   seconds: dict[str, float], started: float, pending: list[str]) -> tuple[str, list[str]]:
    """Write ``summary.md`` and ``summary.json`` for the parts run so far; return the
    summary text and the failed parts."""
    # a part failed when it raised; the correctness part also when a kernel was wrong
    failed = [name for name, result in results.items() if result is None or result is False]
    measured = {name: result for name, result in results.items() if isinstance(result, list)}
    table = format_table(overhead_table(measured, dtypes), ("quantity", "ratio", "target", "met"))
    minutes = (time.monotonic() - started) / 60
    summary = (f"# CWN overhead on {card_name(device)} ({out_dir.name}, {minutes:.1f} min"
               f"{', QUICK dry run: numbers mean nothing' if quick else ''})\n\n```\n{table}\n```\n"
               f"\nfailed: {', '.join(failed) or 'nothing'}\n"
               + (f"not run yet: {', '.join(pending)}\n" if pending else ""))
    (out_dir / "summary.md").write_text(summary)
    timing = {"failed": failed, "minutes": round(minutes, 2), "seconds": seconds, "pending": pending}
    (out_dir / "summary.json").write_text(json.dumps(timing) + "\n")
    return summary, failed


if __name__ == "__main__":
    sys.exit(main())
