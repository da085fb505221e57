"""Submit a sweep: one job per point, in SLURM job arrays.

``submit_sweep`` resolves the sweep directory, skips runs whose run.json says completed
(and runs whose SLURM job is still queued or running, or whose run directory a live
process is training in: a local job, or a run started by hand), snapshots the code, and
submits the rest with submitit: ``SlurmExecutor`` (sbatch, array ``0-(n-1)%array_parallelism``;
a sweep larger than the cluster's ``MaxArraySize`` as several arrays), ``LocalExecutor``
(processes on this machine) or ``DebugExecutor`` (in this process).  With ``report``, one
more SLURM job, afterany every array, writes the sweep's report (``SWEEP/report``).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import _make_sbatch_string

from cwn_bench.config import Config, check_line, set_value, to_dict
from cwn_bench.errors import UserError
from cwn_bench.rundir import SWEEP_JSON, runjson, sweepjson
from cwn_bench.rundir import lock as runlock

from launch import container, slurm_state, snapshot
from launch import sweep as sweepmod
from launch.profile import Profile, resolve_cluster
from launch.task import ReportTask, TrainTask

JOBS = "jobs"  # submitit's pickles and logs, under the sweep directory
REPORT_TIME_MIN = 15  # the report job's time limit (1 CPU)


@dataclass
class Submission:
    sweep_dir: Path
    cluster: str
    submitted: dict[str, str] = field(default_factory=dict)  # run name -> job id
    skipped: dict[str, str] = field(default_factory=dict)  # run name -> why
    jobs: list[submitit.Job] = field(default_factory=list)
    script: str | None = None  # the batch scripts (dry run on slurm)
    arrays: list[str] = field(default_factory=list)  # SLURM ids of the arrays submitted
    report_job: submitit.Job | None = None  # submit --report


def setup_lines(profile: Profile, code: Path | None) -> list[str]:
    """The profile's setup lines, then the preemption signal for submitit inside the job,
    the container image (if any) and, with a snapshot, ``cd`` into it and put it first on
    PYTHONPATH (``python -m`` puts the working directory first on sys.path, so both are
    needed)."""
    lines = list(profile.setup) + [f"export SUBMITIT_PREEMPT_SIGNAL={shlex.quote(profile.signal)}"]
    lines += container.env_lines(profile)
    if code is not None:
        q = shlex.quote(str(code))
        lines += [f"export PYTHONPATH={q}${{PYTHONPATH:+:$PYTHONPATH}}", f"cd {q}"]
    return lines


def slurm_parameters(profile: Profile, code: Path | None, name: str, binds: list[str]) -> dict[str, Any]:
    """SlurmExecutor parameters (sbatch's names); None values are left out.  ``binds``:
    the folders a container mounts."""
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
        "srun_args": container.srun_args(profile, binds, code) or None,
    }
    params = {k: v for k, v in params.items() if v is not None}
    for key, value in params.items():  # the profile's fields are checked; this also covers derived values
        for text in value if isinstance(value, list) else value.values() if isinstance(value, dict) else [value]:
            check_line(str(text), f"batch script: {key}")
    return params


def make_executor(cluster: str, profile: Profile, folder: Path, code: Path | None, name: str,
                  binds: list[str]) -> submitit.Executor:
    if cluster == "slurm":
        executor: submitit.Executor = submitit.SlurmExecutor(
            folder, max_num_timeout=profile.max_requeues, python=container.python_command(profile, binds, code))
        executor.update_parameters(**slurm_parameters(profile, code, name, binds))
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


def report_profile(profile: Profile) -> Profile:
    """What the report job asks for: one task, one CPU, no GPU, a short time limit."""
    return dataclasses.replace(profile, nodes=1, tasks_per_node=1, gpus_per_node=0, cpus_per_task=1,
                               mem_gb=None, time_min=REPORT_TIME_MIN)


def chunks(todo: list[Any], size: int) -> list[list[Any]]:
    """``todo`` cut into arrays of at most ``size`` tasks (the cluster's MaxArraySize)."""
    return [todo[i: i + size] for i in range(0, len(todo), size)]


def _dry_run_scripts(cfg: Config, profile: Profile, root: Path, code: Path, binds: list[str],
                     sizes: list[int], report: bool) -> str:
    """The batch script of every array (and of the report job) a submission would send."""
    def script(prof: Profile, name: str, **extra: Any) -> str:
        python = container.python_command(prof, binds, code)
        command = f"{python} -u -m submitit.core._submit {shlex.quote(str(root / JOBS))}"
        return _make_sbatch_string(command=command, folder=root / JOBS, **slurm_parameters(prof, code, name, binds),
                                   **extra)

    if len(sizes) == 1 and not report:  # one script, alone: it starts with its #! line (`> job.sh` runs)
        return script(profile, cfg.name, map_count=sizes[0])
    parts = [f"# array {i + 1}/{len(sizes)} ({n} task(s))\n" + script(profile, cfg.name, map_count=n)
             for i, n in enumerate(sizes)]
    if report:
        parts.append("# report job\n" + script(report_profile(profile), f"{cfg.name}-report",
                                                dependency="afterany:<every array above>"))
    return "\n".join(parts)


def submit_sweep(cfg: Config, profile: Profile, *, dry_run: bool = False, allow_dirty: bool = False,
                 report: bool = False, restart: bool = False) -> Submission:
    """Submit every unfinished point of ``cfg``'s sweep (see the module docstring);
    ``restart``: a run whose checkpoints are all unusable starts over (``train --restart``)."""
    absolute_paths(cfg)
    root = sweepmod.sweep_dir(cfg, profile.runs_root)
    check_line(str(root), "sweep dir")  # it is written into the batch script (cd, --output)
    sub = Submission(root, resolve_cluster(profile))
    cluster = sub.cluster
    if cluster != "slurm" and (profile.container or report):
        what = f"container {profile.container}" if profile.container else "--report (a job that waits for the arrays)"
        raise UserError(f"{what}: needs --cluster slurm, got --cluster {cluster}")
    record = sweepjson.read(root) if (root / SWEEP_JSON).exists() else sweepjson.new_record(cfg)
    todo = _unfinished(cfg, profile, record, sub, restart)
    if not todo:
        return sub
    code = root / "code" / str(len(record["submissions"]) + 1)
    binds = container.mounts([root.parent, *(run_cfg.data.root for _, _, run_cfg in sweepmod.runs(cfg, root))])
    groups = chunks(todo, slurm_state.max_array_size()) if cluster == "slurm" else [todo]
    if dry_run:
        if cluster == "slurm":
            sub.script = _dry_run_scripts(cfg, profile, root, code, binds, [len(g) for g in groups], report)
        sub.submitted = {name: "(dry run)" for name, _ in todo}
        return sub
    snap = snapshot.take(code, allow_dirty) if cluster != "debug" else {"commit": None, "dirty": []}
    executor = make_executor(cluster, profile, root / JOBS, code if cluster != "debug" else None, cfg.name, binds)
    try:
        for group in groups:
            with executor.batch():  # one sbatch call (at the end of the block): an array of len(group) tasks
                batch = [executor.submit(task) for _, task in group]
            sub.jobs += batch
            sub.submitted.update({name: job.job_id for (name, _), job in zip(group, batch)})
        if report:
            reporter = make_executor(cluster, report_profile(profile), root / JOBS, code, f"{cfg.name}-report", binds)
            reporter.update_parameters(dependency="afterany:" + ":".join(sweepjson.arrays(sub.submitted)))
            sub.report_job = reporter.submit(ReportTask(str(root)))
    except (OSError, RuntimeError) as err:  # sbatch refused (FailedJobError is a RuntimeError)
        reason = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())  # sbatch: several lines
        raise UserError(f"{root}: submission to {cluster} failed: {reason}") from None
    finally:  # what was submitted is recorded, also when a later array (or the report job) was refused
        if sub.jobs:
            sub.arrays = sweepjson.arrays(sub.submitted) if cluster == "slurm" else []
            submission = {"time": sweepjson.now(), "cluster": cluster, "code": str(code), "commit": snap["commit"],
                          "dirty": snap["dirty"], "profile": dataclasses.asdict(profile), "jobs": sub.submitted,
                          "arrays": sub.arrays}
            record["submissions"].append(submission)
            if sub.report_job is not None:
                sweepjson.set_report_job(record, submission, sub.report_job.job_id)
            sweepjson.write(root, record)
    return sub
