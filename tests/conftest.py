"""Shared fixtures. Kept cheap: the suite runs on 2 CPU cores."""

import os

import torch

# Triton kernels run through its interpreter when no GPU exists; the variable must be set
# before any @triton.jit function is defined (../shared/notes/triton-interpreter.md).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
