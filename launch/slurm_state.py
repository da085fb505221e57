"""Job states from SLURM's accounting (``sacct``), one call for a whole sweep."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

# States after which SLURM will not run the job again by itself.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
         "DEADLINE"}


@dataclass
class JobState:
    state: str  # newest record's state, e.g. RUNNING, COMPLETED, "CANCELLED" ("by 0" dropped)
    restarts: int  # requeues seen by SLURM (records of the job before the newest)

    @property
    def final(self) -> bool:
        return self.state in FINAL


def _lines(command: list[str]) -> list[str] | None:
    """stdout lines of ``command``, or None when it is missing or fails."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.splitlines() if out.returncode == 0 else None


def query(job_ids: list[str]) -> dict[str, JobState]:
    """``{job id: JobState}`` for the ids sacct knows (array tasks as ``<array>_<index>``);
    an array task still pending as part of a range (``12_[1-2]``) reads PENDING.  A job
    that squeue still lists reads squeue's state: a cancelled job is CANCELLED in sacct at
    once, but COMPLETING (its processes still running, up to KillWait) until they are
    gone, and must not be resubmitted before.  Empty when sacct fails (no accounting)."""
    if not job_ids:
        return {}
    lines = _lines(["sacct", "-n", "-P", "-X", "-D", "-o", "JobID,State", "-j", ",".join(job_ids)])
    if lines is None:
        return {}
    records: dict[str, list[str]] = {}
    for line in lines:
        job_id, _, state = line.partition("|")
        records.setdefault(job_id, []).append(state.split()[0] if state else "UNKNOWN")
    found = {job_id: JobState(states[-1], len(states) - 1) for job_id, states in records.items()}
    for job_id in job_ids:
        array, _, index = job_id.partition("_")
        pending_range = any(k.startswith(f"{array}_[") and _in_range(index, k) for k in records)
        if job_id not in found and index and pending_range:
            found[job_id] = JobState("PENDING", 0)
    for line in _lines(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(job_ids)]) or []:
        job_id, _, state = line.partition("|")
        if job_id in found:
            found[job_id].state = state
    return found


def _in_range(index: str, key: str) -> bool:
    """Whether array index ``index`` is in sacct's ``12_[0-2,5%2]``."""
    spec = key.partition("[")[2].rstrip("]").split("%")[0]
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and int(lo) <= int(index) <= int(hi or lo):
            return True
    return False
