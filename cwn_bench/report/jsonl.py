"""Tolerant readers for JSON and JSON-lines files: a bad file or line becomes a
:class:`Problem` (path, line, what is wrong) and the report goes on without it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One input the report skipped: ``line`` counts from 1, None for the whole file."""

    path: str
    line: int | None
    problem: str


def read_json(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One JSON object from ``path``, or None and the reason it could not be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        return None, [Problem(str(path), None, f"cannot read ({err.strerror})")]
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, [Problem(str(path), None, f"not valid JSON ({err})")]
    if not isinstance(data, dict):
        return None, [Problem(str(path), None, f"expected a JSON object, got {type(data).__name__}")]
    return data, []


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The JSON objects of ``path``, one per line; blank lines are ignored and every other
    line that is not a JSON object (corrupt, or cut short by a crash) is a Problem."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        return [], [Problem(str(path), None, f"cannot read ({err.strerror})")]
    lines = raw.split(b"\n")
    records, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            # The last line of a file without a final newline is a write cut short.
            last = number == len(lines) and not raw.endswith(b"\n")
            problems.append(Problem(str(path), number, "truncated last line" if last else "corrupt line (not JSON)"))
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            problems.append(Problem(str(path), number, f"expected a JSON object, got {type(record).__name__}"))
    return records, problems
