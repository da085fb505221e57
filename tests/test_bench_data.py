"""``bench data``'s CPU accounting: persistent DataLoader workers live through every
timed epoch, so their CPU time must be read while they run."""

import subprocess
import sys

from cwn_bench.bench.data import _cpu_seconds

BURN = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n    pass\n"
        "print('burnt', flush=True)\ntime.sleep(60)")


def test_cpu_time_counts_a_child_that_is_still_running():
    before = _cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "burnt"
        assert _cpu_seconds() - before >= 0.5  # the child's 0.5 s of CPU (and its start-up) while it lives
    finally:
        child.kill()
        child.wait()


def test_the_decode_only_reference_reads_the_same_files_and_is_the_ratios_denominator(digits_root, tmp_path):
    from cwn_bench.bench.data import run_data

    rows = run_data(digits_root, ["torch", "decode-only"], tmp_path / "d.jsonl", batch_size=128, image_size=32,
                    warmup=0, workers=1)
    torch_row, reference = rows
    assert reference["loader"] == "decode-only" and reference["images"] == torch_row["images"] == 11 * 128
    assert reference["img_per_s"] > 0 and reference["workers"] == 1
    last = (tmp_path / "d.jsonl").read_text().splitlines()[-1]
    assert '"numerator": "torch", "denominator": "decode-only"' in last
