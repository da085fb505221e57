"""`cwn-bench submit` / `status` against the real local SLURM cluster (two nodes n1, n2).

Every run is a tiny MLP on the 32x32 digits folder: 6 steps of 32 images per epoch
(8 per rank in the 2x2 DDP run), deterministic on CPU, a few seconds per job.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from cwn_bench import cli
from cwn_bench.config import load_config

from launch.profile import load_profile
from launch.status import rows
from launch.submit import submit_sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Fields of an epoch record that depend only on the computation, not on the clock.
EXACT = ("epoch", "step", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err", "val_top5_err")


def _config(tmp: Path, digits: Path, sweep: dict | None = None, **train) -> Path:
    cfg = {
        "name": "tiny",
        "model": {"name": "mlp", "method": "cwn", "hidden": [64, 32]},
        "data": {"name": "digits", "root": str(digits), "loader": "torch", "image_size": 32,
                 "resize_size": 32, "grayscale": True, "workers": 0},
        "optim": {"lr": 0.02},
        "train": {"epochs": 2, "batch_size": 32, "steps_per_epoch": 6, "device": "cpu",
                  "deterministic": True, "log_every": 1000, **train},
        "sweep": sweep or {},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _profile(tmp: Path, **fields):
    return load_profile(None, {"cluster": "slurm", "partition": "debug", "runs_root": str(tmp / "runs"),
                               "time_min": 10, **fields})


def _epochs(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "epoch"]


def _exact(records: list[dict]) -> list[tuple]:
    return [tuple(r[k] for k in EXACT) for r in records]


def test_array_of_three_completes_then_resubmission_trains_nothing(slurm_cluster, digits_root, tmp_path, capsys):
    cfg = load_config(_config(tmp_path, digits_root, sweep={"seed": [0, 1, 2]}))
    sub = submit_sweep(cfg, _profile(tmp_path), allow_dirty=True)
    assert len(sub.jobs) == 3 and len({j.job_id.split("_")[0] for j in sub.jobs}) == 1  # one array
    results = [job.result() for job in sub.jobs]
    code = sub.sweep_dir / "code" / "1"
    assert {r["status"] for r in results} == {"completed"}
    # The job imported the snapshot, not the editable install in the source tree.
    assert {r["code"] for r in results} == {str(code / "cwn_bench")}
    for name in ("seed=0", "seed=1", "seed=2"):
        run = json.loads((sub.sweep_dir / name / "run.json").read_text())
        assert run["status"] == "completed" and run["seed"] == int(name[-1])
        assert [r["epoch"] for r in _epochs(sub.sweep_dir / name)] == [1, 2]
        assert list((sub.sweep_dir / name / "checkpoints").glob("ckpt-*.pt"))
    sweep = json.loads((sub.sweep_dir / "sweep.json").read_text())
    assert sweep["submissions"][0]["jobs"] == sub.submitted

    assert cli.main(["status", str(sub.sweep_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and all("completed" in line and "2/2" in line for line in table[1:])

    before = (sub.sweep_dir / "seed=1" / "metrics.jsonl").stat().st_mtime_ns
    assert cli.main(["submit", str(tmp_path / "tiny.yaml"), "--allow-dirty",
                     "--cluster", "slurm", "--partition", "debug", "--runs-root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert f"sweep: {sub.sweep_dir}" in out and out.count("skipped (completed)") == 3 and "slurm job" not in out
    assert (sub.sweep_dir / "seed=1" / "metrics.jsonl").stat().st_mtime_ns == before
    assert len(json.loads((sub.sweep_dir / "sweep.json").read_text())["submissions"]) == 1


def test_two_nodes_two_tasks_gloo_matches_single_process(slurm_cluster, digits_root, tmp_path):
    # Same global batch: 2 nodes x 2 ranks x 8 images = 1 process x 32 images.
    single = load_config(_config(tmp_path, digits_root), ["train.batch_size=32"])
    ddp = load_config(_config(tmp_path, digits_root), ["train.batch_size=8"])
    one = submit_sweep(single, _profile(tmp_path), allow_dirty=True)
    four = submit_sweep(ddp, _profile(tmp_path, nodes=2, tasks_per_node=2), allow_dirty=True)
    ranks = four.jobs[0].results()
    assert sorted(r["rank"] for r in ranks) == [0, 1, 2, 3]
    assert one.jobs[0].result()["status"] == "completed"
    run = json.loads((four.sweep_dir / "run" / "run.json").read_text())
    assert run["world_size"] == 4 and run["global_batch"] == 32
    assert run["attempts"][0]["slurm"]["SLURM_JOB_NODELIST"] == "n[1-2]"
    got, want = _epochs(four.sweep_dir / "run"), _epochs(one.sweep_dir / "run")
    assert [r["epoch"] for r in got] == [1, 2]
    for a, b in zip(got, want):
        for key in ("train_loss", "val_loss", "val_top1_err", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-4), key


def test_interrupted_job_requeues_resumes_and_matches_uninterrupted(slurm_cluster, digits_root, tmp_path):
    # Two identical trainings (log_every differs, which changes no number): the first is
    # interrupted once it has logged an epoch, the second runs through.
    cfg = load_config(_config(tmp_path, digits_root, sweep={"train.log_every": [1000, 1001]}, epochs=5))
    sub = submit_sweep(cfg, _profile(tmp_path), allow_dirty=True)
    hit, reference = sub.jobs
    hit_dir = sub.sweep_dir / "log_every=1000"
    deadline = time.time() + 120
    while not ((hit_dir / "metrics.jsonl").exists() and _epochs(hit_dir)):
        assert time.time() < deadline, "the job logged no epoch within 120 s"
        time.sleep(0.2)
    hit._interrupt()  # SIGTERM then USR2, as a preemption
    assert hit.result()["status"] == "completed"
    assert reference.result()["status"] == "completed"
    run = json.loads((hit_dir / "run.json").read_text())
    assert len(run["attempts"]) == 2 and run["attempts"][1]["resumed_from"], "the interrupt did not requeue"
    got = _epochs(hit_dir)
    assert [r["epoch"] for r in got] == [1, 2, 3, 4, 5]
    assert _exact(got) == _exact(_epochs(sub.sweep_dir / "log_every=1001"))
    status = {r.run: r for r in rows(sub.sweep_dir)}
    assert status["log_every=1000"].restarts >= 1 and status["log_every=1000"].status == "completed"
    assert status["log_every=1001"].restarts == 0


def test_cancelled_job_shows_as_failed_and_resubmission_resumes_it(slurm_cluster, digits_root, tmp_path, capsys):
    # submitit ignores the SIGTERM of scancel, so training goes on until SLURM's SIGKILL
    # KillWait (10 s) later: whole epochs (45 steps, ~1 s here) keep that to ~10 epochs.
    epochs = 60
    cfg = load_config(_config(tmp_path, digits_root, epochs=epochs, steps_per_epoch=None))
    sub = submit_sweep(cfg, _profile(tmp_path), allow_dirty=True)
    run_dir = sub.sweep_dir / "run"
    deadline = time.time() + 120
    while not ((run_dir / "metrics.jsonl").exists() and _epochs(run_dir)):
        assert time.time() < deadline, "the job logged no epoch within 120 s"
        time.sleep(0.2)
    subprocess.run(["scancel", sub.jobs[0].job_id], check=True)
    deadline = time.time() + 120  # CANCELLED once its processes are gone (KillWait=10 s)
    while rows(sub.sweep_dir)[0].status != "failed":
        assert time.time() < deadline, f"status never showed failed: {rows(sub.sweep_dir)}"
        time.sleep(0.5)
    assert cli.main(["status", str(sub.sweep_dir)]) == 1
    line = capsys.readouterr().out.splitlines()[1]
    assert "CANCELLED" in line and "failed" in line

    cancelled_at = len(_epochs(run_dir))
    assert cancelled_at < epochs, "the run finished before it was cancelled"
    assert cli.main(["submit", str(tmp_path / "tiny.yaml"), "--allow-dirty", "--wait", "--cluster", "slurm",
                     "--partition", "debug", "--runs-root", str(tmp_path / "runs")]) == 0  # 0: none failed
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep: {sub.sweep_dir}" and out[1].startswith("  run: slurm job ")
    assert out[2].split()[:4] == ["run", "job", "slurm", "status"]
    assert out[3].split()[2:4] == ["COMPLETED", "completed"] and f" {epochs}/{epochs} " in out[3]
    run = json.loads((run_dir / "run.json").read_text())
    assert len(run["attempts"]) == 2 and run["attempts"][1]["resumed_from"]
    assert [r["epoch"] for r in _epochs(run_dir)] == list(range(1, epochs + 1))
    assert (sub.sweep_dir / "code" / "2" / "SNAPSHOT.json").exists()  # one snapshot per submission
