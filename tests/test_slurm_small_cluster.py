"""A sweep larger than MaxArraySize, the report job after it, and `status` without
accounting, on a second local cluster (``small_slurm_cluster``: MaxArraySize=3, no
slurmdbd) that runs beside the shared one and is stopped after this module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cwn_bench.rundir import runjson as record
from cwn_bench.rundir import sweepjson as sweep

from launch import status

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cwn_bench.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def split_sweep(small_slurm_cluster, digits_root, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """4 tiny runs (2 steps of 16 images each) submitted with --report --wait: arrays of
    3 + 1 tasks and the report job."""
    tmp = tmp_path_factory.mktemp("split")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "split",
        "model": {"name": "mlp", "hidden": [16]},
        "data": {"name": "digits", "root": str(digits_root), "image_size": 8, "resize_size": 8,
                 "train_crop": "resize", "grayscale": True, "workers": 0},
        "train": {"epochs": 1, "batch_size": 16, "steps_per_epoch": 2, "device": "cpu", "log_every": 1000},
        "sweep": {"seed": [0, 1, 2, 3]},
    }))
    out = _cli("submit", str(cfg), "--report", "--wait", "--allow-dirty", "--cluster", "slurm",
               "--partition", "debug", "--time", "10", "--runs-root", str(tmp / "runs"))
    sweep_dir = Path(next(x for x in out.stdout.splitlines() if x.startswith("sweep: "))[7:])
    return sweep_dir, out


def test_a_sweep_larger_than_max_array_size_runs_every_point(split_sweep):
    sweep_dir, out = split_sweep
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (sub,) = json.loads((sweep_dir / "sweep.json").read_text())["submissions"]
    assert len(sub["arrays"]) == 2, sub  # 3 tasks, then 1
    first, second = sub["arrays"]
    assert sub["jobs"] == {"seed=0": f"{first}_0", "seed=1": f"{first}_1", "seed=2": f"{first}_2",
                           "seed=3": second}  # one task left: submitit sends it as a plain job
    assert "2 arrays (MaxArraySize)" in out.stdout
    for seed in range(4):
        assert record.read(sweep_dir / f"seed={seed}")["status"] == "completed"
    table = [line for line in out.stdout.splitlines() if line.startswith("seed=")]
    assert len(table) == 4 and all(" completed " in line for line in table)  # the status table


def test_the_report_job_runs_after_every_array(split_sweep):
    sweep_dir, out = split_sweep
    data = json.loads((sweep_dir / "sweep.json").read_text())
    job = data["report_job"]
    assert data["submissions"][0]["report_job"] == job
    report = sweep_dir / "report" / "report.md"
    assert report.exists(), out.stdout[-2000:]
    ended = max((sweep_dir / f"seed={s}" / "run.json").stat().st_mtime for s in range(4))
    assert report.stat().st_mtime >= ended  # written once every run had completed
    assert all(f"seed={s}" in (sweep_dir / "report" / "runs.csv").read_text() for s in range(4))
    assert f"report job {job}: COMPLETED -> {report}" in out.stdout  # --wait followed it, status shows it


def test_status_without_accounting_reads_squeue_and_the_run_dirs(split_sweep, tmp_path):
    sweep_dir, out = split_sweep
    assert "SLURM states: squeue and the run directories" in out.stdout
    assert {r.slurm for r in status.rows(sweep_dir)} == {"COMPLETED"}  # squeue keeps ended jobs MinJobAge
    # A run whose job squeue no longer knows, and no accounting: stopped, per its run dir.
    data = json.loads((sweep_dir / "sweep.json").read_text())
    data["submissions"] = [{"cluster": "slurm", "jobs": {"seed=0": "999999"}}]
    root = tmp_path / "stale"
    sweep.write(root, data)
    (root / "seed=0").mkdir()
    record.write(root / "seed=0", {"status": "running", "config": {"train": {"epochs": 1}}, "attempts": [{}]})
    row = status.rows(root)[0]
    assert row.status == "stopped" and "job 999999 is no longer queued" in row.reason
