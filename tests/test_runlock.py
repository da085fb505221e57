"""One writer per run directory: a second trainer waits for the first, then gives up;
`holder` names the live writer; a file system without flock trains unlocked."""

import errno
import time

import pytest

from cwn_bench.errors import UserError
from cwn_bench.rundir import lock as runlock
from cwn_bench.rundir.lock import exclusive, holder

def test_second_writer_waits_then_fails_naming_the_holder_and_lock_dies_with_it(tmp_path, lock_holder):
    assert holder(tmp_path) is None  # no lock file yet
    writer = lock_holder(tmp_path)
    assert holder(tmp_path).startswith(f"pid {writer.pid} on ")
    t0 = time.monotonic()
    with pytest.raises(UserError, match=rf"pid {writer.pid} on .* is still training in this run directory"):
        with exclusive(tmp_path, wait_s=1.0, poll_s=0.1):
            pass
    assert time.monotonic() - t0 >= 1.0
    writer.kill()  # SIGKILL: no cleanup code runs, the kernel drops the lock
    writer.wait()
    assert holder(tmp_path) is None  # the file stays, naming the dead writer; the lock went with it
    with exclusive(tmp_path, wait_s=0.0):
        assert (tmp_path / ".lock").read_text().startswith("pid ")


def test_a_file_system_without_flock_trains_unlocked_with_a_warning(tmp_path, monkeypatch, capsys):
    # Stand-in (this machine's file systems all have flock): flock answering ENOSYS as on
    # Lustre mounted noflock.
    def no_flock(*_):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(runlock.fcntl, "flock", no_flock)
    with exclusive(tmp_path, wait_s=0.0):
        ran = True
    assert ran and "does not support flock (Function not implemented)" in capsys.readouterr().err
    assert holder(tmp_path) is None
