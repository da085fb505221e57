"""One writer per run directory: a second trainer waits for the first, then gives up."""

import subprocess
import sys
import time

import pytest

from cwn_bench.errors import UserError
from cwn_bench.train.runlock import exclusive

HOLD = "import sys, time; from pathlib import Path; from cwn_bench.train.runlock import exclusive\n" \
       "with exclusive(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"


def test_second_writer_waits_then_fails_naming_the_holder_and_lock_dies_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(UserError, match=rf"pid {holder.pid} on .* is still training in this run directory"):
            with exclusive(tmp_path, wait_s=1.0, poll_s=0.1):
                pass
        assert time.monotonic() - t0 >= 1.0
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the lock
        holder.wait()
    with exclusive(tmp_path, wait_s=0.0):
        assert (tmp_path / ".lock").read_text().startswith("pid ")
