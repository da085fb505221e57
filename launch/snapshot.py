"""Code snapshot at submission: a requeued job runs what was submitted, not what the
source folder holds when it restarts.

The two packages a job imports (``cwn_bench`` and ``launch``) are copied from where they
are imported now into ``<sweep>/code/<n>/``; jobs start there (``cd``, and first on
``PYTHONPATH``), so the editable install is shadowed.  Copying the package folders
rather than ``git archive`` or submitit's ``RsyncSnapshot`` works for a pip-installed
package as well as a checkout, needs no rsync, and copies exactly what runs (not the
whole repository with its data and runs).  When the packages sit in a git checkout its
commit is recorded; uncommitted changes to them are refused, or with ``allow_dirty``
recorded as ``uncommitted.diff`` next to the copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cwn_bench
from cwn_bench.errors import UserError

import launch

PACKAGES = (cwn_bench, launch)
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def _git(repo: Path, *args: str) -> str | None:
    """stdout of ``git -C repo args``, or None when git or the checkout is missing."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(repo: Path, paths: list[str]) -> dict[str, Any]:
    """``{"commit", "dirty": [files], "diff"}`` of ``paths`` in the checkout holding
    ``repo`` (commit None when it is not one)."""
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": [], "diff": ""}
    status = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths) or ""
    dirty = [line[3:] for line in status.splitlines() if not line[3:].endswith(".pyc")]
    diff = _git(repo, "diff", "HEAD", "--", *paths) or ""
    return {"commit": commit.strip(), "dirty": dirty, "diff": diff}


def take(dest: Path, allow_dirty: bool) -> dict[str, Any]:
    """Copy the packages into ``dest`` (created) and return what was recorded:
    ``{"path", "commit", "dirty"}``; also written to ``dest/SNAPSHOT.json``."""
    sources = [Path(p.__file__).resolve().parent for p in PACKAGES]
    repo = sources[0].parent
    state = git_state(repo, [s.name for s in sources if s.parent == repo])
    if state["dirty"] and not allow_dirty:
        shown = ", ".join(state["dirty"][:5]) + (" ..." if len(state["dirty"]) > 5 else "")
        raise UserError(f"{repo}: uncommitted changes in the code a job would run ({shown}); commit them, "
                        "or pass --allow-dirty to snapshot them as they are (the diff is recorded)")
    dest.mkdir(parents=True, exist_ok=True)
    for src in sources:
        shutil.copytree(src, dest / src.name, ignore=IGNORE, dirs_exist_ok=True)
    if state["dirty"]:
        (dest / "uncommitted.diff").write_text(state["diff"])
    record = {"path": str(dest), "source": str(repo), "commit": state["commit"], "dirty": state["dirty"]}
    (dest / "SNAPSHOT.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
