"""Configs: strict validation, overrides, sweeps, hashes, and `cwn-bench config`."""

import subprocess
import sys

import pytest

from cwn_bench import config as C

BASE = """
model: {name: mlp, method: cwn, hidden: [32, 16]}
optim: {lr: 0.5}
sweep:
  model.method: [plain, wn, cwn]
  seed: [0, 1]
"""


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(BASE)
    return path


def test_load_applies_defaults_name_and_types(cfg_file):
    cfg = C.load_config(cfg_file)
    assert cfg.name == "exp" and cfg.model.hidden == [32, 16] and cfg.optim.lr == 0.5
    assert cfg.optim.momentum == 0.9 and cfg.train.amp == "none"
    assert cfg.model.method == "cwn"  # train runs the base values alone


def test_overrides_parse_yaml_and_replace_swept_key(cfg_file):
    cfg = C.load_config(cfg_file, ["model.hidden=[128,64,48,48]", "train.amp=bf16", "model.method=wn", "optim.lr=1"])
    assert cfg.model.hidden == [128, 64, 48, 48] and cfg.train.amp == "bf16"
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.sweep == {"seed": [0, 1]}  # the override replaced the method list by one value
    assert [p for p, _ in C.expand_sweep(cfg)] == [{"seed": 0}, {"seed": 1}]


def test_sweep_cartesian_product_and_hashes(cfg_file):
    cfg = C.load_config(cfg_file)
    runs = C.expand_sweep(cfg)
    assert len(runs) == 6
    assert [C.run_name(p) for p, _ in runs][:2] == ["method=plain,seed=0", "method=plain,seed=1"]
    for point, run in runs:
        assert run.model.method == point["model.method"] and run.seed == point["seed"] and run.sweep == {}
    hashes = {(r.model.method, r.seed): C.config_hash(r) for _, r in runs}
    assert hashes["cwn", 0] == hashes["cwn", 1]  # the seed is left out
    assert hashes["cwn", 0] != hashes["wn", 0]
    assert C.config_hash(runs[0][1]) == C.config_hash(C.from_dict(C.to_dict(runs[0][1])))  # stable
    assert C.sweep_hash(cfg) != C.sweep_hash(C.load_config(cfg_file, ["seed=5"]))


@pytest.mark.parametrize("text,message", [
    ("model: {nme: mlp}", "unknown key 'model.nme'; valid keys in model: name, method"),
    ("modle: {name: mlp}", "unknown key 'modle'; valid keys in the top level: name, seed, model"),
    ("train: {epochs: ten}", "key 'train.epochs': expected int, got str 'ten'"),
    ("train: {amp: fp8}", "key 'train.amp': expected one of 'none', 'bf16', 'fp16'"),
    ("model: {hidden: [1, x]}", r"key 'model.hidden'\[1\]: expected int"),
    ("train: {deterministic: 1}", "key 'train.deterministic': expected bool"),
    ("sweep: {model.methd: [cwn]}", "unknown key 'model.methd'"),
    ("sweep: {seed: []}", "sweep key 'seed' needs a non-empty list"),
    ("model: [1, 2]", "model must be a mapping"),
    ("model: {name: mlp", "not valid YAML"),
])
def test_errors_name_file_key_and_expectation(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(C.ConfigError, match=message) as err:
        C.load_config(path)
    assert str(path) in str(err.value)


def test_override_errors():
    with pytest.raises(C.ConfigError, match="expected KEY=VALUE"):
        C.parse_override("train.epochs")
    with pytest.raises(C.ConfigError, match="'model' is a section"):
        C.set_value(C.Config(), "model", {"name": "mlp"})
    with pytest.raises(C.ConfigError, match="key 'optim.lr': expected float"):
        C.set_value(C.Config(), "optim.lr", "fast")


def test_minimums_hold_wherever_a_key_is_typed():
    # not only load_config: run.json configs and `bench data` go through from_dict, sweeps through set_value
    with pytest.raises(C.ConfigError, match=r"bench data: key 'train.batch_size': expected at least 1, got 0"):
        C.from_dict({"train": {"batch_size": 0}}, "bench data")
    cfg = C.from_dict({})
    with pytest.raises(C.ConfigError, match=r"sweep: key 'data.workers': expected at least 0, got -1"):
        C.set_value(cfg, "data.workers", -1, "sweep")
    C.set_value(cfg, "train.steps_per_epoch", None)  # None (no cap) is not held to the minimum
    assert cfg.train.steps_per_epoch is None


def test_missing_file_named(tmp_path):
    with pytest.raises(C.ConfigError, match="nope.yaml: cannot read config"):
        C.load_config(tmp_path / "nope.yaml")


def test_yaml_is_safe_loaded(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load_config(path)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cwn_bench.cli", "config", *args], capture_output=True, text=True)


def test_cli_prints_resolved_config_hash_and_runs(cfg_file):
    proc = _cli(str(cfg_file), "train.epochs=3")
    assert proc.returncode == 0, proc.stderr
    assert "epochs: 3" in proc.stdout and "# sweep: 6 run(s)" in proc.stdout
    assert f"# config_hash: {C.config_hash(C.load_config(cfg_file, ['train.epochs=3']))}" in proc.stdout
    assert "method=wn,seed=1" in proc.stdout


def test_cli_error_is_one_line_without_traceback(cfg_file):
    proc = _cli(str(cfg_file), "train.epoch=3")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "unknown key 'train.epoch'" in proc.stderr and "epochs" in proc.stderr
