"""What a result needs to be reproduced: versions, hardware, hosts, code and SLURM ids.

Optional packages (DALI, submitit, Triton) are looked up with ``importlib.metadata``,
never imported, so capturing the environment costs no import time and works without them.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import socket
import sys
from typing import Any

import torch

from cwn_bench import sysinfo

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
              "SLURM_JOB_NODELIST", "SLURM_JOB_PARTITION")


def _version(dist_name: str) -> str | None:
    try:
        return md.version(dist_name)
    except md.PackageNotFoundError:
        return None


def _dali_version() -> str | None:
    """DALI's wheel name carries the CUDA version (nvidia-dali-cuda130, ...)."""
    for d in md.distributions():
        name = d.metadata["Name"] or ""
        if name.lower().startswith("nvidia-dali"):
            return f"{name} {d.version}"
    return None


def _gpus() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"count": 0, "names": [], "driver": None}
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"count": len(names), "names": names, "driver": sysinfo.gpu_driver()}


def host() -> str:
    return socket.gethostname()


def capture(hostnames: list[str]) -> dict[str, Any]:
    """The environment of this process (rank 0) plus every rank's host name."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "dali": _dali_version(),
        "submitit": _version("submitit"),
        "gpu": _gpus(),
        "cpu": sysinfo.cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "hostnames": sorted(set(hostnames)),
        "git": sysinfo.code_version(),
        "slurm": {k: os.environ.get(k) for k in SLURM_VARS},
        "argv": sys.argv,
    }
