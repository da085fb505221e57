"""Shared fixtures. Kept cheap: the suite runs on 2 CPU cores."""

import os
from pathlib import Path

import pytest
import torch

# The real local SLURM cluster (`slurm_cluster` fixture): tests/slurm_cluster.py.
pytest_plugins = ["slurm_cluster"]

# Triton kernels run through its interpreter when no GPU exists; the variable must be set
# before any @triton.jit function is defined (../shared/notes/triton-interpreter.md).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageNet-layout JPEG folder (``train/<digit>/*.jpg``, ``val/<digit>/*.jpg``; 32x32
    RGB; 1442 train / 355 val) from scikit-learn's digits, written once per session. Read only."""
    from cwn_bench.data import make_digits_dataset

    return make_digits_dataset(tmp_path_factory.mktemp("digits") / "digits", size=32)
