"""TensorBoard event files (train.tensorboard): metrics.jsonl's step and epoch scalars,
read back with TensorBoard's own reader (EventAccumulator), across a killed attempt."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorboard", reason="the optional extra: pip install 'cwn-bench[tensorboard]'")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from test_train import records, start_slow, wait_for_line, write_config  # noqa: E402

from cwn_bench.config import load_config  # noqa: E402
from cwn_bench.train import checkpoint, run  # noqa: E402
from cwn_bench.train.tensorboard import scalars  # noqa: E402


def test_scalars_are_tagged_after_the_record_s_fields():
    rec = {"kind": "step", "epoch": 2, "step": 50, "lr": 0.1, "loss": 2.5, "done": True, "note": "x",
           "probe": {"fim": 1.5, "cond": None}, "peak_gpu_mem_gib": None, "bad": float("nan")}
    assert scalars(rec) == {"step/lr": 0.1, "step/loss": 2.5, "step/probe/fim": 1.5}
    assert scalars({"kind": "epoch", "epoch": 1, "step": 45, "val_top1_err": 12}) == {"epoch/val_top1_err": 12.0}
    probe = {"kind": "probe", "epoch": 1, "step": 10, "layer": "fc1", "preact_mean": 0.5, "preact_var": 2.0}
    assert scalars(probe) == {"probe/fc1/preact_mean": 0.5, "probe/fc1/preact_var": 2.0}  # one series per layer


def _series(folder, tag: str, purge: bool = True) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(folder), purge_orphaned_data=purge)
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.mark.slow
def test_events_mirror_metrics_and_a_killed_attempt_leaves_no_duplicate_steps(tmp_path, digits_root):
    config = write_config(tmp_path, digits_root, train={"tensorboard": True, "log_every": 1,
                                                        "checkpoint_every_steps": 10, "probe_every": 5})
    run_dir = tmp_path / "run"
    proc = start_slow(config, run_dir)  # 50 ms per batch: killed mid-way through epoch 2
    wait_for_line(proc, "epoch 2/2 step 14/45")
    proc.kill()
    proc.wait(timeout=60)
    saved = checkpoint.load(sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1])["global_step"]
    written = [step for step, _ in _series(run_dir / "tensorboard", "step/loss", purge=False)]
    assert written and max(written) > saved, "the killed attempt wrote nothing past its checkpoint"

    assert run(load_config(config), run_dir) == "completed"  # resumes from `saved`, writes those steps again
    steps, epochs = records(run_dir, "step"), records(run_dir, "epoch")
    loss = _series(run_dir / "tensorboard", "step/loss")
    assert [s for s, _ in loss] == [r["step"] for r in steps] == list(range(1, 91))
    assert [v for _, v in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)  # stored as float32
    for field in ("val_top1_err", "train_loss", "img_per_s", "data_wait_share", "lr"):
        got = _series(run_dir / "tensorboard", f"epoch/{field}")
        assert got == [(r["step"], pytest.approx(r[field], rel=1e-6)) for r in epochs], field
    assert [s for s, _ in _series(run_dir / "tensorboard", "epoch/val_top1_err")] == [45, 90]
    probes = [r for r in records(run_dir, "probe") if r["layer"] == records(run_dir, "probe")[0]["layer"]]
    got = _series(run_dir / "tensorboard", f"probe/{probes[0]['layer']}/preact_var")
    assert got == [(r["step"], pytest.approx(r["preact_var"], rel=1e-6)) for r in probes] and len(got) == 18
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one file per attempt
