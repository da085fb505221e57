"""The GPU check's kernel-correctness part: the Triton forward and backward against the
float64 reference (:func:`cwn_bench.nn.functional.centered_weight_norm` with
``backend="reference"``, differentiated by autograd) on the paper's weight, GoogLeNet-BN's
largest fan-in, its classifier, an odd shape and a channels_last weight, for float32 ->
float32, float32 -> bfloat16 and float64, plus ``gradcheck`` in float64."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cwn_bench.bench.env import JsonlWriter, environment
from cwn_bench.bench.table import format_table

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
    from cwn_bench.nn.functional import centered_weight_norm
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
    w_ref = centered_weight_norm(v_ref, g_ref, EPS, backend="reference")
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
