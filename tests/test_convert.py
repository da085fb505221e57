"""convert() on real torchvision models, fold(), and DDP over gloo with 2 processes."""

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision
from torch import nn

from cwn_bench.nn import (
    CWNConv2d, CWNLinear, NNNLinear, WNConv2d, WNLinear, centered_weight_norm, convert, fold, weight_norm)


@pytest.fixture(scope="module", params=["resnet18", "googlenet"])
def tv_model(request):
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": True} if request.param == "googlenet" else {}
    return getattr(torchvision.models, request.param)(num_classes=10, **kwargs).eval()


@pytest.mark.parametrize("method,normalize", [("cwn", centered_weight_norm), ("wn", weight_norm)])
def test_convert_keeps_names_shapes_and_matches_reference(tv_model, method, normalize):
    plain = {n: m for n, m in tv_model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    model = convert(copy.deepcopy(tv_model), method)
    layers = {"cwn": (CWNConv2d, CWNLinear), "wn": (WNConv2d, WNLinear)}[method]
    for name, old in plain.items():
        new = model.get_submodule(name)
        assert isinstance(new, layers), name
        assert new.v.shape == old.weight.shape and torch.equal(new.v, old.weight), name
        assert torch.equal(new.g, torch.ones(old.weight.shape[0]))
        with torch.no_grad():
            torch.testing.assert_close(new.weight, normalize(old.weight, torch.ones(old.weight.shape[0])))
    # every state_dict entry except plain weights keeps its key and shape
    before, after = tv_model.state_dict(), model.state_dict()
    for key, value in before.items():
        if key.removesuffix(".weight") in plain and key.endswith(".weight"):
            assert after[key.removesuffix("weight") + "v"].shape == value.shape
        else:
            assert after[key].shape == value.shape, key
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == tv_model(x).shape == (2, 10)


def test_convert_exclude_and_plain_round_trip():
    model = torchvision.models.resnet18(num_classes=4)
    convert(model, "cwn", exclude=["conv1", "fc"])
    assert type(model.conv1) is nn.Conv2d and type(model.fc) is nn.Linear
    assert isinstance(model.layer1[0].conv1, CWNConv2d)
    convert(model, "plain")
    assert not any(isinstance(m, (CWNConv2d, CWNLinear)) for m in model.modules())
    with pytest.raises(ValueError, match="unknown method 'bn'; expected one of plain, wn, cwn"):
        convert(model, "bn")


def test_fold_equivalent_and_leaves_argument_untouched(tv_model):
    model = convert(copy.deepcopy(tv_model), "cwn")
    with torch.no_grad():  # move away from g=1 so the fold has something to fold
        for m in model.modules():
            if isinstance(m, CWNConv2d):
                m.g.uniform_(0.5, 2.0)
    snapshot = copy.deepcopy(model.state_dict())
    folded = fold(model)
    assert not any(isinstance(m, (CWNConv2d, CWNLinear)) for m in folded.modules())
    assert all(torch.equal(v, snapshot[k]) for k, v in model.state_dict().items())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(CWNConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), CWNLinear(8 * 6 * 6, 5))


def _ddp_worker(rank: int, world: int, port: int, x: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = nn.parallel.DistributedDataParallel(_tiny_model())
    model(x.chunk(world)[rank]).square().mean().backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.module.named_parameters()}, out)
    dist.destroy_process_group()


def test_ddp_gloo_two_processes_equal_single_process_gradients(tmp_path):
    x = torch.randn(4, 3, 6, 6)
    out = str(tmp_path / "grads.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), x, out), nprocs=2)
    ddp_grads = torch.load(out, weights_only=True)
    single = _tiny_model()
    # DDP averages the per-rank mean losses: equal to the mean over the whole batch
    single(x).square().mean().backward()
    for name, p in single.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-5, atol=1e-6)


def _small(method):
    torch.manual_seed(0)
    if method == "nnn":  # linear layers only
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 4, bias=False))
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 5))


@pytest.mark.parametrize("method", ["plain", "wn", "cwn", "nnn", "ws"])
def test_fold_equals_the_unfolded_model_for_every_method(method):
    model = convert(_small(method), method, scale="fixed", scale_value=1.5, nnn_interval=1)
    x = torch.randn(6, 3, 2, 2)
    with torch.no_grad():
        for m in model.modules():
            if method == "nnn" and isinstance(m, NNNLinear):
                m.reestimate(torch.randn(32, m.in_features) * 2 + 1)  # mu != 0, U != I
            elif hasattr(m, "v"):
                m.v.mul_(3).add_(0.5)
    folded = fold(model)
    assert {type(m) for m in folded.modules()} & {nn.Conv2d, nn.Linear}
    assert all(type(m) in (nn.Conv2d, nn.Linear) for m in folded.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    if method in ("wn", "cwn"):  # the fixed scale reached every layer
        assert all(torch.equal(m.g, torch.full_like(m.g, 1.5)) for m in model.modules() if hasattr(m, "g"))
    if method == "nnn":  # a bias-free linear gets NNN's c, and folds back with it
        assert model[3].bias is not None and folded[3].bias is not None


def test_convert_rejects_unknown_layer_options():
    with pytest.raises(TypeError, match="unknown layer options \\['gain'\\]"):
        convert(_small("cwn"), "cwn", gain=2.0)
