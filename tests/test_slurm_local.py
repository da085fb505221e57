"""The local SLURM cluster itself (slurm/local/): plain sbatch with accounting, and
submitit's function jobs and multi-node tasks against it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

pytestmark = pytest.mark.slurm
# Job functions below travel by value: the job's Python cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _sacct_state(job_id: str, timeout_s: float = 60) -> str:
    """The job's final state from the accounting database (polls until it has ended)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"],
                             capture_output=True, text=True, check=True).stdout.split()
        if out and out[0] not in ("PENDING", "RUNNING", "COMPLETING"):
            return out[0]
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {timeout_s}s")


def test_sbatch_runs_and_sacct_records_it(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    sub = subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap", "echo hello-$SLURM_JOB_ID"],
                         capture_output=True, text=True, check=True)
    job_id = sub.stdout.strip().split(";")[0]
    assert _sacct_state(job_id) == "COMPLETED"
    assert out.read_text().strip() == f"hello-{job_id}"

    failing = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "exit 3"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert _sacct_state(failing) == "FAILED"


def _double(x: int) -> tuple[int, str]:
    return 2 * x, os.environ["SLURM_JOB_ID"]


def _all_reduce_ranks() -> tuple[int, int, str, float]:
    import submitit
    import torch
    import torch.distributed as dist

    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    dist.init_process_group("gloo", init_method="env://")
    total = torch.tensor([float(env.rank + 1)])
    dist.all_reduce(total)
    dist.destroy_process_group()
    return env.rank, env.world_size, os.environ["SLURMD_NODENAME"], total.item()


def test_submitit_function_and_two_node_gloo(slurm_cluster, tmp_path: Path):
    import submitit

    executor = submitit.SlurmExecutor(folder=tmp_path / "logs")
    executor.update_parameters(time=5, partition="debug", cpus_per_task=1)
    job = executor.submit(_double, 21)
    value, job_id = job.result()
    assert (value, job_id) == (42, job.job_id)

    executor.update_parameters(nodes=2, ntasks_per_node=2)
    results = executor.submit(_all_reduce_ranks).results()
    assert sorted(r[0] for r in results) == [0, 1, 2, 3]
    assert {r[1] for r in results} == {4}
    assert sorted(r[2] for r in results) == ["n1", "n1", "n2", "n2"]
    assert {r[3] for r in results} == {1.0 + 2 + 3 + 4}


def test_train_sbatch_template_runs_a_two_rank_run(slurm_cluster, digits_root, tmp_path):
    import json

    import yaml

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "mlp", "hidden": [32]},
        "data": {"name": "digits", "root": str(digits_root), "image_size": 32, "resize_size": 32,
                 "grayscale": True, "workers": 0},
        "train": {"epochs": 1, "batch_size": 16, "steps_per_epoch": 3, "device": "cpu", "log_every": 1000},
    }))
    template = Path(__file__).resolve().parent.parent / "slurm" / "train.sbatch"
    job_id = subprocess.run(
        ["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1", "-o", str(tmp_path / "out.txt"),
         str(template), str(cfg), str(tmp_path / "run"), "seed=4"],
        capture_output=True, text=True, check=True, env={**os.environ, "CWN_PYTHON": sys.executable},
    ).stdout.strip()
    assert _sacct_state(job_id, timeout_s=180) == "COMPLETED", (tmp_path / "out.txt").read_text()[-2000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (run["status"], run["seed"], run["world_size"]) == ("completed", 4, 2)


def test_stop_sh_ends_only_the_daemons_its_pid_files_name(tmp_path):
    """A pid file whose process is now another program (pid reused) is dropped, the
    process left alone; a pid file naming a live daemon of that name would be ended."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "pids").mkdir()
        (tmp_path / "pids" / "50-slurmd-n1.pid").write_text(f"{stranger.pid}\n")
        stop = Path(__file__).resolve().parent.parent / "slurm" / "local" / "stop.sh"
        out = subprocess.run([str(stop), "--base", str(tmp_path)], capture_output=True, text=True, check=True)
        assert stranger.poll() is None, "stop.sh killed a process it did not start"
        assert "stopped" not in out.stdout and not list((tmp_path / "pids").iterdir())
    finally:
        stranger.kill()
        stranger.wait()
