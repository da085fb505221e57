"""Missing runs: the points a sweep dir's ``sweep.json`` lists whose run dir is absent
or holds no readable ``run.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cwn_bench import config as cfgmod
from cwn_bench.report.jsonl import Problem, read_json


def _run_names(sweep: dict[str, Any]) -> list[str] | None:
    """Run dir names listed by a sweep.json: entries of ``runs`` or ``points`` given as
    names, as objects with a ``name``/``run_dir``, or as the point itself."""
    items = sweep.get("runs", sweep.get("points"))
    if isinstance(items, dict):
        return [str(name) for name in items]
    if not isinstance(items, list):
        return None
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(Path(item).name)
        elif isinstance(item, dict):
            named = item.get("name") or item.get("run_name") or item.get("run_dir")
            point = item.get("point", item)
            names.append(Path(str(named)).name if named else cfgmod.run_name(point))
    return names


def _jobs(sweep: dict[str, Any]) -> dict[str, str]:
    """Run name -> job id of the newest submission that included it (``submissions``:
    ``[{"jobs": {run name: job id}}]``), for looking the job up in ``sacct``."""
    jobs: dict[str, str] = {}
    for submission in sweep.get("submissions") or []:
        if isinstance(submission, dict) and isinstance(submission.get("jobs"), dict):
            jobs.update({str(k): str(v) for k, v in submission["jobs"].items()})
    return jobs


def missing_runs(sweep_dirs: list[Path], readable: set[str], problems: list[Problem]) -> list[dict[str, str]]:
    """``[{sweep, run, reason, job}]`` for each listed point without a readable run.json;
    ``readable`` holds the run dirs (as strings) that were read."""
    missing = []
    for sweep_dir in sweep_dirs:
        sweep, bad = read_json(sweep_dir / "sweep.json")
        problems.extend(bad)
        names = _run_names(sweep) if sweep is not None else None
        if names is None:
            if sweep is not None:
                problems.append(Problem(str(sweep_dir / "sweep.json"), None, "no 'runs' or 'points' list"))
            continue
        jobs = _jobs(sweep)
        for name in names:
            run_dir = sweep_dir / name
            if str(run_dir) in readable:
                continue
            reason = ("run.json unreadable" if (run_dir / "run.json").exists()
                      else "no run.json (never started?)" if run_dir.is_dir() else "run dir absent")
            missing.append({"sweep": str(sweep_dir), "run": str(run_dir), "reason": reason, "job": jobs.get(name, "")})
    return missing
