"""Cluster profiles: what every job of a sweep asks the scheduler for.

A profile is YAML (``configs/clusters/NAME.yaml``) whose keys are :class:`Profile`'s
fields, checked like experiment configs; the command line overrides single fields
(``--nodes 2 --time 240``).  With no profile the defaults suit a CPU-only machine: one
node, one task, no GPU.  One task per GPU: ``tasks_per_node`` defaults to
``gpus_per_node`` (or 1 without GPUs).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from cwn_bench.config import ONE_LINE, Range, build_checked, read_yaml
from cwn_bench.errors import UserError, brief

SIGNALS = ("USR2", "USR1", "TERM", "INT", "HUP", "URG")
Line = Annotated[str, ONE_LINE]  # every text field reaches the batch script: one line, no control characters


@dataclass
class Profile:
    cluster: Literal["auto", "slurm", "local", "debug"] = "auto"  # auto: slurm if sbatch is on PATH
    runs_root: Line = "runs"  # shared folder holding sweep directories (relative: to the cwd)
    nodes: Annotated[int, Range(1, 100_000)] = 1
    tasks_per_node: Annotated[int, Range(1, 1024)] | None = None  # None: gpus_per_node, or 1 without GPUs
    gpus_per_node: Annotated[int, Range(0, 1024)] = 0
    cpus_per_task: Annotated[int, Range(1, 100_000)] = 1  # data workers + 1 is a good start
    mem_gb: Annotated[float, Range(0, 1 << 30, low_open=True)] | None = None  # per node; None: the partition's default
    time_min: Annotated[int, Range(1, 10**8)] = 60  # time limit of one job (a requeued job gets it again)
    partition: Line | None = None
    account: Line | None = None
    qos: Line | None = None
    constraint: Line | None = None
    signal: Line = "USR2"  # preemption / time-limit warning; not USR1 with NCCL (it takes USR1)
    signal_delay_s: Annotated[int, Range(0, 10**6)] = 90  # seconds between that warning and the kill: one checkpoint must fit
    max_requeues: Annotated[int, Range(0, 10**6)] = 3  # requeues after time-outs (preemptions requeue without limit)
    array_parallelism: Annotated[int, Range(1, 10**7)] = 32  # array tasks running at once
    setup: list[Line] = field(default_factory=list)  # shell lines before the tasks (module load ...)
    container: Line | None = None  # image the tasks run in: a .sif file or a registry reference
    container_runtime: Literal["pyxis", "apptainer"] = "apptainer"  # pyxis: srun --container-image
    python: Line | None = None  # the jobs' interpreter; None: this one, or python3 in a container

    @property
    def tasks(self) -> int:
        """Tasks per node: one per GPU."""
        return self.tasks_per_node or self.gpus_per_node or 1


def load_profile(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Profile:
    """Read a profile YAML (or the defaults when ``path`` is None), apply ``overrides``
    (field -> value; None values ignored) and check the result."""
    data: dict[str, Any] = {}
    source = "the default profile"
    if path is not None:
        source = str(path)
        data = read_yaml(Path(path), "cluster profile") or {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: a cluster profile must be a mapping of {', '.join(field_names())}")
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = {**data, **flags}
    source += " with the command-line flags" if flags else ""
    profile = build_checked(Profile, data, source)
    _check(profile, source)
    return profile


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Profile)]


def _check(p: Profile, source: str) -> None:
    p.signal = p.signal.upper().removeprefix("SIG")
    if p.signal not in SIGNALS:
        raise UserError(f"{source}: signal {brief(p.signal)} is not one of {', '.join(SIGNALS)}")
    if p.signal == "USR1" and p.gpus_per_node > 0:
        raise UserError(f"{source}: signal USR1 with GPUs: NCCL intercepts SIGUSR1; use USR2")
    if p.container is not None and not p.container.strip():
        raise UserError(f"{source}: container is empty; expected a .sif file or a registry reference")
    if p.gpus_per_node and p.tasks_per_node and p.tasks_per_node != p.gpus_per_node:
        raise UserError(f"{source}: tasks_per_node={p.tasks_per_node} but gpus_per_node={p.gpus_per_node}; "
                        "one task per GPU")


def resolve_cluster(profile: Profile) -> str:
    """``slurm``, ``local`` or ``debug``: ``auto`` is slurm when ``sbatch`` is on PATH, else
    local; asking for slurm without ``sbatch`` is an error, never a silent fallback."""
    has_slurm = shutil.which("sbatch") is not None
    if profile.cluster == "auto":
        return "slurm" if has_slurm else "local"
    if profile.cluster == "slurm" and not has_slurm:
        raise UserError("--cluster slurm: sbatch is not on PATH (no SLURM client here); "
                        "use --cluster local to run on this machine")
    if profile.cluster in ("local", "debug") and profile.nodes > 1:
        raise UserError(f"--cluster {profile.cluster} runs on this machine only: nodes must be 1, "
                        f"got {profile.nodes}")
    return profile.cluster
