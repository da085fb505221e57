"""Sweep dirs (``sweep.json``, written by ``cwn-bench submit``): the runs they list, so
that absent ones are reported missing, and what each submission recorded per run (job
id, code commit of the snapshot the job ran), which a run's own env may lack (a job
running from a code snapshot outside git cannot ask git for its commit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cwn_bench.report.envfields import short_commit
from cwn_bench.rundir import RUN_JSON, sweepjson
from cwn_bench.rundir.files import Problem


@dataclass
class Sweep:
    path: Path
    names: list[str]  # run dir names, in sweep order
    jobs: dict[str, str]  # run name -> job id of the newest submission that included it
    commits: dict[str, str]  # run name -> that submission's commit ("+dirty" if it had changes)


def _submitted(sweep: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``(jobs, commits)`` by run name from ``submissions: [{jobs: {name: id}, commit,
    dirty}]`` (checked by :func:`cwn_bench.rundir.sweepjson.load`), the newest winning."""
    jobs: dict[str, str] = {}
    commits: dict[str, str] = {}
    for submission in sweep["submissions"]:
        commit = short_commit(submission.get("commit"), submission.get("dirty"))
        for name, job in submission["jobs"].items():
            jobs[str(name)] = str(job)
            commits[str(name)] = commit
    return jobs, commits


def read_sweeps(sweep_dirs: list[Path], problems: list[Problem]) -> list[Sweep]:
    """Every readable sweep.json; the others become Problems."""
    sweeps = []
    for sweep_dir in sweep_dirs:
        data, bad = sweepjson.load(sweep_dir)
        problems.extend(bad)
        if data is not None:
            sweeps.append(Sweep(sweep_dir, [run["name"] for run in data["runs"]], *_submitted(data)))
    return sweeps


def missing_runs(sweeps: list[Sweep], readable: set[str]) -> list[dict[str, str]]:
    """``[{sweep, run, reason, job}]`` for each listed point without a readable run.json;
    ``readable`` holds the run dirs (as strings) that were read."""
    missing = []
    for sweep in sweeps:
        for name in sweep.names:
            run_dir = sweep.path / name
            if str(run_dir) in readable:
                continue
            reason = ("run.json unreadable" if (run_dir / RUN_JSON).exists()
                      else "no run.json (never started?)" if run_dir.is_dir() else "run dir absent")
            missing.append({"sweep": str(sweep.path), "run": str(run_dir), "reason": reason,
                            "job": sweep.jobs.get(name, "")})
    return missing


def submitted(sweeps: list[Sweep]) -> dict[str, dict[str, str]]:
    """Run dir (as a string) -> ``{"job", "commit"}`` as its sweep.json recorded them."""
    return {str(s.path / name): {"job": s.jobs.get(name, ""), "commit": s.commits.get(name, "")}
            for s in sweeps for name in s.names}
