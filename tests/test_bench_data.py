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


def test_the_eighth_scale_reference_decodes_jpegs_at_an_eighth_and_is_timed_beside_the_others(tmp_path):
    from cwn_bench.bench.data import DecodeOnly, run_data
    from cwn_bench.data import make_sized_jpegs

    root = make_sized_jpegs(tmp_path / "jpegs", classes=2, per_class=4, width=100, height=75)
    full, eighth = (DecodeOnly(root, 4, 0, False, scale).loader.dataset for scale in (1, 8))
    assert full._decode(0) == (100, 75) and eighth._decode(0) == (13, 10)  # ceil(W / 8) x ceil(H / 8)
    rows = run_data(root, ["torch", "decode-eighth", "decode-only"], tmp_path / "d.jsonl", batch_size=4,
                    image_size=32, warmup=0, workers=0)
    assert [r["loader"] for r in rows] == ["torch", "decode-eighth", "decode-only"]
    assert all(r["images"] == 8 for r in rows)
    ratios = (tmp_path / "d.jsonl").read_text().splitlines()[-2:]
    assert all('"denominator": "decode-only"' in line for line in ratios) and '"numerator": "decode-eighth"' in ratios[1]
