"""Job states from SLURM, one call for a whole sweep: accounting (``sacct``) when the
cluster keeps it, else the queue (``squeue``: jobs pending, running, or ended less than
``MinJobAge`` ago); and the cluster's ``MaxArraySize``."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

# States after which SLURM will not run the job again by itself.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
         "DEADLINE"}
SACCT, SQUEUE = "sacct", "squeue"
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default: array indices 0-1000


@dataclass
class JobState:
    state: str  # newest record's state, e.g. RUNNING, COMPLETED, "CANCELLED" ("by 0" dropped)
    restarts: int  # requeues seen by SLURM (records of the job before the newest)

    @property
    def final(self) -> bool:
        return self.state in FINAL


class States(dict[str, JobState]):
    """``{job id: JobState}`` and where the states came from: ``source`` is ``sacct``, or
    ``squeue`` when there is no accounting (a job that squeue no longer lists is then
    missing, and only its run directory tells how it ended)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source


def _lines(command: list[str]) -> list[str] | None:
    """stdout lines of ``command``, or None when it is missing or fails."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.splitlines() if out.returncode == 0 else None


def query(job_ids: list[str]) -> States:
    """States of the ids SLURM knows (array tasks as ``<array>_<index>``); an array task
    still pending as part of a range (``12_[1-2]``) reads PENDING.  A job that squeue
    still lists reads squeue's state: a cancelled job is CANCELLED in sacct at once, but
    COMPLETING (its processes still running, up to KillWait) until they are gone, and
    must not be resubmitted before.  When sacct fails (missing, or accounting off) the
    states are squeue's alone (``source`` says which)."""
    if not job_ids:
        return States(SACCT)
    lines = _lines(["sacct", "-n", "-P", "-X", "-D", "-o", "JobID,State", "-j", ",".join(job_ids)])
    found = States(SACCT if lines is not None else SQUEUE)
    records: dict[str, list[str]] = {}
    for line in lines or []:
        job_id, _, state = line.partition("|")
        records.setdefault(job_id, []).append(state.split()[0] if state else "UNKNOWN")
    found.update({job_id: JobState(states[-1], len(states) - 1) for job_id, states in records.items()})
    for line in _lines(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(job_ids)]) or []:
        job_id, _, state = line.partition("|")
        if job_id in found:
            found[job_id].state = state
        elif found.source == SQUEUE:
            found[job_id] = JobState(state, 0)
    for job_id in job_ids:
        array, _, index = job_id.partition("_")
        pending_range = any(k.startswith(f"{array}_[") and _in_range(index, k) for k in records)
        if job_id not in found and index and pending_range:
            found[job_id] = JobState("PENDING", 0)
    return found


def _in_range(index: str, key: str) -> bool:
    """Whether array index ``index`` is in sacct's ``12_[0-2,5%2]``."""
    spec = key.partition("[")[2].rstrip("]").split("%")[0]
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and int(lo) <= int(index) <= int(hi or lo):
            return True
    return False


def max_array_size() -> int:
    """The cluster's ``MaxArraySize`` (tasks of one array: indices 0 to N-1) from
    ``scontrol show config``; SLURM's default 1001 when scontrol cannot say."""
    for line in _lines(["scontrol", "show", "config"]) or []:
        found = re.fullmatch(r"\s*MaxArraySize\s*=\s*(\d+)\s*", line)
        if found:
            return max(int(found.group(1)), 1)
    return DEFAULT_MAX_ARRAY_SIZE
