"""Batch scripts of `submit --dry-run` for containers (pyxis, apptainer), sweeps split
over MaxArraySize and the report job; no cluster needed (sbatch is pretended)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from cwn_bench import cli
from cwn_bench.train import envinfo

from launch import slurm_state


def _config(tmp, digits, seeds: int) -> str:
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": "mlp", "hidden": [32]},
        "data": {"name": "digits", "root": str(digits), "image_size": 32, "resize_size": 32, "grayscale": True},
        "train": {"epochs": 1, "batch_size": 32, "device": "cpu"},
        "sweep": {"seed": list(range(seeds))},
    }))
    return str(path)


@pytest.fixture
def dry_slurm(monkeypatch, tmp_path, capsys):
    """`cwn-bench submit --dry-run --cluster slurm ARGS`'s output lines (stdout, then stderr), as if sbatch were
    here and MaxArraySize were 2."""
    monkeypatch.setattr("launch.profile.shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(slurm_state, "max_array_size", lambda: 2)

    def submit(*args: str, seeds: int = 1) -> list[str]:
        argv = ["submit", _config(tmp_path, tmp_path / "digits", seeds), "--dry-run", "--cluster", "slurm",
                "--runs-root", str(tmp_path / "runs"), *args]
        assert cli.main(argv) == 0
        out, err = capsys.readouterr()  # the script(s) on stdout, the sweep dir and job lines on stderr
        return out.splitlines() + err.splitlines()

    return submit


def _srun(lines: list[str]) -> str:
    (line,) = [x for x in lines if x.startswith("srun ")]
    return line


def test_pyxis_puts_the_image_and_mounts_on_srun(dry_slurm, tmp_path):
    # srun on the local cluster has no pyxis plugin: only the generated lines are checked.
    lines = dry_slurm("--container", "nvcr.io#nvidia/pytorch:24.05-py3", "--container-runtime", "pyxis",
                      "--gpus-per-node", "2")
    sweep = next(x for x in lines if x.startswith("sweep: "))[7:]
    srun = _srun(lines)
    assert "--container-image=nvcr.io#nvidia/pytorch:24.05-py3" in srun
    assert f"--container-mounts={tmp_path / 'runs'}:{tmp_path / 'runs'},{tmp_path / 'digits'}:{tmp_path / 'digits'}" \
        in srun
    assert f"--container-workdir={sweep}/code/1" in srun
    assert srun.endswith(f"python3 -u -m submitit.core._submit {sweep}/jobs")  # the image's python
    assert "export CWN_CONTAINER_IMAGE='nvcr.io#nvidia/pytorch:24.05-py3'" in lines
    assert "export CWN_CONTAINER_RUNTIME=pyxis" in lines


def test_apptainer_wraps_the_task_command(dry_slurm, tmp_path):
    image = str(tmp_path / "cwn.sif")
    srun = _srun(dry_slurm("--container", image, "--gpus-per-node", "1"))  # apptainer: the default runtime
    sweep = tmp_path / "runs"
    assert f"apptainer exec --nv --bind {sweep},{tmp_path / 'digits'} --pwd " in srun
    assert f" {image} python3 -u -m submitit.core._submit " in srun and "--container-image" not in srun
    srun = _srun(dry_slurm("--container", image, "--python", "/opt/venv/bin/python"))  # no GPU: no --nv
    assert "apptainer exec --bind" in srun and f"{image} /opt/venv/bin/python -u -m submitit" in srun


def test_a_sweep_larger_than_max_array_size_is_cut_into_arrays_and_the_report_job_waits(dry_slurm):
    lines = dry_slurm("--report", "--gpus-per-node", "4", "--cpus-per-task", "8", seeds=5)
    assert [x for x in lines if x.startswith("# array")] == ["# array 1/3 (2 task(s))", "# array 2/3 (2 task(s))",
                                                             "# array 3/3 (1 task(s))"]
    assert [x for x in lines if x.startswith("#SBATCH --array=")] == ["#SBATCH --array=0-1%2"] * 2 + [
        "#SBATCH --array=0-0%1"]
    report = lines[lines.index("# report job"):]
    assert "#SBATCH --dependency='afterany:<every array above>'" in report
    for flag in ("--cpus-per-task=1", "--ntasks-per-node=1", "--nodes=1", "--time=15"):
        assert f"#SBATCH {flag}" in report, flag
    assert not any("--gpus-per-node" in x for x in report) and not any("--array" in x for x in report)


def test_containers_and_report_need_slurm(tmp_path, capsys):
    cfg = _config(tmp_path, tmp_path / "digits", 1)
    assert cli.main(["submit", cfg, "--cluster", "local", "--container", "x.sif", "--dry-run"]) == 2
    assert "container x.sif: needs --cluster slurm, got --cluster local" in capsys.readouterr().err
    assert cli.main(["submit", cfg, "--cluster", "local", "--report", "--dry-run"]) == 2
    assert "--report (a job that waits for the arrays): needs --cluster slurm" in capsys.readouterr().err


def test_run_json_env_names_the_image_and_a_pinned_digest(monkeypatch):
    assert envinfo.container() is None
    monkeypatch.setenv(envinfo.IMAGE_VAR, "docker://ghcr.io/x/cwn@sha256:" + "ab" * 32)
    monkeypatch.setenv(envinfo.RUNTIME_VAR, "apptainer")
    monkeypatch.setenv("APPTAINER_CONTAINER", "/cache/cwn.sif")
    assert envinfo.container() == {"runtime": "apptainer", "image": "docker://ghcr.io/x/cwn@sha256:" + "ab" * 32,
                                   "digest": "sha256:" + "ab" * 32, "runtime_image": "/cache/cwn.sif"}


def test_max_array_size_reads_scontrol(monkeypatch):
    monkeypatch.setattr(slurm_state, "_lines", lambda cmd: ["MaxArraySize            = 7", "MaxJobCount = 10000"])
    assert slurm_state.max_array_size() == 7
    monkeypatch.setattr(slurm_state, "_lines", lambda cmd: None)  # no scontrol: SLURM's default
    assert slurm_state.max_array_size() == 1001


@pytest.mark.slurm
@pytest.mark.slow
def test_apptainer_job_on_the_local_cluster_runs_wrapped_and_records_the_image(
        slurm_cluster, digits_root, tmp_path, monkeypatch):
    """A real apptainer cannot be installed here; tests/data/apptainer stands in for it
    on PATH (it records its arguments and runs the command on the host)."""
    import json
    import shutil
    import sys

    from cwn_bench.config import load_config

    from launch.profile import load_profile
    from launch.submit import submit_sweep

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "apptainer", bin_dir / "apptainer")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")  # sbatch exports it to the job
    monkeypatch.setenv("APPTAINER_LOG", str(tmp_path / "apptainer.log"))
    image = tmp_path / "cwn.sif"
    image.write_bytes(b"stand-in image")
    cfg = load_config(_config(tmp_path, digits_root, 1), ["train.steps_per_epoch=2", "data.workers=0",
                                                           "data.image_size=8", "data.resize_size=8"])
    profile = load_profile(None, {"cluster": "slurm", "partition": "debug", "runs_root": str(tmp_path / "runs"),
                                  "time_min": 10, "container": str(image), "python": sys.executable})
    sub = submit_sweep(cfg, profile, allow_dirty=True)
    assert sub.jobs[0].result()["status"] == "completed"
    code = sub.sweep_dir / "code" / "1"
    (call,) = (tmp_path / "apptainer.log").read_text().splitlines()
    assert call == (f"exec --bind {tmp_path / 'runs'},{digits_root} --pwd {code} {image} {sys.executable} "
                    f"-u -m submitit.core._submit {sub.sweep_dir / 'jobs'}")
    env = json.loads((sub.sweep_dir / "seed=0" / "run.json").read_text())["env"]
    assert env["container"] == {"runtime": "apptainer", "image": str(image), "digest": None,
                                "runtime_image": str(image)}


def test_an_apptainer_image_s_digest_label_is_recorded(monkeypatch, tmp_path):
    labels = tmp_path / "labels.json"  # inside a real apptainer container: /.singularity.d/labels.json
    labels.write_text('{"org.label-schema.build-date": "x", "org.opencontainers.image.base.digest": "sha256:cd"}')
    monkeypatch.setattr(envinfo, "APPTAINER_LABELS", labels)
    monkeypatch.setenv(envinfo.IMAGE_VAR, "/images/cwn.sif")
    assert envinfo.container()["digest"] == "sha256:cd"
    labels.write_text("[1, 2]")  # not a mapping: no digest, no error
    assert envinfo.container()["digest"] is None


def test_a_preempted_task_without_scontrol_is_not_requeued_and_says_how_to_resume(monkeypatch, tmp_path, capsys):
    """Inside an image without SLURM's client submitit's requeue (scontrol) cannot run."""
    import signal

    from cwn_bench.config import Config, to_dict

    from launch import task

    for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "7", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1",
                       "SLURM_JOB_NODELIST": "n1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(task, "run", lambda cfg, run_dir, signals, restart=False: "preempted")
    requeued = []
    previous = signal.signal(signal.SIGUSR2, lambda *args: requeued.append(args))  # stands for submitit's handler
    try:
        monkeypatch.setattr(task.shutil, "which", lambda name: None)
        assert task.TrainTask(to_dict(Config()), str(tmp_path))()["status"] == "preempted"
        assert not requeued and "not requeued; submit the sweep again to resume" in capsys.readouterr().err
        monkeypatch.setattr(task.shutil, "which", lambda name: "/usr/bin/" + name)
        task.TrainTask(to_dict(Config()), str(tmp_path))()
        assert len(requeued) == 1  # with scontrol: submitit's handler requeues
    finally:
        signal.signal(signal.SIGUSR2, previous)
