"""Figure 2 probes: pre-activation statistics and the relative-FIM condition number against
computations written out independently (numpy, per-sample backward passes), and a run with
probes on training bitwise the same weights as one without."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cwn_bench.config import Config, ModelConfig, load_config
from cwn_bench.errors import UserError
from cwn_bench.models import build
from cwn_bench.nn import fold
from cwn_bench.train import checkpoint, run
from cwn_bench.train.probes import Probes, fim_condition


def tiny_mlp(method: str = "plain", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build("mlp", 3, method, in_shape=(1, 2, 3), hidden=(5, 4))  # fc1 6->5, fc2 5->4, classifier 4->3


def probe_config(**train: object) -> Config:
    cfg = Config()
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


class FixedData:
    """What Probes reads of a data module: ``train_size`` and ``train_samples``."""

    def __init__(self, n: int, seed: int = 1) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images, self.labels = torch.randn(n, 1, 2, 3, generator=gen), torch.randint(0, 3, (n,), generator=gen)
        self.train_size = n

    def train_samples(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[indices], self.labels[indices]


def test_probe_records_equal_a_hand_computation():
    model = tiny_mlp("cwn")
    probes = Probes(probe_config(probe_every=2), model, FixedData(1), start_step=0)
    x = torch.randn(7, 1, 2, 3)
    model(x).sum().backward()  # step 1: not a probe step
    assert probes.after_step(1, 1) == []
    model(x).sum().backward()  # step 2: armed by step 1
    records = probes.after_step(1, 2)
    # by hand, numpy: effective weights, pre-activations before each ReLU
    h = x.reshape(7, -1).numpy().astype(np.float64)
    expected = {}
    for name in ("fc1", "fc2", "classifier"):
        layer = model.get_submodule(name)
        y = h @ layer.weight.detach().numpy().T.astype(np.float64) + layer.bias.detach().numpy()
        expected[name] = (y.mean(), ((y - y.mean()) ** 2).mean())
        h = np.maximum(y, 0)
    assert [r["layer"] for r in records] == ["fc1", "fc2", "classifier"]
    for r in records:
        assert (r["kind"], r["epoch"], r["step"]) == ("probe", 1, 2)
        assert r["preact_mean"] == pytest.approx(expected[r["layer"]][0], rel=1e-5, abs=1e-6)
        assert r["preact_var"] == pytest.approx(expected[r["layer"]][1], rel=1e-5)
    probes.armed = True
    with torch.no_grad():  # eval / no-grad forwards are never recorded
        model.eval()
        model(x)
    assert probes.after_step(1, 3) == [] and probes.stats == {}


def numpy_fim(model: nn.Module, layer: str, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """The authors' recipe with one backward pass per sample: G_i = the weight's gradient of
    sample i's loss, F = mean vec(G_i) vec(G_i)^T, numpy SVD + 1e-100; (cond of the non-zero
    spectrum, numpy's matrix_rank)."""
    weight = model.get_submodule(layer).weight
    rows = []
    for i in range(len(labels)):
        model.zero_grad()
        F.cross_entropy(model(images[i:i + 1]), labels[i:i + 1]).backward()
        rows.append(weight.grad.numpy().astype(np.float64).reshape(-1))
    fim = sum(np.outer(r, r) for r in rows) / len(rows)
    s = np.linalg.svd(fim, compute_uv=False) + 1e-100
    rank = np.linalg.matrix_rank(fim)
    return s[0] / s[rank - 1], rank


@pytest.mark.parametrize("samples", [60, 8])  # more samples than F's size (20, 12), and fewer
def test_fim_condition_equals_numpy_on_a_tiny_net(samples):
    model = tiny_mlp("plain").eval()
    data = FixedData(100)
    probes = Probes(probe_config(fim_layers=["fc2", "classifier"], fim_every=1, fim_samples=samples),
                    model, data, start_step=0)
    images, labels = probes.probe_set
    assert len(labels) == samples and not probes.model.training
    got = probes.fim()
    for name, (cond, rank, size) in zip(["fc2", "classifier"], got):
        want_cond, want_rank = numpy_fim(model, name, images, labels)
        assert size == model.get_submodule(name).weight.numel()
        assert rank == want_rank and rank <= min(samples, size)
        assert cond == pytest.approx(want_cond, rel=1e-6)
    # the classifier's F is singular by construction: softmax gradients sum to 0 over classes
    assert got[1][1] <= (3 - 1) * 4


def test_fim_of_cwn_is_that_of_its_effective_weights_and_a_whitened_input_is_used():
    model = tiny_mlp("cwn").eval()
    data = FixedData(50)
    cfg = probe_config(fim_layers=["fc2"], fim_every=1, fim_samples=50)
    cwn = Probes(cfg, model, data, 0).fim()[0]
    plain = Probes(cfg, fold(model).eval(), data, 0).fim()[0]
    assert cwn[1:] == plain[1:] and cwn[0] == pytest.approx(plain[0], rel=1e-6)

    class Whitened(nn.Linear):  # an NNN-like layer: y = (x U^T) V^T + c; V is what is learned
        def __init__(self, fan_in: int, fan_out: int) -> None:
            super().__init__(fan_in, fan_out)
            self.register_buffer("u", torch.randn(fan_in, fan_in))

        def fim_input(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.u.T

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(self.fim_input(x), self.weight, self.bias)

    torch.manual_seed(3)
    model.fc2 = Whitened(5, 4)
    got = Probes(cfg, model, data, 0).fim()[0]
    want_cond, want_rank = numpy_fim(model, "fc2", *data.train_samples(list(range(50))))
    assert got[1] == want_rank and got[0] == pytest.approx(want_cond, rel=1e-6)


def test_fim_condition_of_a_zero_gradient_and_bad_layer_names():
    assert fim_condition(torch.zeros(4, 2), torch.ones(4, 3)) == (None, 0, 6)
    model = tiny_mlp()
    with pytest.raises(UserError, match="'fc9' is not a linear layer of the model; its linear layers: fc1, fc2"):
        Probes(probe_config(fim_layers=["fc9"], fim_every=1), model, FixedData(4), 0)
    with pytest.raises(UserError, match="neither train.fim_every nor train.probe_every"):
        Probes(probe_config(fim_layers=["fc1"]), model, FixedData(4), 0)
    with pytest.raises(UserError, match="train.probe_every=0: expected at least 1"):
        Probes(probe_config(probe_every=0), model, FixedData(4), 0)


def _train(tmp_path: Path, digits_root: Path, name: str, *overrides: str) -> Path:
    cfg = load_config("configs/mlp_digits.yaml", [
        f"data.root={digits_root}", "model.hidden=[16,12]", "train.epochs=2", "train.steps_per_epoch=6",
        "train.device=cpu", "train.deterministic=true", "train.log_every=2", "data.holdout=0.1", *overrides])
    run(cfg, tmp_path / name)
    return tmp_path / name


HAS_NNN = "nnn" in typing.get_args(typing.get_type_hints(ModelConfig)["method"])


@pytest.mark.parametrize("method", [
    ["model.method=cwn"],
    pytest.param(["model.method=nnn", "model.nnn_interval=5"], marks=pytest.mark.skipif(
        not HAS_NNN, reason="model.method nnn comes with issue 11 part A")),  # re-whitens at steps 5 and 10
], ids=["cwn", "nnn"])
def test_a_run_with_probes_trains_the_same_weights_and_writes_the_records(tmp_path, digits_root, method):
    bare = _train(tmp_path, digits_root, "bare", *method)
    probed = _train(tmp_path, digits_root, "probed", *method, "train.probe_every=2",
                    "train.fim_layers=[fc2,classifier]", "train.fim_every=3", "train.fim_samples=40")
    ca, cb = (checkpoint.load(sorted((d / "checkpoints").glob("*.pt"))[-1]) for d in (bare, probed))
    a, b = ca["model"], cb["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)  # NNN: counts
    ra, rb = ca["rng"][0], cb["rng"][0]  # no random stream drawn from either
    assert torch.equal(ra["torch"], rb["torch"]) and ra["python"] == rb["python"]
    assert torch.equal(ra["numpy"][1], rb["numpy"][1]) and ra["numpy"][2] == rb["numpy"][2]
    recs = [json.loads(line) for line in (probed / "metrics.jsonl").read_text().splitlines()]
    probe = [r for r in recs if r["kind"] == "probe"]
    fim = [r for r in recs if r["kind"] == "fim"]
    assert sorted({r["step"] for r in probe}) == [2, 4, 6, 8, 10, 12]
    assert {r["layer"] for r in probe} == {"fc1", "fc2", "classifier"} and len(probe) == 18
    assert [(r["step"], r["layer"]) for r in fim] == [(s, n) for s in (3, 6, 9, 12) for n in ("fc2", "classifier")]
    assert all(r["samples"] == 40 and r["rank"] <= 40 and r["cond"] >= 1 for r in fim)
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert all({"holdout_loss", "holdout_top1_err", "holdout_top5_err"} <= r.keys() for r in epochs)
    info = json.loads((probed / "run.json").read_text())
    assert info["holdout_size"] == 144 and info["train_size"] + 144 == 1442 and info["val_size"] == 355
    assert info["split_seeds"] == {"holdout": 0} and info["fim_probe_set"]["samples"] == 40
    assert "fim_probe_set" not in json.loads((bare / "run.json").read_text())


@pytest.mark.slow
def test_probe_records_survive_a_preemption_exactly(tmp_path, digits_root):
    """SIGTERM mid-epoch, then resume: the probe and fim records equal an uninterrupted run's
    (none lost or repeated: metrics.jsonl is cut back to the checkpoint, the hooks re-armed)."""
    import signal

    from test_train import cli, records, start_slow, wait_for_line, write_config

    probes = {"probe_every": 3, "fim_layers": ["fc2", "classifier"], "fim_every": 7, "fim_samples": 32}
    config = write_config(tmp_path, digits_root, train=probes)
    assert run(load_config(config), tmp_path / "ref") == "completed"
    proc = start_slow(config, tmp_path / "run")
    wait_for_line(proc, "epoch 1/2 step 10/45")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3
    resumed = cli("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert resumed.returncode == 0, resumed.stderr
    for kind in ("probe", "fim"):
        want = records(tmp_path / "ref", kind)
        assert records(tmp_path / "run", kind) == want and len(want) == {"probe": 30 * 3, "fim": 12 * 2}[kind]

