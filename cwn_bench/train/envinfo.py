"""What a run records beyond :func:`cwn_bench.sysinfo.environment`: every rank's host,
the SLURM ids, the command line and the container image (when a job runs in one)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cwn_bench import sysinfo

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
              "SLURM_JOB_NODELIST", "SLURM_JOB_PARTITION")


# Exported by the job script of a containerised submission (launch/container.py).
IMAGE_VAR, RUNTIME_VAR = "CWN_CONTAINER_IMAGE", "CWN_CONTAINER_RUNTIME"
APPTAINER_LABELS = Path("/.singularity.d/labels.json")  # inside an apptainer container


def host() -> str:
    return socket.gethostname()


def slurm_ids() -> dict[str, str | None]:
    """This job's SLURM ids (None outside SLURM)."""
    return {k: os.environ.get(k) for k in SLURM_VARS}


def container() -> dict[str, Any] | None:
    """``{"runtime", "image", "digest", "runtime_image"}`` of the container this job runs
    in, None outside one.  ``digest``: the ``@sha256:...`` of a pinned reference, else an
    apptainer image's ``...digest`` label, else None (pyxis reports none);
    ``runtime_image``: the image as apptainer names it (``APPTAINER_CONTAINER``)."""
    image = os.environ.get(IMAGE_VAR)
    if image is None:
        return None
    digest = image.partition("@")[2] or None
    if digest is None and APPTAINER_LABELS.is_file():
        try:
            labels = json.loads(APPTAINER_LABELS.read_text())
        except (OSError, ValueError):
            labels = {}
        labels = labels if isinstance(labels, dict) else {}
        digest = next((str(v) for k, v in sorted(labels.items()) if k.lower().endswith("digest")), None)
    return {"runtime": os.environ.get(RUNTIME_VAR), "image": image, "digest": digest,
            "runtime_image": os.environ.get("APPTAINER_CONTAINER")}


def capture(hostnames: list[str]) -> dict[str, Any]:
    """The environment of this process (rank 0) plus every rank's host name."""
    return {**sysinfo.environment(), "hostnames": sorted(set(hostnames)), "slurm": slurm_ids(), "argv": sys.argv,
            "container": container()}
