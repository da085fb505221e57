"""The GPU check's own path, dry-run on CPU (`--quick`: tiny shapes, kernels through the
Triton interpreter), so that a session with a GPU can trust `make gpu-check` to finish."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cwn_bench.bench import gpu_check

# On a GPU machine the kernels are compiled for it (no interpreter), so the dry run uses it.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_dry_run_writes_every_part_and_the_overhead_summary(tmp_path):
    # as on the bare GPU box: without tqdm, scipy, submitit, DALI, ... (tests/bare_gpu_box.py)
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "bare_gpu_box.py"), "cwn_bench.bench.gpu_check",
                           "--device", DEVICE, "--quick", "--results-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out_dir,) = tmp_path.iterdir()
    assert out_dir.name.endswith("-cpu") or DEVICE == "cuda"
    files = {p.name for p in out_dir.iterdir()}
    assert {"correctness.jsonl", "conv-paper.jsonl", "conv-googlenet_bn.jsonl", "step.jsonl", "summary.md"} <= files
    correctness = [json.loads(line) for line in (out_dir / "correctness.jsonl").read_text().splitlines()]
    assert correctness[0]["kind"] == "env" and all(r["ok"] for r in correctness[1:])
    assert any(r["out_dtype"] == "bfloat16" for r in correctness[1:] if "out_dtype" in r)
    summary = (out_dir / "summary.md").read_text()
    assert "paper fwd+bwd bf16 nchw cwn-triton / plain" in summary and "train step batch 2" in summary
    assert "harness batch 2 fp32 nhwc train / bench step img/s" in summary and ">= 0.98" in summary
    (harness,) = [json.loads(line) for line in (out_dir / "harness.jsonl").read_text().splitlines()][1:]
    assert harness["ratio"] == harness["train_img_per_s"] / harness["step_img_per_s"] and harness["sync_warnings"] == 0
    assert "failed: nothing" in summary and summary in done.stdout
    timings = json.loads((out_dir / "summary.json").read_text())["seconds"]
    graph = {"conv-googlenet_bn-graph"} if DEVICE == "cuda" else set()
    assert set(timings) == {"kernel-correctness", "conv-paper", "conv-googlenet_bn", "step", "harness", *graph}


def test_overhead_table_compares_measurements_with_targets():
    row = {"kind": "measurement", "variant": "cwn-triton", "dtype": "bf16", "memory_format": "nchw", "pass": "fwd+bwd",
           "ratio_vs_plain": 1.05}
    conv = {"kind": "measurement", "layer": "conv", "variant": "cwn-triton", "pass": "eval-fwd", "dtype": "bf16",
            "memory_format": "nhwc"}
    step = {"kind": "measurement", "variant": "cwn", "batch": 64, "dtype": "bf16", "memory_format": "nhwc",
            "img_per_s": 3000.0, "ratio_vs_plain": 1.01}
    lines = gpu_check.overhead_table({"conv-paper": [row], "step": [step], "conv-googlenet_bn": [
        {**conv, "ratio_vs_plain": 1.0}, {**conv, "ratio_vs_plain": 1.0201},
        {**conv, "layer": "linear", "ratio_vs_plain": 5.0}]}, ["bf16"])
    by_name = {line["quantity"]: line for line in lines}
    assert by_name["paper fwd+bwd bf16 nchw cwn-triton / plain"]["met"] == "NO"
    assert by_name["paper fwd+bwd bf16 nchw cwn-reference / plain"]["ratio"] == "-"
    geomean = by_name["googlenet_bn convs geomean eval-fwd bf16 nhwc cwn-triton / plain (2 shapes)"]
    assert geomean["ratio"] == "1.010" and geomean["met"] == "NO"  # sqrt(1.0201) = 1.01 > 1.005; linear left out
    assert by_name["googlenet_bn train step batch 64 bf16 nhwc cwn / plain (3000 img/s)"]["met"] == "yes"


def test_a_wrong_kernel_or_a_crashing_part_fails_the_check_but_keeps_the_rest(tmp_path, monkeypatch, capsys):
    def crash():
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_check, "check_kernels", lambda *args: False)
    monkeypatch.setattr(gpu_check, "_parts", lambda *args: ([("conv-paper", crash), ("step", lambda: [])], ["bf16"]))
    assert gpu_check.main(["--device", "cpu", "--results-root", str(tmp_path)]) == 1
    (out_dir,) = tmp_path.iterdir()
    assert "failed: kernel-correctness, conv-paper" in (out_dir / "summary.md").read_text()
    assert "RuntimeError: boom" in (out_dir / "errors.txt").read_text()
    assert set(json.loads((out_dir / "summary.json").read_text())["seconds"]) == {"kernel-correctness", "conv-paper",
                                                                                  "step"}


def test_a_run_killed_mid_part_keeps_the_summary_of_the_parts_before(tmp_path, monkeypatch):
    """The device session may be cut at its time limit: summary.md is rewritten after each
    part, naming what has not run yet."""
    def killed():
        raise KeyboardInterrupt  # what a SIGINT (or the session's timeout) does mid-part

    monkeypatch.setattr(gpu_check, "check_kernels", lambda *args: True)
    monkeypatch.setattr(gpu_check, "_parts", lambda *args: ([("conv-paper", lambda: []), ("step", killed)], ["bf16"]))
    with pytest.raises(KeyboardInterrupt):
        gpu_check.main(["--device", "cpu", "--results-root", str(tmp_path)])
    (out_dir,) = tmp_path.iterdir()
    summary = (out_dir / "summary.md").read_text()
    assert "failed: nothing" in summary and "not run yet: step" in summary
    timing = json.loads((out_dir / "summary.json").read_text())
    assert set(timing["seconds"]) == {"kernel-correctness", "conv-paper"} and timing["pending"] == ["step"]


def test_the_harness_counts_only_syncs_inside_the_step_loop_outside_its_sync_points():
    import sys

    from cwn_bench.bench.harness import loop_epoch

    def train_one_epoch(epoch, inner):
        return inner()

    def train_step():
        return loop_epoch(sys._getframe())

    def collect():  # a sync point of the loop
        return loop_epoch(sys._getframe())

    def evaluate():
        return loop_epoch(sys._getframe())

    assert train_one_epoch(1, train_step) == 1 and train_one_epoch(0, train_step) == 0
    assert train_one_epoch(1, collect) is None and evaluate() is None


def test_gpu_check_help_lists_every_part(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--help"])
    listed = "".join(capsys.readouterr().out.split())  # argparse wraps the list at hyphens and spaces
    assert all(part in listed for part in gpu_check.PARTS) and "harness" in gpu_check.PARTS


def test_the_report_quotes_the_gpu_checks_targets_from_the_same_table():
    import pandas as pd

    from cwn_bench.bench.targets import TARGETS
    from cwn_bench.report.sections import overhead_section

    empty = pd.DataFrame(columns=["shape", "variant", "pass", "dtype", "memory_format", "median_ms", "iqr_ms",
                                  "ratio_vs_plain", "card", "reason"])
    note = overhead_section(empty).note
    assert all(f"{t.what} {t.bound} {t.value}" in note for t in TARGETS.values())
    assert TARGETS["harness"].met(0.99) and not TARGETS["harness"].met(0.97) and not TARGETS["paper_conv"].met(1.03)
