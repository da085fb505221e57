"""The report's Figure 2 section and PNG from crafted probe / fim / step records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from cwn_bench import config as cfgmod
from cwn_bench.report import write_report


def crafted_run(root: Path, method: str, seed: int, probes: bool = True, lr: float = 0.1, err: float = 10.0) -> Path:
    """A completed Yale-B MLP run of 2 epochs (20 steps) whose probe values encode
    (method, seed, layer, step), so the figure's means over seeds can be checked."""
    cfg = cfgmod.Config(seed=seed)
    cfg.model.method, cfg.data.name, cfg.train.epochs, cfg.optim.lr = method, "yaleb", 2, lr
    run_dir = root / f"method={method},seed={seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"config": cfgmod.to_dict(cfg), "seed": seed, "status": "completed",
                                                  "config_hash": cfgmod.config_hash(cfg), "env": {}}))
    base = {"plain": 1.0, "cwn": 2.0}[method]
    lines = []
    for step in (5, 10, 15, 20):
        lines.append({"kind": "step", "epoch": 1 + (step > 10), "step": step, "loss": base / step + seed})
        if probes:
            lines += [{"kind": "probe", "epoch": 1 + (step > 10), "step": step, "layer": layer,
                       "preact_mean": base * i + seed + step / 100, "preact_var": base * i * step}
                      for i, layer in enumerate(["fc1", "fc2", "fc3"], start=1)]
            lines += [{"kind": "fim", "epoch": 1 + (step > 10), "step": step, "layer": layer,
                       "cond": 10.0 ** (base + i + seed), "rank": 100, "samples": 100, "size": 2304}
                      for i, layer in enumerate(["fc4", "classifier"])]
        if step % 10 == 0:
            lines.append({"kind": "epoch", "epoch": step // 10, "step": step, "train_loss": 1.0, "val_loss": 1.0,
                          "val_top1_err": err, "holdout_top1_err": err, "val_top5_err": 1.0, "train_top1_err": 5.0, "wall_s": 1.0})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run_dir


def test_figure2_png_and_section_from_probe_records(tmp_path):
    for method in ("plain", "cwn"):
        for seed in (0, 1):
            crafted_run(tmp_path / "runs", method, seed)
    md = write_report([tmp_path / "runs"], tmp_path / "out")
    out = tmp_path / "out"
    with Image.open(out / "figure2_yaleb_mlp.png") as png:
        png.verify()
    text = md.read_text()
    assert "## Figure 2" in text and "(figure2_yaleb_mlp.png)" in text and "figure2.csv" in text
    fig = pd.read_csv(out / "figure2.csv")
    probe = fig[fig.quantity == "preact_mean"]
    assert set(probe.layer) == {"fc1", "fc2"}  # the first two layers only
    cwn_fc2 = probe[(probe.method == "cwn") & (probe.layer == "fc2")].iloc[0]
    assert cwn_fc2["last_step"] == 20 and cwn_fc2["last"] == pytest.approx(2.0 * 2 + 0.5 + 0.2)  # seeds 0, 1
    assert cwn_fc2["seeds"] == 2 and cwn_fc2["first_step"] == 5
    cond = fig[(fig.quantity == "log10_cond") & (fig.method == "plain")].set_index("layer")["last"]
    assert cond.to_dict() == pytest.approx({"fc4": 1.5, "classifier": 2.5})
    loss = fig[(fig.quantity == "loss") & (fig.method == "plain")].iloc[0]
    assert loss["last"] == pytest.approx(1.0 / 20 + 0.5)
    assert list(fig.method.drop_duplicates()) == ["plain", "cwn"]


def test_no_figure2_without_probe_records(tmp_path):
    crafted_run(tmp_path / "runs", "cwn", 0, probes=False)
    md = write_report([tmp_path / "runs"], tmp_path / "out")
    assert "## Figure 2" not in md.read_text()
    assert not list((tmp_path / "out").glob("figure2*"))


def test_an_lr_sweep_gets_one_figure_per_lr_and_one_of_the_selected_lrs(tmp_path):
    best = {"plain": 0.1, "cwn": 0.5}  # the lowest holdout error
    for method in ("plain", "cwn"):
        for lr in (0.1, 0.5):
            crafted_run(tmp_path / "runs" / f"lr{lr}", method, 0, lr=lr, err=5.0 if lr == best[method] else 9.0)
    write_report([tmp_path / "runs"], tmp_path / "out", select=["optim.lr"])
    assert sorted(p.name for p in (tmp_path / "out").glob("figure2*.png")) == [
        "figure2_yaleb_mlp_optim.lr_0.1.png", "figure2_yaleb_mlp_optim.lr_0.5.png", "figure2_yaleb_mlp_selected.png"]
    sel = pd.read_csv(tmp_path / "out" / "selection.csv")  # what the selected figure draws
    assert dict(zip(sel.method, sel["optim.lr"])) == best
    fig = pd.read_csv(tmp_path / "out" / "figure2.csv")
    assert sorted(set(zip(fig.method, fig.variant))) == [(m, f"optim.lr={lr}") for m in ("cwn", "plain")
                                                          for lr in (0.1, 0.5)]
