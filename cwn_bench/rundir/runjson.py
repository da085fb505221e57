"""``run.json``: what was run, where, and how it ended (written by rank 0, atomically).

Fields: ``config`` (nested), ``seed``, ``config_hash``, ``status`` (running | completed |
failed), ``reason``, ``env`` (see :mod:`cwn_bench.train.envinfo`), ``world_size``,
``global_batch``, sizes, ``attempts`` (one entry per start: time, host names, SLURM ids,
checkpoint resumed from) and, once completed, ``final`` (the last epoch record).
:func:`load` checks the fields others read (``status``, ``config``, ``attempts``,
``reason``), so a reader may index them without checking again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cwn_bench import atomic
from cwn_bench.config import Config, config_hash
from cwn_bench.errors import UserError
from cwn_bench.rundir import RUN_JSON
from cwn_bench.rundir.files import Problem, fail, read_json

STATUSES = ("running", "completed", "failed")
# field -> (types allowed, what is expected) for the fields other parts read
_SHAPE = {"config": (dict, "a mapping"), "attempts": (list, "a list"), "reason": ((str, type(None)), "text or null"),
          "env": (dict, "a mapping")}


def load(run_dir: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """run.json of ``run_dir`` checked, or None and the problems (None and no problem
    when there is no run.json)."""
    path = run_dir / RUN_JSON
    if not path.exists():
        return None, []
    data, problems = read_json(path)
    if data is None:
        return None, problems
    if data.get("status") not in STATUSES:
        return None, [Problem(str(path), None, f"not a run record: 'status' must be one of {', '.join(STATUSES)}")]
    for key, (types, expected) in _SHAPE.items():
        if key in data and not isinstance(data[key], types):
            return None, [Problem(str(path), None, f"'{key}' must be {expected}, got {type(data[key]).__name__}")]
    return data, []


def read(run_dir: Path) -> dict[str, Any] | None:
    """:func:`load`, a bad run.json being a one-line UserError naming it."""
    data, problems = load(run_dir)
    if problems:
        fail(problems)
    return data


def planned_epochs(data: dict[str, Any]) -> int | None:
    """``config.train.epochs`` of a run record (or sweep record), if it is an int."""
    train = data.get("config", {}).get("train") if isinstance(data.get("config"), dict) else None
    epochs = train.get("epochs") if isinstance(train, dict) else None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def check_same_experiment(previous: dict[str, Any] | None, cfg: Config, run_dir: Path) -> None:
    """Refuse to resume a run dir that holds another experiment (or seed)."""
    if previous is None:
        return
    mine = config_hash(cfg)
    if previous.get("config_hash") != mine or previous.get("seed") != cfg.seed:
        raise UserError(
            f"{run_dir / RUN_JSON}: this run dir holds config_hash {str(previous.get('config_hash'))[:12]} "
            f"seed {str(previous.get('seed'))[:20]}, not config_hash {mine[:12]} seed {cfg.seed}; "
            "pass another --run-dir (or remove the old one) to start a different run")


def write(run_dir: Path, data: dict[str, Any]) -> None:
    """Replace run.json atomically (temporary file, fsync, rename)."""
    atomic.write_json(run_dir / RUN_JSON, data, indent=2)
