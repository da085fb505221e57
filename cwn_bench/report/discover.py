"""Find the report's inputs under the user's paths: run dirs (holding ``run.json`` or
``metrics.jsonl``), sweep dirs (``sweep.json``) and benchmark JSON-lines files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cwn_bench.errors import UserError
from cwn_bench.rundir import RUN_FILES, SWEEP_JSON, SWEEP_SKIP
from cwn_bench.rundir.files import Problem


@dataclass
class Found:
    run_dirs: list[Path] = field(default_factory=list)
    sweep_dirs: list[Path] = field(default_factory=list)
    jsonl_files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # folders that could not be listed
    seen: set[Path] = field(default_factory=set)  # resolved paths: overlapping inputs read once

    def add(self, items: list[Path], path: Path) -> None:
        if path.resolve() not in self.seen:
            self.seen.add(path.resolve())
            items.append(path)


def _walk(root: Path, found: Found) -> None:
    def unreadable(err: OSError) -> None:
        found.problems.append(Problem(str(err.filename), None, f"cannot list folder ({err.strerror})"))

    for here, dirs, files in os.walk(root, onerror=unreadable):
        here_path = Path(here)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .git, .venv, temporary files
        if SWEEP_JSON in files:
            found.add(found.sweep_dirs, here_path)
            dirs[:] = [d for d in dirs if d not in SWEEP_SKIP]
        if any(name in files for name in RUN_FILES):
            found.add(found.run_dirs, here_path)
            dirs.clear()  # a run dir's checkpoints/ holds nothing the report reads
            continue
        for name in sorted(files):
            if name.endswith(".jsonl"):
                found.add(found.jsonl_files, here_path / name)


def discover(paths: list[Path]) -> Found:
    """Every input under ``paths`` (dirs are walked; a file is a run's ``run.json`` /
    ``metrics.jsonl``, a ``sweep.json`` or a bench ``.jsonl``). A path that does not
    exist is a UserError naming it."""
    found = Found()
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such file or directory (expected run dirs, sweep dirs or bench JSONL)")
        if path.is_dir():
            _walk(path, found)
        elif path.name in RUN_FILES:
            found.add(found.run_dirs, path.parent)
        elif path.name == SWEEP_JSON:
            found.add(found.sweep_dirs, path.parent)
        elif path.suffix == ".jsonl":
            found.add(found.jsonl_files, path)
        else:
            raise UserError(f"{path}: not a run dir, sweep dir, run.json, metrics.jsonl or .jsonl file")
    return found
