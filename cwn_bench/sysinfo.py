"""Facts about this machine and this code that every result records (ground floor).

:func:`environment` is the one record of them: the training engine's ``run.json["env"]``
and the benchmarks' JSONL header both start from it, so a run and a benchmark name the
versions, the GPUs, the CPU and the code's commit with the same keys.

Optional packages (DALI, submitit, Triton) are looked up with ``importlib.metadata``,
never imported, so this costs no import time and works without them.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def run_command(cmd: list[str], cwd: Path | None = None) -> str | None:
    """Stripped stdout of ``cmd``, or None when it is missing, fails or prints nothing."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (Linux), else what ``platform`` reports."""
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), flags=re.MULTILINE)
    except OSError:
        names = []
    return names[0].strip() if names else platform.processor() or platform.machine()


def gpu_driver() -> str | None:
    """The NVIDIA driver version (first GPU), or None without nvidia-smi."""
    out = run_command(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.splitlines()[0] if out else None


def code_version() -> dict[str, Any]:
    """``{"commit", "dirty", "snapshot"}`` of the running code. Jobs run from a copy of the
    packages taken at submission (``launch.snapshot``), which has no ``.git`` but a
    ``SNAPSHOT.json`` beside the packages recording the commit; a checkout asks git; a
    tree copied without either (rsync, a lent GPU machine) names its commit in
    ``CWN_BENCH_COMMIT`` (dirty state unknown)."""
    snapshot = PACKAGE_DIR.parent / "SNAPSHOT.json"
    if snapshot.is_file():
        try:
            data = json.loads(snapshot.read_text())
            return {"commit": data.get("commit"), "dirty": bool(data.get("dirty")), "snapshot": str(snapshot.parent)}
        except (OSError, ValueError):
            pass
    commit = run_command(["git", "rev-parse", "HEAD"], PACKAGE_DIR)
    if commit is None:
        return {"commit": os.environ.get("CWN_BENCH_COMMIT") or None, "dirty": None, "snapshot": None}
    status = run_command(["git", "status", "--porcelain", "--untracked-files=no"], PACKAGE_DIR)
    return {"commit": commit, "dirty": bool(status), "snapshot": None}


def _version(dist_name: str) -> str | None:
    try:
        return md.version(dist_name)
    except md.PackageNotFoundError:
        return None


def dali_version() -> str | None:
    """``"nvidia-dali-cuda130 2.4.0"``: DALI's wheel name carries the CUDA it was built for."""
    for dist in md.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith("nvidia-dali"):
            return f"{name} {dist.version}"
    return None


def gpus() -> dict[str, Any]:
    """``{"count", "names", "driver"}`` of the GPUs this process sees (count 0 without CUDA)."""
    if not torch.cuda.is_available():
        return {"count": 0, "names": [], "driver": None}
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"count": len(names), "names": names, "driver": gpu_driver()}


def environment() -> dict[str, Any]:
    """Versions (python, torch, torchvision, triton, CUDA, cuDNN, DALI, submitit; None where
    absent), ``gpu`` (:func:`gpus`), CPU model and torch's thread count, host, platform and
    ``git`` (:func:`code_version`) of this process."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "dali": dali_version(),
        "submitit": _version("submitit"),
        "gpu": gpus(),
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git": code_version(),
    }
