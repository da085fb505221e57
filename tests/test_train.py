"""The training engine on real data (the digits JPEG folder), real processes, real signals.

Runs are tiny MLPs on 8x8 grey digits (45 steps of 32 per epoch) so that every test is
a few seconds of CPU; the exact-resume and DDP tests start real `cwn-bench train`
processes.  Resume comparisons are bitwise (``torch.equal``) with train.deterministic.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from cwn_bench.config import SchedConfig, load_config
from cwn_bench.data import build, module
from cwn_bench.errors import UserError
from cwn_bench.train import TrainingFailed, checkpoint, run
from cwn_bench.rundir.metrics import MetricsLog
from cwn_bench.train.optim import lr_at, param_groups
from cwn_bench.train.stopping import StopRequest

CLI = [sys.executable, "-m", "cwn_bench.cli"]
TIMING = {"img_per_s", "img_per_s_per_gpu", "img_per_s_compute", "data_time_s", "data_wait_share", "train_s",
          "eval_s", "wall_s"}
EPOCH_KEYS = {"kind", "epoch", "step", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err",
              "val_top5_err", "peak_gpu_mem_gib"} | TIMING

# `cwn-bench train` whose loader waits 50 ms per train batch, so that a signal reliably
# lands mid-epoch (a real step here takes ~2 ms); the training code itself is unchanged.
SLOW_TRAIN = """
import sys, time
from cwn_bench.data.module import DataModule
from cwn_bench.cli import main
fast = DataModule.train_batches
def slow(self, *args, **kwargs):
    for batch in fast(self, *args, **kwargs):
        time.sleep(0.05)
        yield batch
DataModule.train_batches = slow
sys.exit(main(sys.argv[1:]))
"""


def write_config(tmp_path: Path, digits_root: Path, **sections: dict) -> Path:
    """A digits MLP config file: 8x8 grey, 2 epochs, deterministic, checkpoint every 4 steps."""
    data = {
        "name": "digits_test", "seed": 0,
        "model": {"name": "mlp", "method": "cwn", "hidden": [32, 16]},
        "data": {"name": "digits", "root": str(digits_root), "loader": "torch", "image_size": 8, "resize_size": 8,
                 "train_crop": "resize", "grayscale": True, "normalize": "dataset", "workers": 0},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "sched": {"name": "exp", "lr_end": 0.01},
        "train": {"epochs": 2, "batch_size": 32, "deterministic": True, "device": "cpu", "log_every": 5,
                  "checkpoint_every_steps": 4, "keep_checkpoints": 3},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    newest = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1]
    return checkpoint.load(newest)["model"]


def without_timing(recs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Bitwise equal final weights and equal epoch/step records (timings aside)."""
    got, want = final_weights(run_dir), final_weights(reference)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want), "weights differ from the uninterrupted run"
    assert without_timing(records(run_dir, "epoch")) == without_timing(records(reference, "epoch"))
    assert records(run_dir, "step") == records(reference, "step")


def start_slow(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_TRAIN, "train", str(config), "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, text: str) -> None:
    for line in proc.stderr:
        if text in line:
            return
    raise AssertionError(f"process ended (rc {proc.wait()}) before printing {text!r}")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


# --------------------------------------------------------------------------- pieces


def test_lr_schedules():
    sched = SchedConfig(name="exp", lr_end=1e-4)
    # the paper's ImageNet schedule: 0.1 * exp(-ln(1000) * e / 90), here at e = 45 of 90
    assert lr_at(0, 100, 90, 0.1, sched) == pytest.approx(0.1)
    assert lr_at(4500, 100, 90, 0.1, sched) == pytest.approx(0.1 * math.exp(-math.log(1000) * 45 / 90))
    assert lr_at(9000, 100, 90, 0.1, sched) == pytest.approx(1e-4)
    steps = SchedConfig(name="step", milestones=[80, 120], gamma=0.1)
    assert [lr_at(e * 10, 10, 160, 0.1, steps) for e in (79, 80, 119, 120)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    cosine = SchedConfig(name="cosine", lr_end=0.0, warmup_epochs=1)
    assert lr_at(0, 10, 11, 1.0, cosine) == pytest.approx(0.1)  # warm-up: (step + 1) / 10
    assert lr_at(60, 10, 11, 1.0, cosine) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_at(110, 10, 11, 1.0, cosine) == pytest.approx(0.0, abs=1e-12)


def test_weight_decay_exempts_scales_biases_and_bn():
    from cwn_bench.config import OptimConfig
    from cwn_bench.nn import CWNConv2d

    model = nn.Sequential(CWNConv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decayed, exempt = param_groups(model, OptimConfig(exempt_scales_biases=True, weight_decay=1e-4))
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decayed["params"]) == ["0.v", "3.weight"]
    assert sorted(names[id(p)] for p in exempt["params"]) == ["0.bias", "0.g", "1.bias", "1.weight", "3.bias"]
    assert exempt["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-4
    assert len(param_groups(model, OptimConfig())) == 1


def _state(step: int) -> dict:
    """A checkpoint's keys (checkpoint.REQUIRED) around a marker tensor."""
    return {**{k: 0 for k in checkpoint.REQUIRED}, "step": step, "w": torch.full((3,), float(step))}


def test_checkpoints_are_pruned_and_a_corrupt_newest_falls_back(tmp_path, capsys):
    for step in (4, 8, 12):
        checkpoint.save(_state(step), tmp_path, step, keep=2)
    assert [p.name for p in sorted(tmp_path.glob("ckpt-*.pt"))] == ["ckpt-000000008.pt", "ckpt-000000012.pt"]
    assert not list(tmp_path.glob("*.tmp"))
    newest = tmp_path / "ckpt-000000012.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # a torn write from a crashed file system
    state, path = checkpoint.load_latest(tmp_path)
    assert state["step"] == 8 and path.name == "ckpt-000000008.pt"
    assert "unreadable" in capsys.readouterr().err and (tmp_path / "ckpt-000000012.pt.corrupt").exists()
    (tmp_path / "ckpt-000000008.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no usable checkpoint .* --restart"):
        checkpoint.load_latest(tmp_path)
    with pytest.raises(UserError, match="no usable checkpoint"):  # started again (a requeue): still no step 0
        checkpoint.load_latest(tmp_path)
    assert checkpoint.load_latest(tmp_path, restart=True) is None  # told to start over


def test_a_checkpoint_without_a_harness_key_is_unusable_and_a_read_error_renames_nothing(tmp_path, monkeypatch):
    checkpoint.save(_state(4), tmp_path, 4, keep=2)
    torch.save({"model": {}}, tmp_path / "ckpt-000000008.pt")  # a valid torch file, not our checkpoint
    state, path = checkpoint.load_latest(tmp_path)
    assert state["step"] == 4 and (tmp_path / "ckpt-000000008.pt.corrupt").exists()

    def eio(self):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", eio)
    with pytest.raises(UserError, match=r"ckpt-000000004.pt: cannot read checkpoint \(Input/output error\).*nothing "
                                        "was renamed"):
        checkpoint.load_latest(tmp_path)
    assert (tmp_path / "ckpt-000000004.pt").exists()


def test_metrics_truncate_keeps_what_the_checkpoint_covers(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
    for rec in ({"kind": "step", "step": 5}, {"kind": "epoch", "epoch": 1, "step": 10}, {"kind": "step", "step": 15},
                {"kind": "epoch", "epoch": 2, "step": 20}):
        log.write(rec)
    with open(log.path, "a") as f:
        f.write('{"kind": "st')  # killed mid-write
    log.truncate(epochs_done=1, global_step=16)
    assert [json.loads(x) for x in log.path.read_text().splitlines()] == [
        {"kind": "step", "step": 5}, {"kind": "epoch", "epoch": 1, "step": 10}, {"kind": "step", "step": 15}]


def test_stop_request_sets_a_flag_and_restores_handlers():
    before = signal.getsignal(signal.SIGUSR2)
    with StopRequest([signal.SIGUSR2]) as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.signum == signal.SIGUSR2
    assert signal.getsignal(signal.SIGUSR2) is before


# --------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_cli_train_end_to_end(tmp_path, digits_root):
    config = write_config(tmp_path, digits_root)
    run_dir = tmp_path / "run"
    done = cli("train", str(config), "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(run_dir)]
    assert "epoch 2/2: train loss" in done.stderr  # plain progress lines (stderr is no TTY)

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["reason"] is None
    assert info["config"]["model"]["method"] == "cwn" and info["seed"] == 0 and len(info["config_hash"]) == 64
    assert info["world_size"] == 1 and info["global_batch"] == 32 and info["steps_per_epoch"] == 45
    env = info["env"]
    assert env["torch"] == torch.__version__ and env["hostnames"] == [socket.gethostname()]
    assert set(env["slurm"]) >= {"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"}
    assert {"python", "cuda", "cudnn", "dali", "submitit", "gpu", "git"} <= env.keys()

    epochs = records(run_dir, "epoch")
    assert [r["epoch"] for r in epochs] == [1, 2] and [r["step"] for r in epochs] == [45, 90]
    assert all(EPOCH_KEYS <= r.keys() for r in epochs)
    assert all(0 <= r[k] <= 100 for r in epochs for k in ("train_top1_err", "val_top1_err", "val_top5_err"))
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"] and epochs[1]["val_top1_err"] < 30
    assert epochs[0]["val_top5_err"] <= epochs[0]["val_top1_err"]
    assert epochs[1]["lr"] == pytest.approx(0.1 * 0.1 ** (89 / 90))  # exp decay 0.1 -> 0.01, last step
    assert info["final"] == epochs[-1]
    assert len(list((run_dir / "checkpoints").glob("ckpt-*.pt"))) == 3

    again = cli("train", str(config), "--run-dir", str(run_dir))
    assert again.returncode == 0 and "already completed" in again.stderr
    assert records(run_dir, "epoch") == epochs

    other = cli("train", str(config), "model.method=plain", "--run-dir", str(run_dir))
    assert other.returncode == 2 and "run.json" in other.stderr and "another --run-dir" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    assert json.loads((run_dir / "run.json").read_text()) == info  # nothing overwritten


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits_root) -> tuple[Path, Path]:
    """(config, run dir) of one uninterrupted deterministic run."""
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp, digits_root)
    assert run(load_config(config), tmp / "run") == "completed"
    return config, tmp / "run"


@pytest.mark.slow
@pytest.mark.parametrize("sync_every", [None, 6])
def test_sigterm_mid_epoch_then_resume_is_exact(reference, tmp_path, sync_every):
    """``None``: the reference's config (a checkpoint, so a sync point, every 4 steps). 6:
    no step checkpoints, the flags read every 6 steps: the stop is seen within two windows
    (one to start the reduction, one to read it) and the resumed run is still exact."""
    config, ref_dir = reference
    if sync_every is not None:
        config = write_config(tmp_path, Path(load_config(config).data.root),
                              train={"checkpoint_every_steps": None, "sync_every": sync_every})
    run_dir = tmp_path / "run"
    proc = start_slow(config, run_dir)
    wait_for_line(proc, "epoch 1/2 step 10/45")  # printed at the sync point after the next (step 18 at 6)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3  # preempted: requeue me
    state = checkpoint.load(sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1])
    assert state["epoch"] == 0 and 10 <= state["meter"]["steps"] < 45  # stopped mid-epoch
    if sync_every is not None:
        assert state["meter"]["steps"] % sync_every == 0 and state["meter"]["steps"] <= 18 + 2 * sync_every
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert records(run_dir, "epoch") == []

    resumed = cli("train", str(config), "--run-dir", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert f"epoch 1, step {state['meter']['steps']}/45" in resumed.stderr
    assert_same_run(run_dir, ref_dir)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and [a["resumed_from"] for a in info["attempts"]][0] is None
    assert info["attempts"][1]["resumed_from"] == f"ckpt-{state['global_step']:09d}.pt"


@pytest.mark.slow
def test_sigkill_then_corrupt_newest_checkpoint_then_resume_is_exact(reference, tmp_path):
    """SIGKILL leaves step records past the last checkpoint (every 4 steps); the newest
    checkpoint is then torn, so the run resumes from the one before, and still ends
    bitwise equal with each epoch logged once."""
    config, ref_dir = reference
    run_dir = tmp_path / "run"
    proc = start_slow(config, run_dir)
    wait_for_line(proc, "epoch 2/2 step 15/45")
    proc.kill()
    proc.wait(timeout=60)
    newest, previous = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-2:][::-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    assert len(records(run_dir, "epoch")) == 1

    resumed = cli("train", str(config), "--run-dir", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "unreadable" in resumed.stderr and f"resuming from {previous}" in resumed.stderr
    assert_same_run(run_dir, ref_dir)


@pytest.mark.slow
def test_a_resumed_run_reuses_the_saved_dataset_statistics(reference, tmp_path, monkeypatch):
    """data.normalize=dataset: the first start computes the statistics (a decode pass over the
    train split) and every checkpoint keeps them; a requeued run reads them back instead."""
    config, ref_dir = reference
    run_dir = tmp_path / "run"
    shutil.copytree(ref_dir, run_dir)
    for newest in sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-2:]:
        newest.unlink()  # as if killed in epoch 2: resumes at step 39/45 from ckpt-84
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "status": "running"}))
    saved = checkpoint.load(sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1])["data_stats"]
    fresh = build(load_config(config)).stats
    assert all(torch.equal(a, b) for a, b in zip(saved, fresh, strict=True))

    def recomputed(batches, shape):
        raise AssertionError("the dataset statistics were computed again on resume")

    monkeypatch.setattr(module, "feature_sums", recomputed)
    assert run(load_config(config), run_dir) == "completed"
    assert_same_run(run_dir, ref_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_two_ranks(config: Path, run_dir: Path, timeout: int = 300, command: list[str] = CLI,
                    overrides: tuple[str, ...] = ()) -> tuple[list, list]:
    """`cwn-bench train` (``command``: the CLI or a script that calls it) as ranks 0 and 1 of a
    gloo group (16 images per rank, then ``overrides``): the processes and their (stdout, stderr)."""
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        args = [*command, "train", str(config), "train.batch_size=16", *overrides, "--run-dir", str(run_dir)]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs, [p.communicate(timeout=timeout) for p in procs]


@pytest.mark.slow
def test_two_process_gloo_ddp_equals_one_process_with_the_global_batch(tmp_path, digits_root):
    """2 ranks x 16 images = 1 process x 32: rank r takes perm[r::2], so each step's two
    half-batches together are the single process's batch, and DDP averages the two
    half-batch mean gradients = the mean over 32. Not bitwise: the gradient all-reduce
    adds in another order than one process's matmul reduction (float sums do not
    associate). The MLP has no BN, whose per-rank batch statistics would differ."""
    config = write_config(tmp_path, digits_root, train={"epochs": 2, "checkpoint_every_steps": None})
    single = tmp_path / "single"
    assert run(load_config(config), single) == "completed"

    ddp = tmp_path / "ddp"
    procs, outs = train_two_ranks(config, ddp)
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "epoch 2/2: train loss" in outs[0][1] and "epoch" not in outs[1][1]  # rank 0 alone reports

    info = json.loads((ddp / "run.json").read_text())
    assert info["world_size"] == 2 and info["global_batch"] == 32 and info["steps_per_epoch"] == 45
    got, want = final_weights(ddp), final_weights(single)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)
    for a, b in zip(records(ddp, "epoch"), records(single, "epoch"), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_top1_err"] == pytest.approx(b["train_top1_err"], abs=0.2)  # one image = 0.07%
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["val_top1_err"] == pytest.approx(b["val_top1_err"], abs=0.6)  # one image = 0.28%


@pytest.mark.slow
def test_two_ranks_accumulating_two_batches_of_16_equal_one_process_with_batch_64(tmp_path, digits_root):
    """train.accum_steps=2: each rank's micro-batches k = 2s, 2s+1 together with the other
    rank's are perm[64s:64s+64], the single process's batch s; each micro-batch's mean loss
    is weighted 1/2 and DDP averages the two ranks (no_sync on the first micro-batch), so the
    gradient is the mean over the 64. Same weights within float tolerance (no BN)."""
    config = write_config(tmp_path, digits_root, train={"epochs": 1, "checkpoint_every_steps": None})
    single = tmp_path / "single"
    cfg = load_config(config)
    cfg.train.batch_size = 64
    assert run(cfg, single) == "completed"
    ddp = tmp_path / "ddp"
    # sync_every 5: the flag reductions in flight between the two ranks inside the epoch too
    procs, outs = train_two_ranks(config, ddp, overrides=("train.accum_steps=2", "train.sync_every=5"))
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    info, one = (json.loads((d / "run.json").read_text()) for d in (ddp, single))
    assert (info["global_batch"], info["accum_steps"], info["steps_per_epoch"]) == (64, 2, 1442 // 64)
    assert (one["global_batch"], one["steps_per_epoch"]) == (64, 1442 // 64)
    assert info["config_hash"] != one["config_hash"]  # batch_size differs; accum_steps alone would not count
    got, want = final_weights(ddp), final_weights(single)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)
    (a,), (b,) = records(ddp, "epoch"), records(single, "epoch")
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5) and a["step"] == b["step"] == 22


def test_accum_steps_is_a_run_time_setting_left_out_of_the_config_hash():
    from cwn_bench.config import Config, config_hash

    base, other = Config(), Config()
    other.train.accum_steps, other.train.sync_every = 4, 7
    assert config_hash(base) == config_hash(other)
    other.train.batch_size = 16
    assert config_hash(base) != config_hash(other)


# `cwn-bench train` that prints how many images each rank summed for the dataset statistics
# and a digest of the statistics it standardises its inputs with
SHARED_STATS = """
import hashlib, sys
from cwn_bench.data import module
from cwn_bench.cli import main
sums, use = module.feature_sums, module.DataModule.use_dataset_stats
def count_and_sum(batches, shape):
    result = sums(batches, shape)
    print("summed", int(result[0].flatten()[0]), file=sys.stderr)
    return result
def use_and_show(self, stats=None):
    use(self, stats)
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in self.stats)).hexdigest()
    print("dataset stats", digest, file=sys.stderr)
module.feature_sums, module.DataModule.use_dataset_stats = count_and_sum, use_and_show
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_each_rank_sums_a_share_and_all_get_the_single_process_statistics(tmp_path, digits_root):
    config = write_config(tmp_path, digits_root, train={"epochs": 1, "steps_per_epoch": 2})
    procs, outs = train_two_ranks(config, tmp_path / "run", command=[sys.executable, "-c", SHARED_STATS])
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    single = build(load_config(config))
    want = hashlib.sha256(b"".join(t.numpy().tobytes() for t in single.stats)).hexdigest()
    shares = []
    for _, err in outs:
        assert [line.split()[-1] for line in err.splitlines() if line.startswith("dataset stats")] == [want]
        shares += [int(line.split()[-1]) for line in err.splitlines() if line.startswith("summed")]
    assert sum(shares) == single.train_size and len(shares) == 2 and abs(shares[0] - shares[1]) <= 16  # one batch


@pytest.mark.slow
def test_two_ranks_both_fail_at_once_when_rank_0_finds_no_readable_checkpoint(tmp_path, digits_root):
    """Rank 0 alone reads the checkpoints; its refusal must reach rank 1 through the
    broadcast, not leave rank 1 waiting there until the 30-minute process-group timeout."""
    config = write_config(tmp_path, digits_root)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt-000000004.pt").write_bytes(b"not a checkpoint")
    procs, outs = train_two_ranks(config, run_dir, timeout=120)
    assert [p.returncode for p in procs] == [2, 2], outs[0][1][-2000:] + outs[1][1][-2000:]
    for _, err in outs:
        assert "no usable checkpoint" in err.strip().splitlines()[-1]


def test_nan_loss_stops_with_failed_status_and_keeps_the_good_checkpoint(tmp_path, digits_root):
    config = write_config(tmp_path, digits_root, model={"method": "plain"},
                          optim={"lr": 1e12, "momentum": 0.0}, sched={"name": "constant"},
                          train={"checkpoint_every_steps": 1, "keep_checkpoints": 5})
    run_dir = tmp_path / "run"
    failed = cli("train", str(config), "--run-dir", str(run_dir))
    assert failed.returncode == 2
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("cwn-bench train: error:") and "non-finite training loss" in message
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "step" in info["reason"]
    kept = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert kept, "the steps before the blow-up were checkpointed"
    bad_step = int(info["reason"].split("global step ")[1].split(")")[0])
    assert checkpoint.load(kept[-1])["global_step"] == bad_step - 1
    assert all(torch.isfinite(t).all() for t in final_weights(run_dir).values())
    with pytest.raises(TrainingFailed, match="non-finite"):  # the same from Python
        run(load_config(config), tmp_path / "again")


def bad_step_of(run_dir: Path) -> int:
    return int(json.loads((run_dir / "run.json").read_text())["reason"].split("global step ")[1].split(")")[0])


@pytest.mark.parametrize("sync_every", [1, 16])
def test_a_late_nan_names_its_exact_step_and_nothing_after_it_is_written(tmp_path, digits_root, sync_every):
    """The learning rate jumps by 1e10 at 0.4 epochs (step 19): the loss blows up a few steps
    later. Read every 16 steps from the device, the run still fails naming the step where it
    happened (the same as when read every step), keeps the checkpoint before it (every 8
    steps) and writes no step record from it on."""
    config = write_config(tmp_path, digits_root, model={"method": "plain"}, optim={"lr": 0.1, "momentum": 0.0},
                          sched={"name": "step", "milestones": [0.4], "gamma": 1e10},
                          train={"checkpoint_every_steps": 8, "keep_checkpoints": 5, "sync_every": 1, "log_every": 1})
    with pytest.raises(TrainingFailed, match="non-finite"):
        run(load_config(config), tmp_path / "every-step")
    bad = bad_step_of(tmp_path / "every-step")
    assert 19 < bad < 45  # a late blow-up, so that checkpoints exist before it
    cfg = load_config(config)
    cfg.train.sync_every = sync_every
    with pytest.raises(TrainingFailed, match=f"epoch 1 step {bad} \\(global step {bad}\\)"):
        run(cfg, tmp_path / "run")
    kept = sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.pt"))
    assert checkpoint.load(kept[-1])["global_step"] == (bad - 1) // 8 * 8
    assert [r["step"] for r in records(tmp_path / "run", "step")] == list(range(1, bad))
    assert records(tmp_path / "run", "epoch") == []


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_run(tmp_path, digits_root, amp):
    config = write_config(tmp_path, digits_root, train={"amp": amp, "channels_last": True, "epochs": 1,
                                                        "steps_per_epoch": 5, "deterministic": False})
    assert run(load_config(config), tmp_path / "run") == "completed"
    (rec,) = records(tmp_path / "run", "epoch")
    assert rec["step"] == 5 and math.isfinite(rec["train_loss"]) and math.isfinite(rec["val_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_cwn_trains_the_papers_mlp_faster_than_plain(tmp_path, digits_root, seed):
    """The paper's Yale-B MLP protocol ({128,64,48,48}, plain SGD, batch 32, lr 0.5) on
    digits: after one epoch CWN's mean training loss is well below plain's (measured
    here: 1.66-1.69 against 1.96-2.09 over seeds 0-2)."""
    losses = {}
    for method in ("plain", "cwn"):
        config = write_config(tmp_path, digits_root, seed=seed,
                              model={"method": method, "hidden": [128, 64, 48, 48]},
                              optim={"lr": 0.5, "momentum": 0.0, "weight_decay": 0.0}, sched={"name": "constant"},
                              train={"epochs": 1, "checkpoint_every_steps": None})
        assert run(load_config(config), tmp_path / method) == "completed"
        losses[method] = records(tmp_path / method, "epoch")[0]["train_loss"]
    assert losses["cwn"] < 0.9 * losses["plain"], losses


# --------------------------------------------------------------------------- host syncs

SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def count_host_syncs(monkeypatch, cfg, run_dir: Path) -> int:
    """Run ``cfg`` in-process counting every Tensor method that reads a value to the host
    (and torch.cuda.synchronize) while the training loop runs (evaluation and the epoch's
    end left out)."""
    run_module = importlib.import_module("cwn_bench.train.run")  # the module, not the function of that name
    calls, inside = [0], [False]

    def counted(original):
        def wrapper(*args, **kwargs):
            calls[0] += inside[0]
            return original(*args, **kwargs)
        return wrapper

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch.cuda, "synchronize", counted(torch.cuda.synchronize))
    loop = run_module.train_one_epoch

    def in_loop(*args, **kwargs):
        inside[0] = True
        try:
            return loop(*args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(run_module, "train_one_epoch", in_loop)
    assert run(cfg, run_dir) == "completed"
    return calls[0]


def test_the_step_loop_reads_the_device_only_at_sync_points(tmp_path, monkeypatch):
    """300 tiny MLP steps on synthetic data: with train.sync_every=50 (log lines every 50
    steps too) the loop makes a few host reads per window; read every step, it makes one or
    more per step, which shows that the counting sees them."""
    config = write_config(tmp_path, tmp_path, model={"hidden": [8]},
                          data={"name": "synthetic", "loader": "synthetic", "num_classes": 4, "normalize": "imagenet",
                                "synthetic_samples": 300 * 4},
                          train={"batch_size": 4, "epochs": 1, "checkpoint_every_steps": None, "log_every": 50,
                                 "sync_every": 50, "deterministic": False})
    cfg = load_config(config)
    windows = 300 // 50
    assert count_host_syncs(monkeypatch, cfg, tmp_path / "windowed") <= 3 * windows
    cfg.train.sync_every = 1
    assert count_host_syncs(monkeypatch, cfg, tmp_path / "every-step") >= 300


def test_cuda_graphs_are_refused_on_a_cpu_in_one_line(tmp_path, digits_root):
    config = write_config(tmp_path, digits_root, train={"cuda_graph": True})
    with pytest.raises(UserError, match="train.cuda_graph=true needs a GPU"):
        run(load_config(config), tmp_path / "run")


def test_another_model_s_checkpoint_is_unusable_and_the_run_never_restarts_from_zero_untold(tmp_path, digits_root,
                                                                                             capsys):
    """A valid checkpoint of another model (hidden 32-16 vs 8) is renamed *.corrupt; with no
    other, the run stops, and stops again when started again (a requeue), until --restart,
    which keeps the old metrics aside."""
    from cwn_bench import cli as cli_main

    other = write_config(tmp_path, digits_root, train={"epochs": 1, "steps_per_epoch": 4})
    assert run(load_config(other), tmp_path / "other") == "completed"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    newest = sorted((tmp_path / "other" / "checkpoints").glob("ckpt-*.pt"))[-1]
    shutil.copy(newest, run_dir / "checkpoints" / newest.name)
    (run_dir / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1, "step": 4}\n')
    mine = write_config(tmp_path / "run", digits_root, model={"hidden": [8]}, train={"epochs": 1, "steps_per_epoch": 4})
    argv = ["train", str(mine), "--run-dir", str(run_dir)]
    for start in range(2):
        assert cli_main.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "no usable checkpoint" in err[-1] and "--restart" in err[-1] and "Traceback" not in "\n".join(err)
        assert start == 1 or "holds another model (" in "\n".join(err)
    assert (run_dir / "checkpoints" / f"{newest.name}.corrupt").exists()
    assert cli_main.main([*argv, "--restart"]) == 0
    capsys.readouterr()
    assert (run_dir / "metrics.jsonl.before-restart").read_text() == '{"kind": "epoch", "epoch": 1, "step": 4}\n'
    assert [r["epoch"] for r in records(run_dir, "epoch")] == [1]
    fresh = tmp_path / "fresh"  # --restart at the start that finds the checkpoint unusable
    (fresh / "checkpoints").mkdir(parents=True)
    shutil.copy(newest, fresh / "checkpoints" / newest.name)
    (fresh / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1, "step": 4}\n')
    assert cli_main.main(["train", str(mine), "--run-dir", str(fresh), "--restart"]) == 0
    assert (fresh / "metrics.jsonl.before-restart").exists() and (fresh / "checkpoints" / f"{newest.name}.corrupt").exists()
