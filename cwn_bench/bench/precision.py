"""The benchmark's precisions and memory formats, as contexts and tensor settings.

- ``fp32``  float32 everywhere, TF32 off for cuDNN and cuBLAS;
- ``tf32``  float32 tensors, TF32 tensor cores on (CUDA only);
- ``bf16``  ``torch.autocast`` to bfloat16 with float32 parameters; activations (the
            benchmark's inputs and output gradients) are bfloat16 as they are inside a
            bf16 network, so the only cast left in the plain layer is its weight's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from cwn_bench.bench.options import DTYPES, FORMATS
from cwn_bench.errors import UserError, brief


def check_dtype(dtype: str, device: torch.device) -> None:
    """Reject a precision the device does not have."""
    if dtype not in DTYPES:
        raise UserError(f"--dtypes: unknown precision {brief(dtype)}; expected one of {', '.join(DTYPES)}")
    if dtype == "tf32" and device.type != "cuda":
        raise UserError("--dtypes tf32 needs a CUDA device (TF32 is a tensor-core mode); use fp32 or bf16 on a CPU")


def activation_dtype(dtype: str) -> torch.dtype:
    """The dtype of a layer's input and of its output's gradient."""
    return torch.bfloat16 if dtype == "bf16" else torch.float32


@contextlib.contextmanager
def tf32_mode(enabled: bool) -> Iterator[None]:
    """Set cuDNN's and cuBLAS's TF32 switches, restoring them on exit."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(dtype: str, device: torch.device, cache: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``bf16``, a null context otherwise. ``cache=False`` for a step
    captured in a CUDA graph (torch's rule: autocast's weight cast cache must be off there)."""
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def memory_format(fmt: str) -> torch.memory_format:
    if fmt not in FORMATS:
        raise UserError(f"--formats: unknown memory format {brief(fmt)}; expected one of {', '.join(FORMATS)}")
    return torch.channels_last if fmt == "nhwc" else torch.contiguous_format
