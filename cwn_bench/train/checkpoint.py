"""Atomic checkpoints in ``run_dir/checkpoints/``: write, keep the newest K, load the
newest usable one.

Names are ``ckpt-<global step, 9 digits>.pt`` so that sorting names sorts by progress.
A write goes to a temporary file in the same folder, is fsync'ed, then renamed over
the final name (atomic on POSIX) and the folder is fsync'ed: a crash leaves either the
old set or the new set, never a half file under a checkpoint name.

Loading (``weights_only=True``: no code runs) tells three cases apart:

- the file cannot be *read* (EIO, permission denied: an OSError): the file may be fine,
  so nothing is renamed and the run stops with one line naming it;
- the file is *not one of this run's checkpoints* (not a torch file, truncated, keys
  missing, another model's parameter names or shapes: :class:`Unusable`): it is renamed
  ``*.corrupt`` (kept for inspection, out of the rotation) and the previous one is tried;
- every checkpoint is unusable (now or at an earlier start: ``*.corrupt`` files and no
  ``ckpt-*.pt``): the run stops rather than silently train from step 0, unless it was
  started with ``restart`` (``cwn-bench train --restart``, ``submit --restart``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cwn_bench import atomic
from cwn_bench.errors import UserError, one_line

PATTERN = "ckpt-*.pt"
CORRUPT = "ckpt-*.pt.corrupt"
REQUIRED = ("model", "optimizer", "scaler", "epoch", "global_step", "meter", "rng", "world_size")


class Unusable(Exception):
    """A readable file that is not a checkpoint of this run; ``str()`` says why."""


def save(state: dict[str, Any], folder: Path, global_step: int, keep: int) -> Path:
    """Write ``state`` as ``folder/ckpt-<global_step>.pt`` atomically; delete all but the
    newest ``keep`` checkpoints.  Returns the path written.  A full disk or a permission
    error is a one-line UserError naming the file; the older checkpoints stay."""
    with atomic.writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"ckpt-{global_step:09d}.pt"
    try:
        with atomic.replace(final, "wb") as f:
            torch.save(state, f)
    except RuntimeError as err:  # torch's writer reports a failed write (ENOSPC) as a RuntimeError
        raise UserError(f"{final}: cannot write checkpoint ({one_line(err, 160)}); expected a writable "
                        "folder with free space; the previous checkpoints are kept") from None
    for old in sorted(folder.glob(PATTERN))[:-max(keep, 1)]:
        old.unlink()
    return final


def load(path: Path) -> dict[str, Any]:
    """One checkpoint, tensors on the CPU; OSError -> UserError (nothing renamed), a file
    that is no checkpoint -> :class:`Unusable`."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read checkpoint ({err.strerror}); this is an I/O or permission "
                        "problem, not corruption, so nothing was renamed: fix it and run again") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad or forbidden pickle: torch raises many kinds
        raise Unusable(f"unreadable ({type(err).__name__}: {one_line(err, 160)})") from None
    if not isinstance(state, dict):
        raise Unusable(f"holds a {type(state).__name__}, not a checkpoint mapping")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise Unusable(f"not a checkpoint of this harness (no {', '.join(missing)})")
    return state


def load_latest(folder: Path, check: Callable[[dict[str, Any]], None] | None = None,
                restart: bool = False) -> tuple[dict[str, Any], Path] | None:
    """The newest usable checkpoint as ``(state, path)`` (``check(state)`` raising
    :class:`Unusable` when it is not this run's); None when there is none and the run may
    start from step 0.  See the module docstring for what stops the run.  Call it on one
    rank only (it renames corrupt files) and :func:`load` the chosen path on the others."""
    paths = sorted(folder.glob(PATTERN), reverse=True)
    for path in paths:
        try:
            state = load(path)
            if check is not None:
                check(state)
            return state, path
        except Unusable as why:
            bad = path.with_name(path.name + ".corrupt")
            path.rename(bad)
            print(f"checkpoint {path} {why}; kept as {bad.name}, falling back to the previous one", file=sys.stderr)
    corrupt = sorted(folder.glob(CORRUPT))
    if corrupt and not restart:
        names = ", ".join(p.name for p in corrupt[-3:]) + (f" and {len(corrupt) - 3} more" if len(corrupt) > 3 else "")
        raise UserError(f"{folder}: no usable checkpoint ({names}); the run stops instead of starting over "
                        "from step 0: run it again with `cwn-bench train ... --restart` (or `submit --restart`) "
                        "to start afresh (the *.corrupt files are kept)")
    if corrupt:
        print(f"{folder}: no usable checkpoint; starting over from step 0 (--restart)", file=sys.stderr)
    return None


def unusable(folder: Path) -> bool:
    """Whether ``folder`` holds checkpoints found unusable (``*.corrupt``) and no other."""
    return not any(folder.glob(PATTERN)) and any(folder.glob(CORRUPT))
