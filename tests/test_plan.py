"""`cwn-bench plan` (and the plan `submit --dry-run` prints) against arithmetic done here
by hand: images per epoch, wall time, GPU-hours, requeues, waves, checkpoint storage,
and where the throughput comes from (--img-per-s, completed runs, bench step JSONL)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from cwn_bench import config as cfgmod
from cwn_bench.cli import main

CONFIG = """
name: plan-test
model: {name: mlp, hidden: [128, 64]}
data: {name: cifar10, image_size: 32}
optim: {name: sgd, momentum: 0.9}
train: {epochs: 10, batch_size: 100, keep_checkpoints: 2}
sweep: {model.method: [plain, cwn], seed: [0, 1, 2]}
"""
PROFILE = """
cluster: local
nodes: 2
gpus_per_node: 4
time_min: 2
signal_delay_s: 30
max_requeues: 0
array_parallelism: 4
"""
# By hand: 8 ranks; (50,000 // 8) // 100 = 62 steps of 100 per rank -> 49,600 images per epoch.
IMAGES = 62 * 100 * 8
PLAIN_PARAMS = (3072 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)  # weights + biases
CWN_PARAMS = PLAIN_PARAMS + 128 + 64 + 10  # + one scale g per output


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "c.yaml").write_text(CONFIG)
    (tmp_path / "p.yaml").write_text(PROFILE)
    return tmp_path / "c.yaml", tmp_path / "p.yaml"


def plan_json(capsys, *argv: str) -> dict:
    assert main(["plan", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_equals_hand_arithmetic(files, capsys):
    config, profile = files
    plan = plan_json(capsys, config, "--profile", profile, "--img-per-s", 500, "--bench", config.parent)
    wall_h = IMAGES * 10 / (500 * 8) / 3600  # 124 s
    expected = {"runs": 6, "gpus_per_run": 8, "images_per_epoch": IMAGES, "epochs": 10, "img_per_s_per_gpu": 500.0,
                "jobs_per_run": math.ceil(wall_h * 3600 / (2 * 60 - 30)), "gpu_hours": 6 * 8 * wall_h}
    assert {k: plan[k] for k in expected} == pytest.approx(expected)
    assert plan["wall_hours_per_run"] == pytest.approx(wall_h)
    assert plan["sweep_wall_hours"] == pytest.approx(2 * wall_h)  # ceil(6 / 4) = 2 waves
    state = {"plain": 4 * 2 * PLAIN_PARAMS, "cwn": 4 * 2 * CWN_PARAMS}  # fp32 weights + SGD momentum
    assert plan["checkpoint_gib"] == pytest.approx(2 * 3 * (state["plain"] + state["cwn"]) / 2**30)
    assert [r["source"] for r in plan["per_run"]] == ["given (--img-per-s)"] * 6
    assert main(["plan", str(config), "--profile", str(profile), "--img-per-s", "500"]) == 0
    text = capsys.readouterr().out
    assert "evaluation passes and start-up not counted" in text and "published size of cifar10" in text
    assert plan["jobs_per_run"] == 2  # 124 s of training, 90 s per job before the signal
    assert "a run needs 1 requeue(s) but max_requeues=0" in text


def test_images_are_counted_in_data_root(tmp_path, capsys, files):
    config, profile = files
    for split, n in (("train", 7), ("val", 3)):
        for cls in ("a", "b"):
            (tmp_path / "d" / split / cls).mkdir(parents=True)
            for i in range(n):
                (tmp_path / "d" / split / cls / f"{i}.jpg").write_bytes(b"")
    (tmp_path / "d" / "train" / "a" / "notes.txt").write_text("not an image")
    plan = plan_json(capsys, config, f"data.root={tmp_path / 'd'}", "train.batch_size=1", "--profile", profile,
                     "--img-per-s", 1)
    assert (plan["train_images"], plan["val_images"]) == (14, 6)
    assert plan["images_per_epoch"] == 8  # (14 // 8) // 1 = 1 step of 1 on 8 ranks
    assert plan["images_source"].startswith("counted in")


def test_throughput_from_runs_then_bench(tmp_path, files, capsys):
    config, profile = files
    cfg = cfgmod.load_config(config)
    point, run_cfg = cfgmod.expand_sweep(cfg)[0]  # plain, seed 0
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"config": cfgmod.to_dict(run_cfg), "status": "completed",
                                                  "config_hash": "x", "seed": 0}))
    rates = [999.0, 400.0, 420.0, 410.0]  # the first epoch (warm-up) is left out: median 410
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"kind": "epoch", "epoch": e, "img_per_s_per_gpu": r})
                                                   + "\n" for e, r in enumerate(rates, start=1)))
    bench = tmp_path / "bench"
    bench.mkdir()
    for name, rate, age in (("old.jsonl", 100.0, 1000), ("new.jsonl", 300.0, 0)):
        rows = [{"kind": "env", "card": f"Card {name}"},
                {"kind": "measurement", "bench": "step", "shape": "mlp:100x3x32x32", "variant": "cwn",
                 "dtype": "fp32", "img_per_s": rate}]
        (bench / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.utime(bench / name, (1e9 - age, 1e9 - age))
    plan = plan_json(capsys, config, "--profile", profile, "--runs", tmp_path / "runs", "--bench", bench)
    by_run = {r["name"]: r for r in plan["per_run"]}
    assert by_run["method=plain,seed=0"]["img_per_s_per_gpu"] == 410.0
    assert "1 completed run(s) of this config" in by_run["method=plain,seed=0"]["source"]
    assert by_run["method=plain,seed=1"]["img_per_s_per_gpu"] == 410.0  # seed aside: the same config
    cwn = by_run["method=cwn,seed=0"]
    assert cwn["img_per_s_per_gpu"] == 300.0 and "Card new.jsonl" in cwn["source"]  # newest file
    assert plan["img_per_s_per_gpu"] == 300.0  # the slowest run's
    assert plan["wall_hours_per_run"] == pytest.approx(IMAGES * 10 / (300 * 8) / 3600)
    plan = plan_json(capsys, config, "--profile", profile, "--bench", bench, "--card", "old.JSONL")
    assert plan["img_per_s_per_gpu"] == 100.0 and "Card old.jsonl" in plan["per_run"][0]["source"]


def test_unknown_throughput_leaves_times_open(files, capsys):
    config, profile = files
    plan = plan_json(capsys, config, "--profile", profile, "--bench", config.parent)
    assert plan["gpu_hours"] is None and plan["checkpoint_gib"] > 0
    assert main(["plan", str(config), "--profile", str(profile), "--img-per-s", "-3"]) == 2
    assert "--img-per-s -3.0: expected images per second per GPU" in capsys.readouterr().err


def test_submit_dry_run_prints_the_plan(files, capsys, tmp_path):
    config, profile = files
    assert main(["submit", str(config), "--profile", str(profile), "--nodes", "1", "--dry-run", "--img-per-s", "500",
                 "--runs-root", str(tmp_path / "sweeps")]) == 0
    out = capsys.readouterr().out
    gpu_hours = 6 * 4 * (50_000 // 4 // 100 * 100 * 4) * 10 / (500 * 4) / 3600  # one node of 4 GPUs
    assert "plan: 6 run(s), each on 4 GPU(s)" in out and f"GPU-hours: {gpu_hours:.1f} for the sweep" in out
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").rglob("run.json"))


def test_submit_dry_run_without_a_plan_still_prints_the_script(files, capsys, tmp_path):
    config, profile = files
    assert main(["submit", str(config), "--profile", str(profile), "--nodes", "1", "--dry-run", "--img-per-s", "500",
                 "--runs-root", str(tmp_path / "sweeps"), "train.batch_size=100000"]) == 0
    captured = capsys.readouterr()
    assert "local job (dry run)" in captured.out
    assert "plan: not computed: train split: 50000 samples give no full batch" in captured.err


def test_held_out_images_are_not_counted_as_trained(files, capsys):
    config, profile = files
    whole = plan_json(capsys, config, "--profile", profile, "--img-per-s", 500)
    held = plan_json(capsys, config, "data.holdout=0.05", "--profile", profile, "--img-per-s", 500)
    assert held["train_images"] == whole["train_images"] - round(0.05 * whole["train_images"]) == 47_500
    assert held["images_per_epoch"] < whole["images_per_epoch"]
    assert "less 2,500 held out (data.holdout=0.05)" in held["images_source"]


def test_a_holdout_of_synthetic_data_is_refused_by_the_plan_as_by_training(files, capsys):
    config, profile = files
    assert main(["plan", str(config), "data.name=synthetic", "data.loader=synthetic", "data.holdout=0.1",
                 "--profile", str(profile), "--img-per-s", "500"]) == 2
    assert "data.holdout: synthetic data has no training set to hold out from" in capsys.readouterr().err
