"""The environment header of a benchmark JSONL file and the file itself.

The first line is ``{"kind": "env", ...}``: the device measured and its card, GPUs and
driver, CUDA, cuDNN, torch, triton, CPU, threads, ``cudnn.benchmark``, host and git
commit. Every later line is one result, written and flushed as soon as it is measured, so
an interrupted run keeps what it had.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import IO, Any

import torch

from cwn_bench import sysinfo
from cwn_bench.errors import UserError


def card_name(device: torch.device) -> str:
    """The GPU's name (``NVIDIA H100 80GB HBM3``) or ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def environment(device: torch.device, **extra: Any) -> dict[str, Any]:
    """The ``{"kind": "env"}`` header row for a run on ``device``: UTC time,
    :func:`cwn_bench.sysinfo.environment` (versions, ``gpu``, CPU, threads, host, ``git``),
    the device and its ``card`` name, ``cudnn.benchmark``, whether Triton interprets, and ``extra``."""
    return {
        "kind": "env",
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **sysinfo.environment(),
        "device": str(device),
        "card": card_name(device),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
        **extra,
    }


class JsonlWriter:
    """Appends one JSON object per line to ``path`` (or only keeps them when ``path`` is
    None); ``rows`` holds everything written, header included."""

    def __init__(self, path: str | Path | None) -> None:
        self.rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        if path is not None:
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("x")
            except FileExistsError:
                raise UserError(f"--out {path}: the file exists; choose a new path "
                                "(results are never overwritten)") from None
            except OSError as err:
                raise UserError(f"--out {path}: cannot create the file ({err.strerror})") from None

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
