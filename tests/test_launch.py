"""The submission layer without a SLURM cluster: profiles, the batch script of a dry
run, the code snapshot, the local executor, and the errors users see."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from cwn_bench import cli
from cwn_bench.config import load_config
from cwn_bench.errors import UserError

from launch import snapshot
from launch import sweep as sweepmod
from launch.profile import load_profile, resolve_cluster
from launch.submit import submit_sweep
from launch.task import own_gpu


def _config(tmp: Path, digits: Path | str, **sweep) -> Path:
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": "mlp", "hidden": [32]},
        "data": {"name": "digits", "root": str(digits), "image_size": 32, "resize_size": 32,
                 "grayscale": True, "workers": 0},
        "optim": {"lr": 0.02},
        "train": {"epochs": 1, "batch_size": 32, "steps_per_epoch": 3, "device": "cpu", "log_every": 1000},
        "sweep": sweep,
    }))
    return path


def test_profile_file_and_flags(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("nodes: 2\ngpus_per_node: 4\npartition: gpu\nsetup: ['module load cuda']\n")
    p = load_profile(prof, {"partition": "short", "time_min": None})
    assert (p.nodes, p.tasks, p.partition, p.time_min, p.setup) == (2, 4, "short", 60, ["module load cuda"])
    assert load_profile(None).tasks == 1  # the defaults: one node, one task, no GPU

    prof.write_text("nodes: 2\ngpu_per_node: 4\n")
    with pytest.raises(UserError, match=r"p\.yaml: unknown key 'gpu_per_node'.*gpus_per_node"):
        load_profile(prof)
    with pytest.raises(UserError, match="NCCL intercepts SIGUSR1"):
        load_profile(None, {"gpus_per_node": 1, "signal": "SIGUSR1"})
    with pytest.raises(UserError, match="one task per GPU"):
        load_profile(None, {"gpus_per_node": 2, "tasks_per_node": 1})

    prof.write_text("nodes: [1\ntime_min: 3\n")  # like configs, one line with its line and column
    with pytest.raises(UserError, match=r"p\.yaml: not valid YAML \(line 2, column 9: [^\n]*\)$"):
        load_profile(prof)
    prof.write_bytes(b"nodes: \xff\n")
    with pytest.raises(UserError, match=r"p\.yaml: not a text file"):
        load_profile(prof)


def test_slurm_asked_without_sbatch_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert resolve_cluster(load_profile(None)) == "local"
    with pytest.raises(UserError, match="--cluster slurm: sbatch is not on PATH"):
        resolve_cluster(load_profile(None, {"cluster": "slurm"}))


def test_dry_run_prints_the_array_script_and_submits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, "digits", seed=[0, 1, 2])  # relative data root: made absolute
    argv = ["submit", str(cfg), "--dry-run", "--cluster", "debug", "--runs-root", "out"]
    assert cli.main(argv) == 0
    assert "debug job (dry run)" in capsys.readouterr().out
    monkeypatch.setattr("launch.profile.shutil.which", lambda name: "/usr/bin/" + name)
    assert cli.main(["submit", str(cfg), "--dry-run", "--cluster", "slurm", "--runs-root", "out", "--nodes", "2",
                     "--gpus-per-node", "4", "--partition", "gpu", "--account", "proj", "--time", "240",
                     "--array-parallelism", "2", "--setup", "module load 'cuda 12'"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("#!/bin/bash") and "sweep: " not in out  # the script alone: `> job.sh` runs
    sweep_dir = next(line for line in err.splitlines() if line.startswith("sweep: "))[7:]
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --partition=gpu", "#SBATCH --account=proj",
                 "#SBATCH --time=240", "#SBATCH --signal=USR2@90", "module load 'cuda 12'",
                 f"cd {sweep_dir}/code/1", "export SUBMITIT_PREEMPT_SIGNAL=USR2"):
        assert line in out.splitlines(), line
    assert err.count("slurm job (dry run)") == 3
    assert Path(sweep_dir).parent == tmp_path / "out" and not Path(sweep_dir).exists()


def test_a_run_training_now_is_not_submitted_again(tmp_path, lock_holder):
    cfg = load_config(_config(tmp_path, tmp_path / "digits", seed=[0, 1]))  # absolute: the sweep hash holds
    profile = load_profile(None, {"cluster": "debug", "runs_root": str(tmp_path / "runs")})
    (name, run_dir, _), _ = sweepmod.runs(cfg, sweepmod.sweep_dir(cfg, profile.runs_root))
    trainer = lock_holder(run_dir)
    sub = submit_sweep(cfg, profile, dry_run=True)
    assert sub.skipped == {name: f"training now (pid {trainer.pid} on {os.uname().nodename})"}
    assert list(sub.submitted) == ["seed=1"]


def test_snapshot_copies_the_packages_and_refuses_uncommitted_code(tmp_path, monkeypatch):
    rec = snapshot.take(tmp_path / "a", allow_dirty=True)
    assert (tmp_path / "a" / "cwn_bench" / "train" / "run.py").exists()
    assert (tmp_path / "a" / "launch" / "task.py").exists()
    assert json.loads((tmp_path / "a" / "SNAPSHOT.json").read_text())["commit"] == rec["commit"]
    monkeypatch.setattr(snapshot, "git_state", lambda repo, paths: {"commit": "abc", "dirty": ["launch/x.py"],
                                                                   "diff": "+x"})
    with pytest.raises(UserError, match=r"uncommitted changes .*launch/x\.py.*--allow-dirty"):
        snapshot.take(tmp_path / "b", allow_dirty=False)
    assert not (tmp_path / "b").exists()
    snapshot.take(tmp_path / "c", allow_dirty=True)
    assert (tmp_path / "c" / "uncommitted.diff").read_text() == "+x"


def test_git_state_lists_changed_files(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("a = 1\n")
    git = f"git -C {repo} -c user.name=t -c user.email=t@t"
    assert os.system(f"{git} init -q && {git} add pkg && {git} commit -qm init") == 0
    assert snapshot.git_state(repo, ["pkg"])["dirty"] == []
    (repo / "pkg" / "a.py").write_text("a = 2\n")
    state = snapshot.git_state(repo, ["pkg"])
    assert state["dirty"] == ["pkg/a.py"] and "+a = 2" in state["diff"] and len(state["commit"]) == 40


def test_own_gpu_keeps_the_task_s_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    own_gpu(2, 4)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"


@pytest.mark.slow
def test_local_executor_runs_the_sweep_from_the_snapshot(digits_root, tmp_path, capsys):
    import submitit

    # lr=1e12 (plain, no momentum) makes the loss non-finite within a few steps.
    cfg = load_config(_config(tmp_path, digits_root, **{"optim.lr": [0.02, 1.0e12]}),
                      ["model.method=plain", "optim.momentum=0.0", "sched.name=constant"])
    sub = submit_sweep(cfg, load_profile(None, {"cluster": "local", "runs_root": str(tmp_path / "runs")}),
                       allow_dirty=True)
    good, bad = sub.jobs
    assert good.result() == {"status": "completed", "rank": 0,
                             "code": str(sub.sweep_dir / "code" / "1" / "cwn_bench")}  # the snapshot
    with pytest.raises(submitit.core.utils.FailedJobError, match="non-finite"):
        bad.result()
    assert cli.main(["status", str(sub.sweep_dir)]) == 1  # a run failed
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["run", "lr=0.02", "lr=1000000000000.0"]
    assert " completed " in lines[1] and " 1/1 " in lines[1]
    assert " failed " in lines[2] and "non-finite training loss" in lines[2]


def test_status_keeps_run_json_and_earlier_epochs_when_metrics_ends_in_a_half_line(tmp_path):
    from cwn_bench.rundir import runjson as record
    from cwn_bench.rundir import sweepjson as sweep
    from launch import status

    cfg = load_config(_config(tmp_path, tmp_path / "digits"))
    root = tmp_path / "sweep"
    sweep.write(root, sweep.new_record(cfg))
    (name,) = [r["name"] for r in sweep.read(root)["runs"]]
    run_dir = root / name
    run_dir.mkdir()
    record.write(run_dir, {"status": "running", "config": {"train": {"epochs": 3}}, "attempts": [{}, {}]})
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 1, "val_top1_err": 12.5})
                                           + '\n{"kind": "step", "ep')  # a line being written
    (row,) = status.rows(root)
    assert (row.status, row.epoch, row.val_top1_err, row.restarts) == ("running", "1/3", 12.5, 1)
    assert "truncated last line" in row.reason


def test_status_tells_a_local_run_that_nothing_trains_any_more_from_a_running_one(tmp_path, lock_holder):
    from cwn_bench.rundir import runjson as record
    from cwn_bench.rundir import sweepjson as sweep
    from launch import status

    cfg = load_config(_config(tmp_path, tmp_path / "digits"))
    root = tmp_path / "sweep"
    data = sweep.new_record(cfg)
    (name,) = [r["name"] for r in data["runs"]]
    data["submissions"].append({"cluster": "local", "jobs": {name: "4242"}})
    sweep.write(root, data)
    (root / name).mkdir()
    record.write(root / name, {"status": "running", "config": {"train": {"epochs": 3}}, "attempts": [{}]})
    (row,) = status.rows(root)
    assert row.status == "stopped" and "submit again to resume" in row.reason  # killed: no lock holder

    lock_holder(root / name)
    (row,) = status.rows(root)
    assert (row.status, row.reason) == ("running", "")


def test_status_prints_no_terminal_control_from_a_run_dir(tmp_path):
    from cwn_bench.rundir import runjson, sweepjson
    from launch import status

    cfg = load_config(_config(tmp_path, tmp_path / "digits"))
    root = tmp_path / "sweep"
    sweepjson.write(root, sweepjson.new_record(cfg))
    (name,) = [r["name"] for r in sweepjson.read(root)["runs"]]
    (root / name).mkdir()
    runjson.write(root / name, {"status": "failed", "reason": "boom\x1b]0;owned\x07\x1b[2J\nsecond line"})
    text = status.render(status.rows(root))
    assert "\x1b" not in text and "\x07" not in text and "boom\ufffd]0;owned" in text
    assert len(text.splitlines()) == 2  # header and the one run
