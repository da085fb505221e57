"""``metrics.jsonl``: one JSON object per line, written by rank 0 only.

``"epoch"`` records (one per finished epoch: ``epoch`` counting from 1, ``step``, ...)
and other kinds (``"step"`` every ``train.log_every`` steps, ``"probe"``, ``"fim"``) with
an integer ``step``.  On resume the file is cut back to what the checkpoint covers, so
an epoch record is never duplicated or lost.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from cwn_bench import atomic
from cwn_bench.errors import UserError, brief
from cwn_bench.rundir.files import Problem, fail, numbered_jsonl


def _count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _problem(record: dict[str, Any]) -> str | None:
    """What is wrong with one record's fields that readers rely on, else None."""
    kind = record.get("kind", "epoch")
    if not isinstance(kind, str):
        return f"'kind' must be text, got {type(kind).__name__}"
    if kind == "epoch" and not _count(record.get("epoch"), 1):
        return f"epoch record without a valid epoch number (an integer from 1): {brief(record.get('epoch'))}"
    if "step" in record and not _count(record["step"], 0):
        return f"{kind} record with an invalid step (an integer from 0): {brief(record['step'])}"
    return None


def load_numbered(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    """``[(line, record)]`` whose fields are usable, and a Problem for every other line."""
    numbered, problems = numbered_jsonl(path)
    good = []
    for line, record in numbered:
        problem = _problem(record)
        if problem is None:
            good.append((line, record))
        else:
            problems.append(Problem(str(path), line, problem))
    problems.sort(key=lambda p: p.line or 0)
    return good, problems


def load(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The usable records of ``path`` (none when it does not exist) and the problems."""
    if not path.exists():
        return [], []
    good, problems = load_numbered(path)
    return [record for _, record in good], problems


def last_epoch(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in reversed(records) if r.get("kind", "epoch") == "epoch"), None)


class MetricsLog:
    """Appends JSON lines to ``path`` (rank 0 only; other ranks write nothing)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with atomic.writing(self.path), open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _strict(self) -> list[tuple[int, dict[str, Any]]]:
        """Every record; a bad line other than a half-written last one is a UserError."""
        good, problems = load_numbered(self.path)
        if problems and problems[-1].problem == "truncated last line":
            print(f"{self.path}: dropping a half-written last line", file=sys.stderr)
            problems.pop()
        if problems:
            fail([Problem(p.path, p.line, f"{p.problem}; expected one record per line (fix or remove the line)")
                  for p in problems])
        return good

    def last(self, kind: str) -> dict[str, Any] | None:
        """The last record of ``kind`` (rank 0; None elsewhere or when there is none)."""
        if not self.enabled or not self.path.exists():
            return None
        return next((r for _, r in reversed(self._strict()) if r.get("kind", "epoch") == kind), None)

    def truncate(self, epochs_done: int, global_step: int) -> None:
        """Keep only the records a checkpoint at (``epochs_done``, ``global_step``) covers;
        drop a half-written last line (a kill mid-write).  Rewrites the file atomically."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for _, r in self._strict()
                if (r["epoch"] <= epochs_done if r.get("kind", "epoch") == "epoch" else r.get("step", 0) <= global_step)]
        with atomic.replace(self.path) as f:
            f.write("".join(json.dumps(r) + "\n" for r in kept))

    def set_aside(self, suffix: str) -> Path | None:
        """Rename the log to ``<name>.<suffix>`` (kept, no longer read); its new path."""
        if not self.enabled or not self.path.exists():
            return None
        kept = self.path.with_name(f"{self.path.name}.{suffix}")
        try:
            os.replace(self.path, kept)
        except OSError as err:
            raise UserError(f"{self.path}: cannot rename to {kept.name} ({err.strerror})") from None
        return kept
