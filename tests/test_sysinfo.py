"""What every result records about the code: the commit from git, from a snapshot's
SNAPSHOT.json, or (a tree copied without either) from CWN_BENCH_COMMIT."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cwn_bench
from cwn_bench import sysinfo

SHOW = "import json; from cwn_bench import sysinfo; print(json.dumps(sysinfo.code_version()))"


def _code_version_of_copy(tmp_path: Path, **env: str) -> dict:
    shutil.copytree(Path(cwn_bench.__file__).parent, tmp_path / "cwn_bench")
    done = subprocess.run([sys.executable, "-c", SHOW], cwd=tmp_path, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path), **env})
    return json.loads(done.stdout)


def test_a_checkout_asks_git():
    here = sysinfo.code_version()
    assert len(here["commit"]) == 40 and isinstance(here["dirty"], bool) and here["snapshot"] is None


def test_a_copy_without_git_names_its_commit_from_the_environment(tmp_path):
    assert _code_version_of_copy(tmp_path / "a", CWN_BENCH_COMMIT="0123abc") == {
        "commit": "0123abc", "dirty": None, "snapshot": None}
    assert _code_version_of_copy(tmp_path / "b")["commit"] is None  # nothing names it


def test_a_snapshot_s_record_wins(tmp_path):
    (tmp_path / "SNAPSHOT.json").write_text(json.dumps({"commit": "feed", "dirty": True}))
    assert _code_version_of_copy(tmp_path, CWN_BENCH_COMMIT="other") == {
        "commit": "feed", "dirty": True, "snapshot": str(tmp_path)}
