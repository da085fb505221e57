"""`cwn-bench report`: run dirs and bench JSONL (written here in the contract's format)
in, tables / LaTeX / PNG / report.md / index.html out. Expected numbers are computed in
the test from the values it wrote, independently of pandas."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import statistics
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from cwn_bench import config as cfgmod
from cwn_bench.cli import main
from cwn_bench.errors import UserError
from cwn_bench.report import write_report
from cwn_bench.report.envfields import device_name


def write_run(root: Path, name: str, val_errs: list[float], *, method: str = "cwn", seed: int = 0,
              lr: float = 0.1, status: str = "completed", dataset: str = "cifar10", model: str = "resnet56",
              world_size: int = 1, img_per_s_per_gpu: float = 100.0, planned: int | None = None,
              settings: dict | None = None) -> Path:
    """A run dir in the contract's format: run.json + one epoch record per val error
    (top-5 error = top-1 / 3, train error = val - 1, 10 s per epoch); ``settings`` are
    further dotted config keys."""
    cfg = cfgmod.Config(seed=seed)
    cfg.model.name, cfg.model.method, cfg.data.name, cfg.optim.lr = model, method, dataset, lr
    for key, value in (settings or {}).items():
        cfgmod.set_value(cfg, key, value)
    cfg.train.epochs = planned or len(val_errs)
    run_dir = root / name
    run_dir.mkdir(parents=True)
    env = {"torch": "2.14.1", "hostnames": [f"n{i}" for i in range(1, world_size + 1)],
           "git": {"commit": "abcdef0123456789", "dirty": False}, "gpu": {"names": ["Test GPU"]},
           "slurm": {"SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "70", "SLURM_ARRAY_TASK_ID": str(seed),
                     "SLURM_RESTART_COUNT": "1"}}
    run = {"config": cfgmod.to_dict(cfg), "seed": seed, "config_hash": cfgmod.config_hash(cfg), "status": status,
           "reason": "NaN loss at step 3" if status == "failed" else None, "env": env, "world_size": world_size}
    (run_dir / "run.json").write_text(json.dumps(run))
    lines = [json.dumps({"kind": "step", "step": 1, "loss": 2.0})]
    for epoch, err in enumerate(val_errs, start=1):
        lines.append(json.dumps({
            "kind": "epoch", "epoch": epoch, "step": 10 * epoch, "lr": lr, "train_loss": 1.0 / epoch,
            "train_top1_err": err - 1, "val_loss": 1.0, "val_top1_err": err, "val_top5_err": err / 3,
            "img_per_s": img_per_s_per_gpu * world_size, "img_per_s_per_gpu": img_per_s_per_gpu,
            "data_time_s": 1.0, "wall_s": 10.0}))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def report(tmp_path: Path, *inputs: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    return write_report(list(inputs), out), out


def test_mean_and_std_over_seeds_with_paper_numbers_beside(tmp_path):
    runs = tmp_path / "runs"
    finals = {"cwn": [7.0, 6.5, 6.75], "plain": [7.5, 8.0, 7.25]}
    for method, values in finals.items():
        for seed, final in enumerate(values):
            write_run(runs, f"method={method},seed={seed}", [30.0, 15.0, final], method=method, seed=seed)
    md, out = report(tmp_path, runs, runs / "method=cwn,seed=0" / "run.json")  # overlapping inputs: read once
    acc = pd.read_csv(out / "accuracy.csv").set_index("method")
    assert list(acc.columns[:9]) == ["dataset", "model", "n_seeds", "top1_err_mean", "top1_err_std",
                                     "top5_err_mean", "top5_err_std", "paper_top1_err", "paper_top5_err"]
    for method, values in finals.items():
        row = acc.loc[method]
        assert row.n_seeds == 3
        assert row.top1_err_mean == pytest.approx(statistics.mean(values))
        assert row.top1_err_std == pytest.approx(statistics.stdev(values))  # ddof=1
        assert row.top5_err_std == pytest.approx(statistics.stdev([v / 3 for v in values]))
        assert (row.top1_err_min, row.top1_err_max) == (min(values), max(values))
    assert acc.loc["cwn", "paper_top1_err"] == 6.85 and acc.loc["plain", "paper_top1_err"] == 7.34
    assert pd.isna(acc.loc["cwn", "paper_top5_err"])  # Table 3 reports top-1 only
    text = md.read_text()
    assert "6.75 ± 0.25" in text and "6.85" in text  # cwn: mean ± std, paper


def test_configs_differing_in_lr_are_not_merged_and_the_key_is_named(tmp_path):
    runs = tmp_path / "runs"
    for lr, finals in ((0.1, [7.0, 8.0]), (0.5, [20.0, 22.0])):
        for seed, final in enumerate(finals):
            write_run(runs, f"lr={lr},seed={seed}", [final], lr=lr, seed=seed)
    md, out = report(tmp_path, runs)
    acc = pd.read_csv(out / "accuracy.csv").set_index("variant")
    assert sorted(acc.index) == ["optim.lr=0.1", "optim.lr=0.5"]
    assert acc.loc["optim.lr=0.1", "top1_err_mean"] == 7.5 and acc.loc["optim.lr=0.5", "top1_err_mean"] == 21.0
    assert (acc.n_seeds == 2).all()
    assert "configs differ in optim.lr" in md.read_text()


def test_list_valued_key_is_named(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "wide", [10.0], model="mlp", dataset="svhn", settings={"model.hidden": [128] * 6})
    write_run(runs, "narrow", [12.0], model="mlp", dataset="svhn", settings={"model.hidden": [64, 32]})
    md, out = report(tmp_path, runs)
    acc = pd.read_csv(out / "accuracy.csv")
    assert sorted(acc.variant) == ["model.hidden=[128,128,128,128,128,128]", "model.hidden=[64,32]"]
    assert (acc.paper_top1_err == 16.16).all()  # Table 1, SVHN, CWN
    assert "svhn/mlp: configs differ in model.hidden;" in md.read_text()


def test_runs_are_grouped_by_resolved_config_not_by_stored_hash(tmp_path):
    # Equal recorded configs, different stored hashes (another version of the code): merged.
    runs = tmp_path / "runs"
    write_run(runs, "a", [10.0])
    other = write_run(runs, "b", [12.0], seed=1)
    record = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**record, "config_hash": "f" * 64}))
    # Equal stored hash, but the recorded config differs (an edited file): never merged.
    edited = write_run(runs, "c", [30.0], seed=2)
    record = json.loads((edited / "run.json").read_text())
    record["config"]["optim"]["weight_decay"] = 0.0
    (edited / "run.json").write_text(json.dumps(record))
    md, out = report(tmp_path, runs)
    acc = pd.read_csv(out / "accuracy.csv").set_index("variant")
    assert acc.n_seeds.to_dict() == {"optim.weight_decay=0.0001": 2, "optim.weight_decay=0.0": 1}
    assert acc.top1_err_mean.to_dict() == {"optim.weight_decay=0.0001": 11.0, "optim.weight_decay=0.0": 30.0}
    text = md.read_text()
    assert "configs differ in optim.weight_decay" in text
    assert "stored config_hash " in text and "ffffffff" in text  # the merge of two hashes is said


def test_running_and_failed_runs_are_listed_but_not_counted(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "seed=0", [10.0, 8.0], seed=0)
    write_run(runs, "seed=1", [10.0, 9.0], seed=1)
    write_run(runs, "seed=2", [10.0], seed=2, status="running", planned=2)
    write_run(runs, "seed=3", [50.0], seed=3, status="failed", planned=2)
    md, out = report(tmp_path, runs)
    acc = pd.read_csv(out / "accuracy.csv")
    assert len(acc) == 1
    row = acc.iloc[0]
    assert (row.n_seeds, row.n_running, row.n_failed, row.top1_err_mean) == (2, 1, 1, 8.5)
    listed = pd.read_csv(out / "runs.csv")
    assert sorted(listed.status) == ["completed", "completed", "failed", "running"]
    text = md.read_text()
    assert "running (in progress, epoch 1/2)" in text and "NaN loss at step 3" in text
    assert "2 (+1 running, 1 failed)" in text


def test_corrupt_and_truncated_lines_are_skipped_and_counted(tmp_path):
    runs = tmp_path / "runs"
    run_dir = write_run(runs, "seed=0", [30.0, 20.0, 10.0])
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines.insert(2, "{not json")  # between epoch 1 and epoch 2
    lines[3] = json.dumps({**json.loads(lines[3]), "train_loss": "n/a"})  # epoch 2
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"kind": "epoch", "epo')  # cut short
    broken = runs / "seed=1"
    broken.mkdir()
    (broken / "run.json").write_text("{")
    md, out = report(tmp_path, runs)
    problems = pd.read_csv(out / "problems.csv")
    metrics = str(run_dir / "metrics.jsonl")
    assert sorted(problems[(problems.path == metrics) & problems.line.notna()].line) == [3, len(lines) + 1]
    assert set(problems.problem) >= {"corrupt line (not JSON)", "truncated last line"}
    assert str(broken / "run.json") in set(problems.path)
    assert "epoch 2: train_loss='n/a' is not a number" in set(problems.problem)
    acc = pd.read_csv(out / "accuracy.csv")
    assert acc.top1_err_mean.tolist() == [10.0]  # the good records still count
    text = md.read_text()
    assert "2 corrupt or truncated line(s) skipped and 2 other problem(s)" in text
    assert str(broken) in pd.read_csv(out / "missing.csv").run.tolist()


def test_missing_runs_of_a_sweep_are_listed(tmp_path):
    # sweep.json as cwn_bench/rundir/sweepjson.py writes it: runs [{name, point}], submissions [{jobs}].
    points = [{"model.method": m} for m in ("plain", "wn", "cwn")]
    sweep = tmp_path / "demo-1234abcd"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({
        "name": "demo", "runs": [{"name": cfgmod.run_name(p), "point": p} for p in points],
        "submissions": [{"cluster": "slurm", "commit": "1234567890abcdef", "dirty": [],
                         "jobs": {"method=plain": "121", "method=cwn": "123_2"}}]}))
    plain = write_run(sweep, "method=plain", [10.0], method="plain")
    record = json.loads((plain / "run.json").read_text())
    record["env"]["git"]["commit"] = None  # ran from a code snapshot outside git
    (plain / "run.json").write_text(json.dumps(record))
    (sweep / "method=wn").mkdir()  # dir made, run never started
    snapshot = sweep / "code" / "1" / "results"  # the code snapshot is not an input
    snapshot.mkdir(parents=True)
    (snapshot / "bench.jsonl").write_text(json.dumps({"kind": "env"}) + "\n")
    md, out = report(tmp_path, sweep)
    assert "0 bench file(s)" in md.read_text()
    missing = pd.read_csv(out / "missing.csv", dtype=str, keep_default_na=False).set_index("run")
    assert missing.reason.to_dict() == {str(sweep / "method=wn"): "no run.json (never started?)",
                                        str(sweep / "method=cwn"): "run dir absent"}
    assert missing.loc[str(sweep / "method=cwn"), "job"] == "123_2"
    listed = pd.read_csv(out / "runs.csv", dtype=str).iloc[0]
    assert (listed.git_commit, listed.job) == ("1234567890ab", "121")  # as sweep.json recorded them
    assert "method=cwn" in md.read_text()


def test_convergence_and_error_at_fixed_epochs(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "plain", [40.0, 30.0, 20.0, 12.0], method="plain")
    write_run(runs, "cwn0", [35.0, 15.0, 11.0, 9.0], method="cwn", seed=0)
    write_run(runs, "cwn1", [30.0, 25.0, 12.0, 10.0], method="cwn", seed=1)
    _, out = report(tmp_path, runs)
    conv = pd.read_csv(out / "convergence.csv").set_index("method")
    assert (conv.target_top1_err == 12.0).all()  # plain's final error
    # cwn seed 0 first reaches <= 12 at epoch 3, seed 1 at epoch 3; plain at epoch 4.
    assert conv.loc["cwn", "epochs_to_target_mean"] == 3 and conv.loc["plain", "epochs_to_target_mean"] == 4
    assert conv.loc["cwn", "wall_s_to_target_mean"] == 30.0  # 3 epochs of 10 s
    at = pd.read_csv(out / "error_at_epochs.csv")
    cwn = at[at.method == "cwn"].set_index("epoch")
    assert sorted(cwn.index) == [1, 2, 3, 4]
    assert cwn.loc[2, "val_top1_err_mean"] == 20.0
    assert cwn.loc[2, "val_top1_err_std"] == pytest.approx(statistics.stdev([15.0, 25.0]))


def test_throughput_scaling_across_node_counts(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "w1", [10.0, 9.0], world_size=1, img_per_s_per_gpu=400.0)
    write_run(runs, "w2", [10.0, 9.0], world_size=2, img_per_s_per_gpu=360.0)
    md, out = report(tmp_path, runs)
    tp = pd.read_csv(out / "throughput.csv").set_index("world_size")
    assert tp.loc[2, "nodes"] == 2
    assert tp.loc[2, "img_per_s"] == 720.0
    assert tp.loc[2, "scaling_efficiency"] == pytest.approx(360 / 400)
    assert tp.loc[2, "speedup"] == pytest.approx(720 / 400)
    assert tp.loc[1, "scaling_efficiency"] == 1.0
    acc = pd.read_csv(out / "accuracy.csv")
    assert sorted(acc.variant) == ["world_size=1", "world_size=2"]  # global batch differs: not merged


def test_overhead_csv_from_bench_jsonl(tmp_path):
    bench = tmp_path / "bench.jsonl"
    shape = {"shape": "paper:64x128x32x32-128x3x3", "pass": "fwd+bwd", "dtype": "fp32", "memory_format": "nchw"}
    gpus = {"count": 2, "names": ["Test GPU", "Test GPU"], "driver": "580.1"}
    rows = [{"kind": "env", "card": "Test GPU", "gpu": gpus, "cpu": "Test CPU", "torch": "2.14.1"},
            {"kind": "skipped", **shape, "variant": "cwn-triton", "reason": "out of memory"}]
    for variant, ms, ratio in (("cwn-explicit", 18.1, 1.046), ("plain", 17.3, 1.0)):
        rows.append({"kind": "measurement", **shape, "variant": variant, "median_ms": ms, "iqr_ms": 0.1,
                     "ratio_vs_plain": ratio})
    bench.write_text("\n".join(map(json.dumps, rows)) + "\nnot json\n")
    loader = tmp_path / "data.jsonl"
    # a loader measured on the CPU of a GPU machine names the CPU
    loader.write_text(json.dumps({"kind": "env", "card": "cpu", "gpu": gpus, "cpu": "Test CPU"}) + "\n" + json.dumps(
        {"kind": "data", "loader": "dali", "device": "cpu", "batch_size": 64, "images": 1442, "skipped": 0,
         "img_per_s": 812.5, "cpu_ms_per_img": 4.25}) + "\n")
    md, out = report(tmp_path, bench, loader)
    oh = pd.read_csv(out / "overhead.csv")
    assert list(oh.columns[:7]) == ["shape", "variant", "pass", "dtype", "memory_format", "median_ms",
                                    "ratio_vs_plain"]
    assert oh.variant.tolist() == ["plain", "cwn-triton", "cwn-explicit"]  # plain first, then file order
    by_variant = oh.set_index("variant")
    assert by_variant.median_ms.to_dict() == pytest.approx({"plain": 17.3, "cwn-triton": float("nan"),
                                                            "cwn-explicit": 18.1}, nan_ok=True)
    assert by_variant.loc["cwn-triton", "reason"] == "out of memory"
    assert (oh.card == "Test GPU").all()
    with Image.open(out / "overhead_Test_GPU.png") as png:  # one card: one figure, one panel
        assert png.width > 500 and png.height > 300
    assert "](overhead_Test_GPU.png)" in md.read_text() and not list(out.glob("overhead_Test_CPU*"))
    ld = pd.read_csv(out / "loaders.csv")
    assert ld[["loader", "device", "img_per_s", "cpu_ms_per_img", "card"]].values.tolist() == [
        ["dali", "cpu", 812.5, 4.25, "Test CPU"]]
    assert "| 4.25 |" in md.read_text()  # CPU ms per image, shown beside img/s
    assert (out / "overhead.tex").read_text().count(r"\toprule") == 1
    assert "1 corrupt or truncated line(s) skipped" in md.read_text()


def test_pngs_latex_and_index_html(tmp_path):
    runs = tmp_path / "runs"
    for method in ("plain", "cwn"):
        for seed in (0, 1):
            write_run(runs, f"{method}{seed}", [40.0 - seed, 20.0, 10.0 + seed], method=method, seed=seed)
    write_run(runs, "imagenet", [80.0, 60.0], dataset="imagenet", model="googlenet_bn", method="cwn")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in runs.rglob("*") if p.is_file()}
    md, out = report(tmp_path, runs)
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["curves_cifar10_resnet56.png", "curves_imagenet_googlenet_bn.png"]
    for png in pngs:
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 500
    page = (out / "index.html").read_text()
    assert sorted(re.findall(r'<img src="([^"]+)"', page)) == [p.name for p in pngs]
    assert 'href="accuracy.csv"' in page and 'href="accuracy.tex"' in page
    assert all(f"]({p.name})" in md.read_text() for p in pngs)
    imagenet = pd.read_csv(out / "accuracy.csv").query("dataset == 'imagenet'").iloc[0]
    assert (imagenet.paper_top1_err, imagenet.paper_top5_err) == (26.10, 8.35)  # Table 4, CWN
    tex = (out / "accuracy.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex and "googlenet\\_bn" in tex
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in runs.rglob("*") if p.is_file()} == before


def test_nonexistent_path_is_a_user_error(tmp_path, capsys):
    with pytest.raises(UserError, match="nowhere"):
        write_report([tmp_path / "nowhere"], tmp_path / "out")
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "nowhere: no such file or directory" in capsys.readouterr().err


def test_cli_prints_report_path(tmp_path, capsys):
    write_run(tmp_path / "runs", "seed=0", [10.0])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "report.md")


@pytest.mark.slow
def test_report_of_real_training_runs(tmp_path, digits_root):
    """Three real runs of `cwn_bench.train.run` (tiny MLP, digits folder, 2 epochs of 4
    steps): the report's numbers equal those read back from their metrics.jsonl."""
    from cwn_bench.train import run

    runs = tmp_path / "runs"
    settings = {"model.name": "mlp", "model.hidden": [32, 16], "data.name": "digits", "data.root": str(digits_root),
                "data.image_size": 8, "data.resize_size": 8, "data.grayscale": True, "data.workers": 0,
                "train.epochs": 2, "train.steps_per_epoch": 4, "train.device": "cpu"}
    finals: dict[str, list[float]] = {"plain": [], "cwn": []}
    for method, seed in (("plain", 0), ("cwn", 0), ("cwn", 1)):
        cfg = cfgmod.Config(seed=seed)
        for key, value in {**settings, "model.method": method}.items():
            cfgmod.set_value(cfg, key, value)
        run_dir = runs / f"method={method},seed={seed}"
        assert run(cfg, run_dir) == "completed"
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        finals[method].append(last["val_top1_err"])
    md, out = report(tmp_path, runs)
    acc = pd.read_csv(out / "accuracy.csv").set_index("method")
    assert acc.loc["cwn", "n_seeds"] == 2 and acc.loc["plain", "n_seeds"] == 1
    assert acc.loc["cwn", "top1_err_mean"] == pytest.approx(statistics.mean(finals["cwn"]))
    assert acc.loc["cwn", "top1_err_std"] == pytest.approx(statistics.stdev(finals["cwn"]))
    assert acc.loc["plain", "top1_err_mean"] == pytest.approx(finals["plain"][0])
    listed = pd.read_csv(out / "runs.csv", dtype=str)
    assert (listed.status == "completed").all() and (listed.restarts == "0").all()
    assert listed.git_commit.notna().all() and (listed.hostnames == socket.gethostname()).all()
    assert (pd.read_csv(out / "throughput.csv").img_per_s_per_gpu > 0).all()
    with Image.open(out / "curves_digits_mlp.png") as image:
        image.verify()


def test_device_name_reads_old_and_new_env_records():
    assert device_name({"card": "cpu", "cpu": "Xeon", "gpu": {"names": ["H200"]}}) == "Xeon"  # bench on the CPU
    assert device_name({"card": "H200", "gpu": {"names": ["H100", "H200"]}}) == "H200"  # bench on cuda:1
    assert device_name({"gpu": {"names": ["H100"]}, "cpu": "Xeon"}) == "H100"  # run.json
    assert device_name({"gpu": "H100", "cpu": "Xeon"}) == device_name({"gpu": None, "cpu": "H100"}) == "H100"  # old bench


def test_report_md_keeps_hostile_names_and_values_inert(tmp_path):
    hostile = "<img src=x onerror=alert(1)>|[link](javascript:x)\nnext"
    write_run(tmp_path / "runs", "a<b>|c", [10.0], method=hostile)
    md, _ = report(tmp_path, tmp_path / "runs")
    text = md.read_text()
    assert "<img" not in text and "<b>" not in text and "&lt;img" in text
    assert not re.search(r"(?<!\\)\]\(javascript", text) and r"\[link\](javascript" in text  # no live link
    assert any(line.startswith("| ") and "onerror" in line for line in text.splitlines())
    tables = re.findall(r"(?m)(?:^\|.*\n)+", text)
    for table in tables:  # every row of a table has its header's cells: no cell split or row broken
        cells = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(cells) == 1, table


def test_a_failed_write_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    write_run(tmp_path / "runs", "r", [10.0])
    md, out = report(tmp_path, tmp_path / "runs")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name == "report.md":
            raise OSError(28, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(UserError, match=r"report.md: cannot write the report \(No space left on device\)"):
        report(tmp_path, tmp_path / "runs")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]  # no temporary folder left


def test_out_holding_other_files_is_refused(tmp_path):
    write_run(tmp_path / "runs", "r", [10.0])
    with pytest.raises(UserError, match="holds files a report does not write .*r"):
        write_report([tmp_path / "runs"], tmp_path / "runs")
    assert (tmp_path / "runs" / "r" / "run.json").exists()


def test_paper_tables_1_and_2_matched_by_method_and_init(tmp_path):
    runs = tmp_path / "runs"
    for method in ("nnn", "cwn"):
        for init in ("default", "xavier", "he"):
            write_run(runs, f"{method}-{init}", [20.0], method=method, model="mlp", dataset="svhn",
                      settings={"model.init": init})
    write_run(runs, "cwn-bn", [20.0], model="mlp", dataset="svhn", settings={"model.batchnorm": True})
    md, out = report(tmp_path, runs)
    acc = pd.read_csv(out / "accuracy.csv", keep_default_na=False).set_index(["method", "init", "batchnorm"])
    paper = acc.paper_top1_err.replace("", float("nan")).astype(float)
    assert paper[("nnn", "default", False)] == 17.99 and paper[("cwn", "default", False)] == 16.16  # Table 1
    assert paper[("nnn", "xavier", False)] == 17.83 and paper[("cwn", "he", False)] == 16.71  # Table 2
    assert acc.paper_source[("cwn", "xavier", False)] == "Table 2, Xavier-Init"
    assert pd.isna(paper[("cwn", "default", True)])  # Figure 4a (MLP + BN) prints no number
