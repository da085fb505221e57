"""What one task of a job runs: ranks from SLURM -> env:// -> ``cwn_bench.train.run``.

Preemption, step by step.  submitit installs its handler for the preemption signal
(``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default) before it calls :class:`TrainTask`; that
handler calls :meth:`TrainTask.checkpoint`, requeues the job and exits at once, in the
middle of whatever step was running.  So while training, ``train.run`` takes that
signal over (its handler only sets a flag; SIGTERM stays with submitit, which ignores
it, so a cancelled job is not requeued).  All ranks stop at the next step boundary,
rank 0 writes a checkpoint, ``run`` returns "preempted", and only then rank 0 hands the
signal back to submitit's handler: ``checkpoint()`` returns a DelayedSubmission of the
same run directory, submitit requeues (its time-out count included) and exits.  The
requeued job resumes from that checkpoint; a signal outside training goes straight to
submitit and the job resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

import cwn_bench
from cwn_bench.config import from_dict
from cwn_bench.train import run


def own_gpu(local_rank: int, local_world_size: int) -> None:
    """Make only this task's GPU visible: entry ``local_rank`` of the node's
    ``CUDA_VISIBLE_DEVICES`` (SLURM lists the allocated GPUs, one per task)."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    if len(visible) == local_world_size > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[local_rank]


class TrainTask(Checkpointable):
    """One run of a sweep: ``config`` (nested mappings, no sweep) trained in ``run_dir``.
    Picklable, plain data only, so a job requeued later unpickles it with the snapshot's
    code."""

    def __init__(self, config: dict[str, Any], run_dir: str, signal_name: str = "USR2", restart: bool = False) -> None:
        self.config = config
        self.run_dir = run_dir
        self.signal_name = signal_name
        self.restart = restart  # start over if no checkpoint is usable (`train --restart`)

    def __call__(self) -> dict[str, Any]:
        """Returns ``{"status": "completed" | "preempted", "rank", "code"}``; ``code`` is
        the folder ``cwn_bench`` was imported from (the snapshot, on a cluster)."""
        rank = 0
        if submitit.JobEnvironment().num_tasks > 1:
            dist = TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
            own_gpu(dist.local_rank, dist.local_world_size)
            rank = dist.rank
        sig = getattr(signal, "SIG" + self.signal_name)
        submitit_handler = signal.getsignal(sig)
        status = run(from_dict(self.config, self.run_dir), self.run_dir, signals=(sig,), restart=self.restart)
        if status == "preempted" and rank == 0 and callable(submitit_handler):
            if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and shutil.which("scontrol") is None:
                # submitit requeues with scontrol from inside the task: not there in a container
                # image without SLURM's client. The checkpoint is written; a resubmission resumes.
                print(f"{self.run_dir}: preempted and checkpointed, but scontrol is not on PATH here (a "
                      "container without SLURM's client?): not requeued; submit the sweep again to resume",
                      file=sys.stderr)
            else:
                submitit_handler(sig, None)  # checkpoint() + requeue + exit; returns only if no requeue
        return {"status": status, "rank": rank, "code": str(Path(cwn_bench.__file__).parent)}

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Requeue the same run: the new job resumes ``run_dir``'s newest checkpoint."""
        return DelayedSubmission(type(self)(self.config, self.run_dir, self.signal_name, self.restart))


class ReportTask:
    """The report job of ``submit --report``: ``cwn-bench report SWEEP --out SWEEP/report``
    once every array of the sweep has ended (afterany).  Returns the report.md path."""

    def __init__(self, sweep_dir: str) -> None:
        self.sweep_dir = sweep_dir

    def __call__(self) -> str:
        from cwn_bench.report import write_report  # pandas + matplotlib: only in this job

        return str(write_report([Path(self.sweep_dir)], Path(self.sweep_dir) / "report"))
