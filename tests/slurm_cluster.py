"""pytest plugin: the session-scoped ``slurm_cluster`` fixture (a real two-node SLURM
cluster on this machine, started by ``slurm/local/start.sh --nodes 2``).

It installs the packages (``slurm/local/install.sh``, a no-op when present), starts the
daemons, exports ``SLURM_CONF`` for this process and its children, and stops the daemons
it started when the session ends, whether the tests passed or not.  A cluster already
running (from an earlier session) is reused and left running.  Without root or apt the
tests skip with the reason; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parent.parent / "slurm" / "local"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the local SLURM cluster is unavailable: {reason}", pytrace=False)
    pytest.skip(f"local SLURM cluster unavailable: {reason}")


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOCAL / script), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def slurm_cluster():
    """Yield the path of the running cluster's ``slurm.conf``; nodes ``n1`` and ``n2``,
    each with every CPU of this machine, partition ``debug``."""
    if os.geteuid() != 0:
        _unavailable("not root (start.sh runs munged, MariaDB and the SLURM daemons)")
    installed = _run("install.sh")
    if installed.returncode != 0:
        _unavailable(f"slurm/local/install.sh failed: {installed.stderr.strip()[-500:]}")
    started = _run("start.sh", "--nodes", "2", timeout=180)
    if started.returncode != 0:
        _unavailable(f"slurm/local/start.sh failed: {(started.stdout + started.stderr).strip()[-1500:]}")
    conf = started.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
    os.environ["SLURM_CONF"] = conf
    os.environ["PATH"] = os.environ["PATH"] + ":/usr/sbin"
    try:
        yield conf
    finally:
        if "already running" not in started.stdout:
            _run("stop.sh", timeout=120)


@pytest.fixture(scope="module")
def small_slurm_cluster(slurm_cluster, tmp_path_factory):
    """A second, one-node cluster beside the shared one (its own base, ports 7917-7918 and
    SLURM_CONF; the shared cluster's munged reused, so that one is started first), started
    ``--no-accounting --max-array-size 3``: sacct fails there as on clusters without
    accounting, and an array holds at most 3 tasks.  Exported as SLURM_CONF while the
    module's tests run; stopped afterwards."""
    base = tmp_path_factory.mktemp("small-cluster")
    started = _run("start.sh", "--base", str(base), "--port", "7917", "--no-accounting", "--max-array-size", "3",
                   timeout=180)
    try:
        if started.returncode != 0:
            _unavailable(f"start.sh --base {base} failed: {(started.stdout + started.stderr).strip()[-1500:]}")
        conf = started.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
        saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
        os.environ["SLURM_CONF"] = conf
        os.environ["PATH"] = os.environ["PATH"] + ":/usr/sbin"
        try:
            yield conf
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        _run("stop.sh", "--base", str(base), timeout=120)
