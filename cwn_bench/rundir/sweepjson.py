"""``sweep.json`` of a sweep dir (written by ``cwn-bench submit``).

``{"name", "sweep_hash", "config", "runs": [{"name", "point"}], "submissions": [{"time",
"cluster", "code", "commit", "dirty", "profile", "jobs": {run name: job id}, "arrays":
[array job ids], "report_job": id or absent}], "report_job": the newest report job, or
absent}``.
:func:`load` checks what readers index (each run's ``name`` a plain file name and its
``point`` a mapping; each submission's ``jobs`` a mapping of names to ids), so that a
malformed entry is one line naming the file, not a KeyError later.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from cwn_bench import atomic
from cwn_bench.config import Config, check_name, expand_sweep, run_name, sweep_hash, to_dict
from cwn_bench.errors import UserError, brief
from cwn_bench.rundir import SWEEP_JSON
from cwn_bench.rundir.files import Problem, fail, read_json


def _entry_problem(data: dict[str, Any]) -> str | None:
    if not isinstance(data.get("runs"), list):
        return "not a sweep record (expected an object with a 'runs' list)"
    for i, run in enumerate(data["runs"]):
        if not isinstance(run, dict) or not isinstance(run.get("name"), str) or not isinstance(run.get("point", {}),
                                                                                                dict):
            return f"runs[{i}]: expected {{\"name\": text, \"point\": mapping}}, got {brief(run)}"
        try:
            check_name(run["name"], f"runs[{i}].name")
        except UserError as err:
            return str(err)
    if not isinstance(data.get("submissions", []), list):
        return "'submissions' must be a list"
    for i, sub in enumerate(data.get("submissions", [])):
        jobs = sub.get("jobs") if isinstance(sub, dict) else None
        if not isinstance(jobs, dict) or not all(isinstance(j, (str, int)) for j in jobs.values()):
            return f"submissions[{i}]: expected an object with 'jobs' (run name -> job id), got {brief(sub)}"
        if not isinstance(sub.get("cluster", ""), str):
            return f"submissions[{i}].cluster: expected text, got {brief(sub.get('cluster'))}"
    if not isinstance(data.get("config", {}), dict):
        return "'config' must be a mapping"
    return None


def load(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """sweep.json of the sweep dir ``root`` checked (``submissions`` defaulting to []), or
    None and the problem."""
    path = root / SWEEP_JSON
    data, problems = read_json(path)
    if data is None:
        return None, problems
    problem = _entry_problem(data)
    if problem is not None:
        return None, [Problem(str(path), None, problem)]
    data.setdefault("submissions", [])
    return data, []


def read(root: Path) -> dict[str, Any]:
    """:func:`load`, a missing or bad sweep.json being a one-line UserError."""
    if not (root / SWEEP_JSON).is_file():
        raise UserError(f"{root}: not a sweep directory (no {SWEEP_JSON}); pass the folder "
                        "`cwn-bench submit` printed")
    data, problems = load(root)
    if data is None:
        fail(problems)
    return data


def new_record(cfg: Config) -> dict[str, Any]:
    return {"name": cfg.name, "sweep_hash": sweep_hash(cfg), "config": to_dict(cfg),
            "runs": [{"name": run_name(p), "point": p} for p, _ in expand_sweep(cfg)], "submissions": []}


def write(root: Path, data: dict[str, Any]) -> None:
    """Replace sweep.json atomically (temporary file, fsync, rename)."""
    with atomic.writing(root):
        root.mkdir(parents=True, exist_ok=True)
    atomic.write_json(root / SWEEP_JSON, data)


def latest_jobs(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Run name -> (cluster, job id) of the newest submission that included it."""
    out: dict[str, tuple[str, str]] = {}
    for sub in data["submissions"]:
        for name, job_id in sub["jobs"].items():
            out[str(name)] = (sub.get("cluster", ""), str(job_id))
    return out


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---- the arrays of a submission and its report job (``submit --report``)

def arrays(jobs: dict[str, str]) -> list[str]:
    """The SLURM job ids of the arrays (or single jobs) holding ``jobs`` (run name -> job
    id, ``<array>_<index>``), in submission order."""
    return list(dict.fromkeys(str(job_id).split("_")[0] for job_id in jobs.values()))


def set_report_job(data: dict[str, Any], submission: dict[str, Any], job_id: str) -> None:
    """Record the report job of ``submission`` (the newest) in it and at the top."""
    submission["report_job"] = data["report_job"] = job_id


def report_job(data: dict[str, Any]) -> str | None:
    """The newest report job's id, if a submission asked for one."""
    job = data.get("report_job")
    return str(job) if isinstance(job, (str, int)) and not isinstance(job, bool) else None
