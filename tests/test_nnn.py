"""NNN (the paper's natural neural network baseline): the layer's math, its own update hook,
resume state, DDP, and re-estimation on schedule inside a real training run."""

from __future__ import annotations

import copy
import os
import signal
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cwn_bench.config import load_config
from cwn_bench.errors import UserError
from cwn_bench.models import build
from cwn_bench.nn import NNNLinear, convert, pca_whitening
from cwn_bench.train import checkpoint, run
from tests.test_train import cli, records, start_slow, train_two_ranks, wait_for_line, without_timing, write_config


def correlated(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``[n, d]`` inputs with a non-zero mean and a far-from-identity covariance."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix + 3.0


def test_whitened_inputs_have_identity_covariance():
    x = correlated(500, 6)
    mu, u, u_inv = pca_whitening(x, 1e-9)
    z = (x - mu) @ u.T
    torch.testing.assert_close(z.mean(0), torch.zeros(6, dtype=x.dtype), atol=1e-9, rtol=0)
    torch.testing.assert_close(z.T @ z / len(x), torch.eye(6, dtype=x.dtype), atol=1e-6, rtol=0)
    torch.testing.assert_close(u @ u_inv, torch.eye(6, dtype=x.dtype))
    # the damping is added to the covariance: Sigma + eps I = U^-1 U^-T
    sigma = torch.cov(x.T, correction=0)
    _, _, u_inv = pca_whitening(x, 0.5)
    torch.testing.assert_close(u_inv @ u_inv.T, sigma + 0.5 * torch.eye(6, dtype=x.dtype), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_output_unchanged_across_a_reestimation(dtype, tol):
    torch.manual_seed(0)
    layer = NNNLinear(6, 4, dtype=dtype, nnn_eps=0.1)
    probe = correlated(7, 6, seed=1).to(dtype)
    for seed in (2, 3):  # the second re-estimation starts from mu != 0, U != I
        before = layer(probe).detach()
        layer.reestimate(correlated(64, 6, seed=seed).to(dtype))
        torch.testing.assert_close(layer(probe).detach(), before, rtol=tol, atol=tol)
    assert not torch.allclose(layer.U, torch.eye(6, dtype=dtype)) and layer.mu.abs().min() > 1
    # the layer computes (x - mu) U^T V^T + c, gradients reach V and c only
    torch.testing.assert_close(layer(probe), (probe - layer.mu) @ layer.U.T @ layer.v.T + layer.bias)
    torch.testing.assert_close(layer(probe), layer.fim_input(probe) @ layer.v.T + layer.bias)  # Figure 2's FIM input
    assert {n for n, _ in layer.named_parameters()} == {"v", "bias"}
    assert {n for n, _ in layer.named_buffers()} == {"mu", "U"}


def _mlp(interval: int) -> nn.Module:
    torch.manual_seed(0)
    return build("mlp", 3, "nnn", in_shape=(5,), hidden=[4], nnn_interval=interval, nnn_first_plain=False)


def _train(model: nn.Module, steps: int, optimizer: torch.optim.Optimizer | None = None) -> None:
    opt = optimizer or torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_the_layer_counts_optimizer_updates_not_forwards():
    model = _mlp(interval=3)
    with torch.no_grad():
        model(torch.randn(4, 5))  # forwards without a step move nothing
    _train(model, 7)
    assert [(m.updates, m.reestimations) for m in (model.fc1, model.classifier)] == [(7, 2), (7, 2)]
    other = nn.Linear(2, 2)  # an optimizer that does not hold the layer's parameters
    torch.optim.SGD(other.parameters(), lr=0.1).step()
    assert model.fc1.updates == 7
    twin = copy.deepcopy(model)  # a copy (EMA, fold) counts its own updates
    _train(twin, 2)
    assert (twin.fc1.updates, twin.fc1.reestimations, model.fc1.updates) == (9, 3, 7)


def test_state_dict_carries_the_schedule_and_resume_is_exact():
    model = _mlp(interval=4)
    _train(model, 6)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = copy.deepcopy(model.state_dict())
    assert state["fc1._extra_state"] == {"updates": 6, "reestimations": 1}
    fresh = _mlp(interval=4)
    fresh.load_state_dict(state)
    _train(model, 5, opt)
    _train(fresh, 5, torch.optim.SGD(fresh.parameters(), lr=0.1))
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert a == b if name.endswith("_extra_state") else torch.equal(a, b), name
    assert model.fc1.reestimations == 2  # at update 8, from the counter restored at 6


def test_conv_models_are_one_clear_error_naming_the_layer():
    with pytest.raises(UserError, match=r"model.method: nnn .* layer 'features.0' is a Conv2d"):
        build("vgg_a", 10, "nnn", in_shape=(3, 32, 32))
    with pytest.raises(UserError, match="'stem.conv'"):
        convert(build("resnet56", 10, in_shape=(3, 32, 32)), "nnn", exclude=["fc"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, x: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Sequential(NNNLinear(5, 3, nnn_interval=1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x[:2] if rank == 0 else x[2:]).square().mean().backward()  # 2 and 4 rows: unequal local batches
    opt.step()
    torch.save(dict(model.module.state_dict()), f"{out}.{rank}")
    dist.destroy_process_group()


def test_ddp_ranks_reestimate_from_the_global_batch_identically(tmp_path):
    x = correlated(8, 5).float()
    out = str(tmp_path / "state")
    mp.spawn(_ddp_worker, args=(2, _free_port(), x[:6], out), nprocs=2)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ("0.v", "0.bias", "0.mu", "0.U"))
    mu, u, _ = pca_whitening(x[:6], 1.0)  # the union of both ranks' inputs
    torch.testing.assert_close(ranks[0]["0.mu"], mu)
    torch.testing.assert_close(ranks[0]["0.U"], u, rtol=1e-4, atol=1e-5)


def test_reestimates_on_schedule_inside_a_real_training_run(tmp_path, digits_root):
    """cwn_bench.train.run knows nothing of NNN: 2 epochs of 45 updates, re-whitening every 20."""
    config = write_config(tmp_path, digits_root, model={"method": "nnn", "nnn_interval": 20, "nnn_eps": 0.1})
    assert run(load_config(config), tmp_path / "run") == "completed"
    state = checkpoint.load(sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.pt"))[-1])["model"]
    assert state["fc2._extra_state"] == state["classifier._extra_state"] == {"updates": 90, "reestimations": 4}
    assert "fc1._extra_state" not in state  # the first linear stays plain, as the authors' NNN MLP
    assert not torch.allclose(state["fc2.U"], torch.eye(32)) and state["fc2.mu"].abs().sum() > 0


def _final_state(run_dir):
    return checkpoint.load(sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1])["model"]


@pytest.mark.slow
def test_sigterm_then_resume_with_nnn_is_exact(tmp_path, digits_root):
    """Stopped near step 10 (before the re-whitening at 20), resumed: bitwise the weights,
    U, mu and schedule of the uninterrupted run."""
    config = write_config(tmp_path, digits_root, model={"method": "nnn", "nnn_interval": 20})
    assert run(load_config(config), tmp_path / "ref") == "completed"
    proc = start_slow(config, tmp_path / "run")
    wait_for_line(proc, "epoch 1/2 step 10/45")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3
    stopped = _final_state(tmp_path / "run")["fc2._extra_state"]
    assert 10 <= stopped["updates"] < 20 and stopped["reestimations"] == 0
    resumed = cli("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert resumed.returncode == 0, resumed.stderr
    got, want = _final_state(tmp_path / "run"), _final_state(tmp_path / "ref")
    assert got.keys() == want.keys() and want["fc2._extra_state"] == {"updates": 90, "reestimations": 4}
    for key, value in want.items():
        assert got[key] == value if key.endswith("_extra_state") else torch.equal(got[key], value), key
    assert without_timing(records(tmp_path / "run", "epoch")) == without_timing(records(tmp_path / "ref", "epoch"))


def _effective(state, layer):
    """(W, b) of the plain layer equivalent to NNN layer ``layer`` of a checkpoint's model:
    U and V themselves are defined up to the eigenvectors' signs, the function is not."""
    w = state[f"{layer}.v"].double() @ state[f"{layer}.U"].double()
    return w, state[f"{layer}.bias"].double() - w @ state[f"{layer}.mu"].double()


@pytest.mark.slow
def test_two_rank_ddp_with_nnn_equals_one_process_with_the_global_batch(tmp_path, digits_root):
    """2 ranks x 16 images re-whiten from the all-gathered 32, as 1 process x 32 does."""
    config = write_config(tmp_path, digits_root, model={"method": "nnn", "nnn_interval": 20},
                          train={"checkpoint_every_steps": None})
    assert run(load_config(config), tmp_path / "single") == "completed"
    procs, outs = train_two_ranks(config, tmp_path / "ddp")
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    got, want = _final_state(tmp_path / "ddp"), _final_state(tmp_path / "single")
    assert got["fc2._extra_state"] == want["fc2._extra_state"] == {"updates": 90, "reestimations": 4}
    for layer in ("fc2", "classifier"):
        for a, b in zip(_effective(got, layer), _effective(want, layer)):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
