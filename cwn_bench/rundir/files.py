"""Tolerant readers for JSON and JSON-lines files: a bad file or line becomes a
:class:`Problem` (path, line, what is wrong) instead of an exception, so a reader can go
on without it (the report) or stop with its one line (:func:`fail`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cwn_bench.errors import UserError


@dataclass(frozen=True)
class Problem:
    """One input skipped: ``line`` counts from 1, None for the whole file."""

    path: str
    line: int | None
    problem: str

    def __str__(self) -> str:
        return f"{self.path}{f' line {self.line}' if self.line else ''}: {self.problem}"


def fail(problems: list[Problem]) -> NoReturn:
    """Raise the first problem as a one-line UserError."""
    raise UserError(str(problems[0]))


def read_json(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One JSON object from ``path``, or None and the reason it could not be read
    (unreadable, not UTF-8 / binary, not JSON, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        return None, [Problem(str(path), None, f"cannot read ({err.strerror})")]
    except UnicodeDecodeError:
        return None, [Problem(str(path), None, "not a text file (expected one JSON object)")]
    except json.JSONDecodeError as err:
        return None, [Problem(str(path), None, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})")]
    except RecursionError:
        return None, [Problem(str(path), None, "not valid JSON (nested too deeply)")]
    if not isinstance(data, dict):
        return None, [Problem(str(path), None, f"expected a JSON object, got {type(data).__name__}")]
    return data, []


def numbered_jsonl(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    """``[(line number from 1, object)]`` of ``path``, one JSON object per line; blank lines
    are ignored and every other line that is not a JSON object (corrupt, binary, or cut
    short by a crash) is a Problem."""
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
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            # The last line of a file without a final newline is a write cut short.
            last = number == len(lines) and not raw.endswith(b"\n")
            problems.append(Problem(str(path), number, "truncated last line" if last else "corrupt line (not JSON)"))
            continue
        if isinstance(record, dict):
            records.append((number, record))
        else:
            problems.append(Problem(str(path), number, f"expected a JSON object, got {type(record).__name__}"))
    return records, problems


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """:func:`numbered_jsonl` without the line numbers."""
    records, problems = numbered_jsonl(path)
    return [record for _, record in records], problems
