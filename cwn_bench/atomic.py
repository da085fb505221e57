"""Replace a file so that a crash leaves the old version or the new one, never a torn one.

Write to a temporary file beside the target, fsync it, rename it over the target (atomic
on POSIX) and fsync the folder so the rename itself survives a power cut.  Used for
checkpoints, run.json, metrics.jsonl rewrites and sweep.json.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cwn_bench.errors import UserError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError of the block (disk full, permission denied, read-only file system)
    into a one-line UserError naming ``path``."""
    try:
        yield
    except OSError as err:
        raise UserError(f"{path}: cannot write ({err.strerror or err}); expected a writable folder "
                        "with free space") from None


@contextlib.contextmanager
def replace(path: Path, mode: str = "w") -> Iterator[IO]:
    """Yield a file opened with ``mode`` ("w" or "wb") whose content replaces ``path`` when
    the block ends without an exception (the temporary file is removed otherwise).  A
    disk or permission error is a one-line UserError naming ``path`` (:func:`writing`);
    the old file is then left as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path):
        try:
            with open(tmp, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)


def write_json(path: Path, data: Any, indent: int = 1) -> None:
    """Replace ``path`` by ``data`` as indented JSON (non-JSON values as ``str``)."""
    with replace(path) as f:
        json.dump(data, f, indent=indent, default=str)
        f.write("\n")
