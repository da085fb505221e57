"""Jobs inside a container image (profile ``container`` + ``container_runtime``).

Two runtimes, two ways in:

* ``pyxis`` (the SPANK plugin of NVIDIA's enroot): srun itself starts every task in the
  image, so the job gets ``srun --container-image=IMAGE --container-mounts=...
  --container-workdir=CODE``.
* ``apptainer``: the task's command is wrapped, ``apptainer exec [--nv] --bind ...
  --pwd CODE IMAGE python3 -u -m submitit.core._submit ...`` (``--nv`` when the job asks
  for GPUs).

Either way the runs root (sweep dirs, code snapshots, submitit's pickles and logs) and
the data roots are mounted at the same paths, the snapshot is the working directory, and
the image's ``python3`` runs it (profile ``python`` to name another).  The image must
hold torch, submitit and cwn-bench's dependencies; the code comes from the snapshot.
The job exports ``CWN_CONTAINER_IMAGE`` / ``CWN_CONTAINER_RUNTIME``, which the run
records in run.json's env (:func:`cwn_bench.train.envinfo.container`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

from cwn_bench.train.envinfo import IMAGE_VAR, RUNTIME_VAR

from launch.profile import Profile

CONTAINER_PYTHON = "python3"


def mounts(paths: Iterable[str | Path | None]) -> list[str]:
    """Absolute folders to mount, once each, in the given order (None left out)."""
    out: list[str] = []
    for path in paths:
        if path is not None and str(Path(path).resolve()) not in out:
            out.append(str(Path(path).resolve()))
    return out


def python_command(profile: Profile, binds: list[str], workdir: Path | None) -> str:
    """The shell words that start the jobs' Python (submitit's ``python``)."""
    python = profile.python or (CONTAINER_PYTHON if profile.container else shlex.quote(sys.executable))
    if profile.container is None or profile.container_runtime != "apptainer":
        return python
    words = ["apptainer", "exec"] + (["--nv"] if profile.gpus_per_node else [])
    if binds:
        words += ["--bind", ",".join(binds)]
    if workdir is not None:
        words += ["--pwd", str(workdir)]
    return " ".join([shlex.join([*words, profile.container]), python])


def srun_args(profile: Profile, binds: list[str], workdir: Path | None) -> list[str]:
    """srun's pyxis flags (none without a pyxis container)."""
    if profile.container is None or profile.container_runtime != "pyxis":
        return []
    args = [f"--container-image={profile.container}"]
    if binds:
        args.append("--container-mounts=" + ",".join(f"{p}:{p}" for p in binds))
    if workdir is not None:
        args.append(f"--container-workdir={workdir}")
    return args


def env_lines(profile: Profile) -> list[str]:
    """Setup lines that tell the run which image it is in."""
    if profile.container is None:
        return []
    return [f"export {IMAGE_VAR}={shlex.quote(profile.container)}",
            f"export {RUNTIME_VAR}={shlex.quote(profile.container_runtime)}"]
