"""``run.json``: what was run, where, and how it ended (written by rank 0, atomically).

Fields: ``config`` (nested), ``seed``, ``config_hash``, ``status`` (running | completed |
failed), ``reason``, ``env`` (see :mod:`envinfo`), ``world_size``, ``global_batch``,
sizes, ``attempts`` (one entry per start: time, host names, SLURM ids, checkpoint
resumed from) and, once completed, ``final`` (the last epoch record).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cwn_bench import atomic
from cwn_bench.config import Config, config_hash
from cwn_bench.errors import UserError

RUN_JSON = "run.json"


def read(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_JSON
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable run record ({err}); expected one JSON object") from None
    if not isinstance(data, dict) or "status" not in data:
        raise UserError(f"{path}: not a run record (expected a JSON object with 'status')")
    return data


def check_same_experiment(previous: dict[str, Any] | None, cfg: Config, run_dir: Path) -> None:
    """Refuse to resume a run dir that holds another experiment (or seed)."""
    if previous is None:
        return
    mine = config_hash(cfg)
    if previous.get("config_hash") != mine or previous.get("seed") != cfg.seed:
        raise UserError(
            f"{run_dir / RUN_JSON}: this run dir holds config_hash {str(previous.get('config_hash'))[:12]} "
            f"seed {previous.get('seed')}, not config_hash {mine[:12]} seed {cfg.seed}; "
            "pass another --run-dir (or remove the old one) to start a different run")


def write(run_dir: Path, data: dict[str, Any]) -> None:
    """Replace run.json atomically (temporary file, fsync, rename)."""
    atomic.write_json(run_dir / RUN_JSON, data, indent=2)
