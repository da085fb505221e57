"""Resuming on another world size (train.allow_resize), with real gloo ranks."""

from __future__ import annotations

import json
import signal

import pytest
from test_train import records, start_slow, train_two_ranks, wait_for_line, write_config

from cwn_bench.config import config_hash, load_config
from cwn_bench.train import checkpoint


def test_allow_resize_and_tensorboard_are_left_out_of_the_config_hash(tmp_path, digits_root):
    config = write_config(tmp_path, digits_root)
    base = config_hash(load_config(config))
    assert config_hash(load_config(config, ["train.allow_resize=true", "train.tensorboard=true"])) == base
    assert config_hash(load_config(config, ["train.batch_size=16"])) != base


@pytest.mark.slow
def test_a_checkpoint_of_one_rank_resumes_on_two_only_with_allow_resize(tmp_path, digits_root):
    # 16 images per rank: 90 steps per epoch on one rank, 45 on two.
    config = write_config(tmp_path, digits_root, train={"batch_size": 16, "checkpoint_every_steps": None,
                                                        "log_every": 1, "tensorboard": True})
    run_dir = tmp_path / "run"
    proc = start_slow(config, run_dir)
    wait_for_line(proc, "epoch 1/2 step 30/90")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3  # preempted, checkpoint written mid-epoch
    saved = checkpoint.load(sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1])
    assert saved["world_size"] == 1 and saved["epoch"] == 0
    at = saved["meter"]["steps"]

    procs, outs = train_two_ranks(config, run_dir, timeout=120)
    assert [p.returncode for p in procs] == [2, 2], outs[0][1][-2000:]
    last = outs[0][1].strip().splitlines()[-1]
    assert "world size 1" in last and "world size 2" in last and "train.allow_resize: true" in last
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # untouched

    (tmp_path / "resize").mkdir()
    allowed = write_config(tmp_path / "resize", digits_root, train={
        "batch_size": 16, "checkpoint_every_steps": None, "log_every": 1, "tensorboard": True, "allow_resize": True})
    procs, outs = train_two_ranks(allowed, run_dir, timeout=300)
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert f"from image {at * 16} of epoch 1 (step {at // 2})" in outs[0][1]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["world_size"] == 2 and info["global_batch"] == 32
    assert [(a["world_size"], a["resized_from"]) for a in info["attempts"]] == [(1, None), (2, 1)]
    # Global steps go on from the checkpoint: none repeated, none skipped.
    steps = [r["step"] for r in records(run_dir, "step")]
    epoch_steps = [r["step"] for r in records(run_dir, "epoch")]
    assert steps == list(range(1, steps[-1] + 1))
    assert epoch_steps == [at + (45 - at // 2), at + (45 - at // 2) + 45] and epoch_steps[-1] == steps[-1]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("step/loss")] == steps
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # rank 0 of each attempt
