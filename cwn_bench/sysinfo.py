"""Facts about this machine and this code that every result records (ground floor).

Used by the training engine's run.json and the benchmarks' JSONL header, so both name
the CPU, the driver and the code's commit the same way.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
    ``SNAPSHOT.json`` beside the packages recording the commit; a checkout asks git."""
    snapshot = PACKAGE_DIR.parent / "SNAPSHOT.json"
    if snapshot.is_file():
        try:
            data = json.loads(snapshot.read_text())
            return {"commit": data.get("commit"), "dirty": bool(data.get("dirty")), "snapshot": str(snapshot.parent)}
        except (OSError, ValueError):
            pass
    commit = run_command(["git", "rev-parse", "HEAD"], PACKAGE_DIR)
    status = run_command(["git", "status", "--porcelain", "--untracked-files=no"], PACKAGE_DIR)
    return {"commit": commit, "dirty": bool(status) if commit else None, "snapshot": None}
