"""Submit a sweep: one job per point, all in one SLURM job array.

``submit_sweep`` resolves the sweep directory, skips runs whose run.json says completed
(and runs whose SLURM job is still queued or running, or whose run directory a live
process is training in: a local job, or a run started by hand), snapshots the code, and
submits the rest with submitit: ``SlurmExecutor`` (sbatch, array ``0-(n-1)%array_parallelism``),
``LocalExecutor`` (processes on this machine) or ``DebugExecutor`` (in this process).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import _make_sbatch_string

from cwn_bench.config import Config, check_line, set_value, to_dict
from cwn_bench.errors import UserError
from cwn_bench.rundir import SWEEP_JSON, runjson, sweepjson
from cwn_bench.rundir import lock as runlock

from launch import slurm_state, snapshot
from launch import sweep as sweepmod
from launch.profile import Profile, resolve_cluster
from launch.task import TrainTask

JOBS = "jobs"  # submitit's pickles and logs, under the sweep directory


@dataclass
class Submission:
    sweep_dir: Path
    cluster: str
    submitted: dict[str, str] = field(default_factory=dict)  # run name -> job id
    skipped: dict[str, str] = field(default_factory=dict)  # run name -> why
    jobs: list[submitit.Job] = field(default_factory=list)
    script: str | None = None  # the batch script (dry run on slurm)


def setup_lines(profile: Profile, code: Path | None) -> list[str]:
    """The profile's setup lines, then the preemption signal for submitit inside the job
    and, with a snapshot, ``cd`` into it and put it first on PYTHONPATH (``python -m``
    puts the working directory first on sys.path, so both are needed)."""
    lines = list(profile.setup) + [f"export SUBMITIT_PREEMPT_SIGNAL={shlex.quote(profile.signal)}"]
    if code is not None:
        q = shlex.quote(str(code))
        lines += [f"export PYTHONPATH={q}${{PYTHONPATH:+:$PYTHONPATH}}", f"cd {q}"]
    return lines


def slurm_parameters(profile: Profile, code: Path | None, name: str) -> dict[str, Any]:
    """SlurmExecutor parameters (sbatch's names); None values are left out."""
    # submitit would write --signal from SUBMITIT_PREEMPT_SIGNAL as read when it was imported
    extra = {"signal": f"{profile.signal}@{profile.signal_delay_s}"}
    if profile.mem_gb is not None:
        extra["mem"] = f"{int(profile.mem_gb * 1024)}M"
    params = {
        "job_name": name, "time": profile.time_min, "nodes": profile.nodes,
        "ntasks_per_node": profile.tasks, "cpus_per_task": profile.cpus_per_task,
        "gpus_per_node": profile.gpus_per_node or None, "partition": profile.partition,
        "account": profile.account, "qos": profile.qos, "constraint": profile.constraint,
        "signal_delay_s": profile.signal_delay_s, "array_parallelism": profile.array_parallelism,
        "setup": setup_lines(profile, code), "additional_parameters": extra,
    }
    params = {k: v for k, v in params.items() if v is not None}
    for key, value in params.items():  # the profile's fields are checked; this also covers derived values
        for text in value if isinstance(value, list) else value.values() if isinstance(value, dict) else [value]:
            check_line(str(text), f"batch script: {key}")
    return params


def make_executor(cluster: str, profile: Profile, folder: Path, code: Path | None, name: str) -> submitit.Executor:
    if cluster == "slurm":
        executor: submitit.Executor = submitit.SlurmExecutor(folder, max_num_timeout=profile.max_requeues)
        executor.update_parameters(**slurm_parameters(profile, code, name))
    elif cluster == "local":
        executor = submitit.LocalExecutor(folder, max_num_timeout=profile.max_requeues)
        executor.update_parameters(timeout_min=profile.time_min, tasks_per_node=profile.tasks, nodes=1,
                                   gpus_per_node=profile.gpus_per_node, signal_delay_s=profile.signal_delay_s,
                                   setup=setup_lines(profile, code))
    else:
        executor = submitit.DebugExecutor(folder)
    return executor


def absolute_paths(cfg: Config) -> None:
    """Jobs start in the snapshot folder: a relative ``data.root`` (base value or swept
    values) is made absolute (from the submitting directory) before the sweep is hashed."""
    swept = cfg.sweep.pop("data.root", None)  # set_value would drop it from the sweep
    if cfg.data.root and not os.path.isabs(cfg.data.root):
        set_value(cfg, "data.root", os.path.abspath(cfg.data.root))
    if swept is not None:
        cfg.sweep["data.root"] = [os.path.abspath(v) if v and not os.path.isabs(v) else v for v in swept]


def _previous_status(run_dir: Path) -> str | None:
    data = runjson.read(run_dir)
    return data["status"] if data else None


def _unfinished(cfg: Config, profile: Profile, record: dict[str, Any], sub: Submission,
                restart: bool) -> list[tuple[str, TrainTask]]:
    """The runs to submit, in sweep order; the others go to ``sub.skipped`` with the
    reason (run.json says completed, SLURM still has the run's last job, or a process
    holds the run directory's lock)."""
    latest = sweepjson.latest_jobs(record)
    slurm_jobs = [job for cluster, job in latest.values() if cluster == "slurm"]
    states = slurm_state.query(slurm_jobs) if sub.cluster == "slurm" else {}
    todo = []
    for name, run_dir, run_cfg in sweepmod.runs(cfg, sub.sweep_dir):
        job_id = latest.get(name, ("", ""))[1]
        state = states.get(job_id)
        if _previous_status(run_dir) == "completed":
            sub.skipped[name] = "completed"
        elif state is not None and not state.final:
            sub.skipped[name] = f"job {job_id} is {state.state}"
        elif (who := runlock.holder(run_dir)) is not None:
            sub.skipped[name] = f"training now ({who})"
        else:
            todo.append((name, TrainTask(to_dict(run_cfg), str(run_dir), profile.signal, restart)))
    return todo


def submit_sweep(cfg: Config, profile: Profile, *, dry_run: bool = False, allow_dirty: bool = False,
                 restart: bool = False) -> Submission:
    """Submit every unfinished point of ``cfg``'s sweep (see the module docstring);
    ``restart``: a run whose checkpoints are all unusable starts over (``train --restart``)."""
    absolute_paths(cfg)
    root = sweepmod.sweep_dir(cfg, profile.runs_root)
    check_line(str(root), "sweep dir")  # it is written into the batch script (cd, --output)
    sub = Submission(root, resolve_cluster(profile))
    cluster = sub.cluster
    record = sweepjson.read(root) if (root / SWEEP_JSON).exists() else sweepjson.new_record(cfg)
    todo = _unfinished(cfg, profile, record, sub, restart)
    if not todo:
        return sub
    code = root / "code" / str(len(record["submissions"]) + 1)
    if dry_run:
        if cluster == "slurm":
            command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(root / JOBS))}"
            sub.script = _make_sbatch_string(command=command, folder=root / JOBS, map_count=len(todo),
                                             **slurm_parameters(profile, code, cfg.name))
        sub.submitted = {name: "(dry run)" for name, _ in todo}
        return sub
    snap = snapshot.take(code, allow_dirty) if cluster != "debug" else {"commit": None, "dirty": []}
    executor = make_executor(cluster, profile, root / JOBS, code if cluster != "debug" else None, cfg.name)
    try:
        with executor.batch():  # one sbatch call: an array of len(todo) tasks
            sub.jobs = [executor.submit(task) for _, task in todo]
    except (OSError, RuntimeError) as err:  # sbatch refused (FailedJobError is a RuntimeError)
        reason = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())  # sbatch: several lines
        raise UserError(f"{root}: submission to {cluster} failed: {reason}") from None
    sub.submitted = {name: job.job_id for (name, _), job in zip(todo, sub.jobs)}
    record["submissions"].append({"time": sweepjson.now(), "cluster": cluster, "code": str(code),
                                  "commit": snap["commit"], "dirty": snap["dirty"],
                                  "profile": dataclasses.asdict(profile), "jobs": sub.submitted})
    sweepjson.write(root, record)
    return sub
