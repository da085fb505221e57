"""`cwn-bench demo` end to end: real JPEGs, real local jobs through submit, the bench, the report."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_resumes(tmp_path, digits_root):
    data = tmp_path / "digits"
    shutil.copytree(digits_root, data)
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "cwn_bench.cli", "demo", f"data.root={data}", "seed=0", "train.epochs=1",
           "--config", str(REPO / "configs/demo.yaml"), "--out", str(out), "--cpu-reps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = out / "report" / "report.md"
    assert proc.stdout.strip().endswith(f"report: {report}")
    with open(out / "report" / "accuracy.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"plain", "nnn", "wn", "cwn"} and all(r["n_seeds"] == "1" for r in rows.values())
    bench = [json.loads(line) for line in (out / "bench" / "conv-paper-cpu.jsonl").read_text().splitlines()]
    assert bench[0]["kind"] == "env"
    assert {r["variant"] for r in bench[1:]} == {"plain", "cwn-reference", "cwn-explicit", "wn"}
    assert (out / "report" / "index.html").is_file()
    text = report.read_text()
    assert "## Figure 2" in text and (out / "report" / "figure2_digits_mlp.png").is_file()
    assert text.index("## The paper's claims") < text.index("## Comparisons against plain")  # claims first

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(0 submitted, 4 skipped)" in again.stdout
