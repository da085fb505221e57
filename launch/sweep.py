"""The sweep directory and its ``sweep.json``.

``<runs_root>/<config name>-<first 8 of sweep_hash>/`` holds one run directory per
point (named by :func:`cwn_bench.config.run_name`), ``sweep.json``, the code snapshots
(``code/<n>/``) and submitit's job files and logs (``jobs/``).  ``sweep.json`` =
``{"name", "sweep_hash", "config", "runs": [{"name", "point"}], "submissions": [{"time",
"cluster", "code", "commit", "dirty", "jobs": {run name: job id}, "arrays": [array job
ids], "report_job": id or absent}], "report_job": the newest report job, or absent}``.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from cwn_bench import atomic
from cwn_bench.config import Config, expand_sweep, run_name, sweep_hash, to_dict
from cwn_bench.errors import UserError

SWEEP_JSON = "sweep.json"


def sweep_dir(cfg: Config, runs_root: str | Path) -> Path:
    """Absolute and deterministic: the same sweep always lands in the same folder
    (``~`` and ``$VARS`` in ``runs_root`` expanded)."""
    return Path(os.path.expandvars(os.path.expanduser(runs_root))).resolve() / f"{cfg.name}-{sweep_hash(cfg)[:8]}"


def runs(cfg: Config, root: Path) -> list[tuple[str, Path, Config]]:
    """``[(run name, run dir, config)]`` for every point of the sweep, in sweep order."""
    return [(run_name(point), root / run_name(point), run) for point, run in expand_sweep(cfg)]


def read(root: Path) -> dict[str, Any]:
    path = root / SWEEP_JSON
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{root}: not a sweep directory (no {SWEEP_JSON}); pass the folder "
                        "`cwn-bench submit` printed") from None
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable ({err}); expected one JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise UserError(f"{path}: not a sweep record (expected an object with 'runs')")
    data.setdefault("submissions", [])
    return data


def new_record(cfg: Config) -> dict[str, Any]:
    return {"name": cfg.name, "sweep_hash": sweep_hash(cfg), "config": to_dict(cfg),
            "runs": [{"name": run_name(p), "point": p} for p, _ in expand_sweep(cfg)], "submissions": []}


def write(root: Path, data: dict[str, Any]) -> None:
    """Replace sweep.json atomically (temporary file, fsync, rename)."""
    root.mkdir(parents=True, exist_ok=True)
    atomic.write_json(root / SWEEP_JSON, data)


def latest_jobs(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Run name -> (cluster, job id) of the newest submission that included it."""
    out: dict[str, tuple[str, str]] = {}
    for sub in data["submissions"]:
        for name, job_id in sub["jobs"].items():
            out[name] = (sub["cluster"], job_id)
    return out


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---- the arrays of a submission and its report job (``submit --report``)

def arrays(jobs: dict[str, str]) -> list[str]:
    """The SLURM job ids of the arrays (or single jobs) holding ``jobs`` (run name -> job
    id, ``<array>_<index>``), in submission order."""
    return list(dict.fromkeys(job_id.split("_")[0] for job_id in jobs.values()))


def set_report_job(data: dict[str, Any], submission: dict[str, Any], job_id: str) -> None:
    """Record the report job of ``submission`` (the newest) in it and at the top."""
    submission["report_job"] = data["report_job"] = job_id


def report_job(data: dict[str, Any]) -> str | None:
    """The newest report job's id, if a submission asked for one."""
    return data.get("report_job")
