"""Read benchmark JSON-lines files (``cwn-bench bench``): the first line is the
environment (``kind: env``), then kernel measurements (``kind: measurement``, or
``skipped`` with a ``reason`` such as out of memory) and data-loader rows (``kind:
data``: ``loader``, ``img_per_s``, ...). Each row keeps its file and the
card named by the file's env line, so results from two cards are never mixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cwn_bench.report.envfields import device_name
from cwn_bench.rundir.files import Problem, read_jsonl


def read_bench(files: list[Path], problems: list[Problem]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(measurements, loader rows, bench files read)``; a .jsonl file holding neither
    is noted as a Problem and left out."""
    measurements: list[dict[str, Any]] = []
    loaders: list[dict[str, Any]] = []
    used = []
    for path in files:
        records, bad = read_jsonl(path)
        problems.extend(bad)
        env = next((r for r in records if r.get("kind") == "env"), {})
        source = {"file": str(path), "card": device_name(env)}
        rows_m = [{**r, **source} for r in records if r.get("kind") in ("measurement", "skipped")]
        rows_l = [{**r, **source} for r in records if "loader" in r and "img_per_s" in r]
        if not (rows_m or rows_l or env):
            problems.append(Problem(str(path), None, "not a bench JSONL (no env, measurement or loader rows); ignored"))
            continue
        used.append(str(path))
        measurements += rows_m
        loaders += rows_l
    return pd.DataFrame(measurements), pd.DataFrame(loaders), used
