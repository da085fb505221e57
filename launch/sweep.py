"""Where a sweep lives: ``<runs_root>/<config name>-<first 8 of sweep_hash>/`` with one
run directory per point (named by :func:`cwn_bench.config.run_name`).  The sweep dir's
files (``sweep.json``, the run dirs' files) are :mod:`cwn_bench.rundir`'s; the code
snapshots are ``code/<n>/`` and submitit's job files and logs ``jobs/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cwn_bench.config import Config, expand_sweep, run_name, sweep_hash


def sweep_dir(cfg: Config, runs_root: str | Path) -> Path:
    """Absolute and deterministic: the same sweep always lands in the same folder
    (``~`` and ``$VARS`` in ``runs_root`` expanded)."""
    return Path(os.path.expandvars(os.path.expanduser(runs_root))).resolve() / f"{cfg.name}-{sweep_hash(cfg)[:8]}"


def runs(cfg: Config, root: Path) -> list[tuple[str, Path, Config]]:
    """``[(run name, run dir, config)]`` for every point of the sweep, in sweep order."""
    return [(run_name(point), root / run_name(point), run) for point, run in expand_sweep(cfg)]
