"""``make gpu-check``: the one GPU check of the fused kernels and of CWN's cost.

Runs from a bare checkout (``PYTHONPATH=. python -m cwn_bench.bench.gpu_check``; needs
only torch and Triton) in a few minutes on one GPU:

1. kernel correctness: the Triton forward and backward against the float64 reference
   (:func:`cwn_bench.nn.functional._reference` differentiated by autograd) on the paper's
   weight, GoogLeNet-BN's largest fan-in, its classifier, an odd shape and a
   channels_last weight, for float32 -> float32, float32 -> bfloat16 and float64, plus
   ``gradcheck`` in float64;
2. ``bench conv`` on the paper shape: every variant and pass, bf16 and tf32, nchw and nhwc
   (``cwn-compiled`` for fwd+bwd only, in its own file: each config compiles afresh);
3. ``bench conv`` on the googlenet_bn shapes (batch 64 and 256): cwn-triton and
   cwn-reference, fwd+bwd and eval-fwd, bf16 channels_last; then cwn-triton again with
   CUDA-graph replay (GPU time alone: small convs are otherwise launch-bound);
4. ``bench step``: googlenet_bn training steps, batch 64 and 256, bf16 channels_last.

Everything goes to ``results/<UTC date>-<card>/``: one ``<part>.jsonl`` per part
(``correctness``, ``conv-paper``, ``conv-paper-compiled``, ``conv-googlenet_bn``,
``conv-googlenet_bn-graph``, ``step``), ``errors.txt`` with the trace of a part that
raised, and ``summary.md`` / ``summary.json`` (failed parts, seconds per part, parts not
run yet), rewritten after every part. The overhead table against the issue's targets is
printed. Exit status 1 when a kernel is wrong or a part failed. ``--quick --device cpu``
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
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cwn_bench.bench.conv import resolve_device, run_conv
from cwn_bench.bench.env import JsonlWriter, card_name, environment
from cwn_bench.bench.options import ConvBenchSpec, StepBenchSpec
from cwn_bench.bench.step import run_step
from cwn_bench.bench.table import format_table, geomean_rows
from cwn_bench.errors import UserError

EPS = 1e-5
# (weight shape, channels_last): the paper's conv, GoogLeNet-BN's largest fan-in
# (1024 * 2 * 2 = 4096, one chunk) and classifier, a fan-in over one chunk (three: 4096,
# 4096, 808), an odd shape, the paper's weight in channels_last.
FULL_CASES = [((128, 128, 3, 3), False), ((1024, 1024, 2, 2), False), ((1000, 1024), False), ((48, 9000), False),
              ((7, 3, 5, 5), False), ((128, 128, 3, 3), True)]
QUICK_CASES = [((5, 3, 3, 3), False), ((2, 4100), False), ((6, 4, 3, 3), True)]
# (input dtype, output dtype, tolerance on max|error| / max|reference| for w, for dv and dg):
# a bf16 output is rounded (2^-8 relative) but the gradients are still computed in float32.
PRECISIONS = [(torch.float32, torch.float32, 1e-5, 2e-5), (torch.float32, torch.bfloat16, 1e-2, 2e-5),
              (torch.float64, torch.float64, 1e-12, 1e-12)]


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()


def _check_case(shape: tuple[int, ...], channels_last: bool, dtypes: tuple, device: torch.device) -> dict[str, Any]:
    from cwn_bench.nn.functional import _reference
    from cwn_bench.nn.triton_cwn import centered_weight_norm_triton

    in_dtype, out_dtype, w_tol, grad_tol = dtypes
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(shape, generator=gen, dtype=torch.float64) + 0.5  # a non-zero mean per row
    g = torch.rand(shape[0], generator=gen, dtype=torch.float64) + 0.5
    grad_w = torch.randn(shape, generator=gen, dtype=torch.float64).to(out_dtype)  # as the conv hands it back
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    v_dev = v.to(device, in_dtype).contiguous(memory_format=fmt).requires_grad_()
    g_dev = g.to(device, in_dtype).requires_grad_()
    w = centered_weight_norm_triton(v_dev, g_dev, EPS, out_dtype)
    dv, dg = torch.autograd.grad(w, (v_dev, g_dev), grad_w.to(device))
    v_ref = v_dev.detach().cpu().double().requires_grad_()  # the same (rounded) inputs, in float64
    g_ref = g_dev.detach().cpu().double().requires_grad_()
    w_ref = _reference(v_ref, g_ref, EPS)
    dv_ref, dg_ref = torch.autograd.grad(w_ref, (v_ref, g_ref), grad_w.double())
    errors = {"w_rel_err": _rel_err(w.cpu(), w_ref.detach()), "dv_rel_err": _rel_err(dv.cpu(), dv_ref),
              "dg_rel_err": _rel_err(dg.cpu(), dg_ref)}
    ok = errors["w_rel_err"] <= w_tol and max(errors["dv_rel_err"], errors["dg_rel_err"]) <= grad_tol
    return {"kind": "correctness", "case": "x".join(map(str, shape)) + (" channels_last" if channels_last else ""),
            "in_dtype": str(in_dtype).removeprefix("torch."), "out_dtype": str(out_dtype).removeprefix("torch."),
            "strides_kept": w.stride() == v_dev.stride(), **errors, "w_tol": w_tol, "grad_tol": grad_tol, "ok": ok}


def _gradcheck(device: torch.device) -> dict[str, Any]:
    from cwn_bench.nn.triton_cwn import centered_weight_norm_triton

    v = torch.randn(6, 3, 3, 3, device=device, dtype=torch.float64, requires_grad=True)
    g = torch.rand(6, device=device, dtype=torch.float64, requires_grad=True)
    ok = torch.autograd.gradcheck(lambda a, b: centered_weight_norm_triton(a, b, EPS, torch.float64), (v, g),
                                  raise_exception=False)
    return {"kind": "correctness", "case": "gradcheck 6x3x3x3", "in_dtype": "float64", "ok": bool(ok)}


def check_kernels(device: torch.device, quick: bool, out: Path) -> bool:
    """Correctness rows to ``out``; True when every case is within its tolerance and the
    output kept the weight's strides."""
    with JsonlWriter(out) as writer:
        writer.write(environment(device, bench="kernel-correctness"))
        for shape, channels_last in QUICK_CASES if quick else FULL_CASES:
            for dtypes in PRECISIONS:
                writer.write(_check_case(shape, channels_last, dtypes, device))
        writer.write(_gradcheck(device))
    rows = writer.rows[1:]
    print(format_table(rows, ("case", "in_dtype", "out_dtype", "w_rel_err", "dv_rel_err", "dg_rel_err", "w_tol",
                              "grad_tol", "ok")))
    return all(r["ok"] and r.get("strides_kept", True) for r in rows)


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
    """The issue's targets next to what was measured (``met`` is None when not measured)."""
    lines = []

    def add(what: str, value: float | None, target: float | None) -> None:
        met = None if value is None or target is None else value <= target
        lines.append({"quantity": what, "ratio": _fmt(value), "target": f"<= {target}" if target else "(reported)",
                      "met": "-" if met is None else "yes" if met else "NO"})

    for dtype in dtypes:
        for variant, target in (("cwn-triton", 1.02), ("cwn-reference", None), ("cwn-compiled", None)):
            row = _find(results.get("conv-paper", []) + results.get("conv-paper-compiled", []), kind="measurement",
                        variant=variant, dtype=dtype, memory_format="nchw", **{"pass": "fwd+bwd"})
            add(f"paper fwd+bwd {dtype} nchw {variant} / plain", row and row["ratio_vs_plain"], target)
    for part, how in (("conv-googlenet_bn", ""), ("conv-googlenet_bn-graph", " CUDA graph")):
        convs = [r for r in results.get(part, []) if r.get("layer") == "conv"]
        for pass_, target in (("fwd+bwd", 1.03), ("eval-fwd", 1.005)):
            for summary in geomean_rows([r for r in convs if r["pass"] == pass_]):
                add(f"googlenet_bn convs geomean {pass_} {summary['dtype']} {summary['memory_format']}{how} "
                    f"{summary['variant']} / plain ({summary['shapes']} shapes)", summary["geomean_ratio"],
                    target if summary["variant"] == "cwn-triton" else None)
    for row in results.get("step", []):
        if row.get("kind") == "measurement" and row["variant"] == "cwn":
            add(f"googlenet_bn train step batch {row['batch']} {row['dtype']} {row['memory_format']} cwn / plain "
                f"({row['img_per_s']:.4g} img/s)", row["ratio_vs_plain"], 1.03)
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
    parts = [("conv-paper", run_conv, conv_paper), ("conv-paper-compiled", run_conv, conv_compiled),
             ("conv-googlenet_bn", run_conv, conv_googlenet), ("conv-googlenet_bn-graph", run_conv, conv_graph),
             ("step", run_step, step)]
    left_out = {"conv-paper-compiled"} if quick else set()  # 20-30 s of inductor per config on a CPU
    left_out |= set() if cuda else {"conv-googlenet_bn-graph"}  # CUDA graphs need a GPU
    return [(name, functools.partial(run, spec, out_dir / f"{name}.jsonl")) for name, run, spec in parts
            if name not in left_out], dtypes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cwn_bench.bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="(default: cuda)")
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
    started = time.monotonic()
    out_dir = _results_dir(args.results_root, device)
    out_dir.mkdir(parents=True)
    print(f"# gpu-check on {card_name(device)}: writing {out_dir}", flush=True)
    parts, dtypes = _parts(device, args.quick, out_dir)
    parts.insert(0, ("kernel-correctness", functools.partial(check_kernels, device, args.quick,
                                                             out_dir / "correctness.jsonl")))
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
