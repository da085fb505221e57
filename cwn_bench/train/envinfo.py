"""What a run records beyond :func:`cwn_bench.sysinfo.environment`: every rank's host,
the SLURM ids and the command line."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from cwn_bench import sysinfo

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
              "SLURM_JOB_NODELIST", "SLURM_JOB_PARTITION")


def host() -> str:
    return socket.gethostname()


def slurm_ids() -> dict[str, str | None]:
    """This job's SLURM ids (None outside SLURM)."""
    return {k: os.environ.get(k) for k in SLURM_VARS}


def capture(hostnames: list[str]) -> dict[str, Any]:
    """The environment of this process (rank 0) plus every rank's host name."""
    return {**sysinfo.environment(), "hostnames": sorted(set(hostnames)), "slurm": slurm_ids(), "argv": sys.argv}
