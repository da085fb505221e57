"""Shared fixtures. Kept cheap: the suite runs on 2 CPU cores."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
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


HOLD = ("import sys, time; from pathlib import Path; from cwn_bench.rundir.lock import exclusive\n"
        "with exclusive(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)")


@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path], subprocess.Popen]]:
    """``start(run_dir)``: a process that holds ``run_dir``'s training lock (as a trainer
    does) until it is killed; returns once the lock is held. Killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(run_dir: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()  # SIGKILL: no cleanup code runs, the kernel drops the lock
        proc.wait()
        proc.stdout.close()
