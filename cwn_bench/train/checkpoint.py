"""Atomic checkpoints in ``run_dir/checkpoints/``: write, keep the newest K, load the
newest readable one.

Names are ``ckpt-<global step, 9 digits>.pt`` so that sorting names sorts by progress.
A write goes to a temporary file in the same folder, is fsync'ed, then renamed over
the final name (atomic on POSIX) and the folder is fsync'ed: a crash leaves either the
old set or the new set, never a half file under a checkpoint name.  Loading uses
``weights_only=True``; an unreadable newest checkpoint is renamed ``*.corrupt`` (kept
for inspection, out of the rotation) and the previous one is tried, with a message.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from cwn_bench import atomic
from cwn_bench.errors import UserError

PATTERN = "ckpt-*.pt"


def save(state: dict[str, Any], folder: Path, global_step: int, keep: int) -> Path:
    """Write ``state`` as ``folder/ckpt-<global_step>.pt`` atomically; delete all but the
    newest ``keep`` checkpoints.  Returns the path written."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"ckpt-{global_step:09d}.pt"
    with atomic.replace(final, "wb") as f:
        torch.save(state, f)
    for old in sorted(folder.glob(PATTERN))[:-max(keep, 1)]:
        old.unlink()
    return final


def load(path: Path) -> dict[str, Any]:
    """One checkpoint, tensors on the CPU (weights_only: no arbitrary code runs)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_latest(folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that loads, as ``(state, path)``; None when the folder holds
    none.  Raises UserError when checkpoints exist but none is readable.  Call it on one
    rank only (it renames corrupt files) and :func:`load` the chosen path on the others."""
    paths = sorted(folder.glob(PATTERN), reverse=True)
    for path in paths:
        try:
            return load(path), path
        except Exception as err:  # truncated zip, bad pickle, disk error: all mean unusable
            bad = path.with_name(path.name + ".corrupt")
            path.rename(bad)
            print(f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err)[:200]}); "
                  f"kept as {bad.name}, falling back to the previous one", file=sys.stderr)
    if paths:
        raise UserError(f"{folder}: no readable checkpoint (tried {', '.join(p.name for p in paths)}); "
                        "move the folder away to start the run afresh")
    return None
