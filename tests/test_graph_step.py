"""What ``train.cuda_graph`` prepares on the host, checked without a GPU: the optimizer made
capturable (no host read of its tensor learning rate), the early refusals, and the GPU
check's toolchain preflight and tqdm-free progress (a bare GPU box has neither tqdm nor, maybe, gcc)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cwn_bench.config import from_dict
from cwn_bench.errors import UserError
from cwn_bench.train.graph_step import capturable, check
from cwn_bench.train.optim import set_lr


class HostReads(TorchDispatchMode):
    """Counts ``aten._local_scalar_dense``: a tensor's value read on the host (``.item()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.reads += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def _trained(make_tensor_lr: bool) -> tuple[list[torch.Tensor], int]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    if make_tensor_lr:
        capturable(opt, torch.device("cpu"))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    reads = 0
    for step, lr in enumerate((0.1, 0.05, 0.02)):
        set_lr(opt, lr)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with HostReads() as mode:
            opt.step()
        reads += mode.reads
    return [p.detach().clone() for p in model.parameters()], reads


def test_a_capturable_sgd_never_reads_its_tensor_lr_on_the_host_and_steps_as_plain_sgd():
    reference, _ = _trained(make_tensor_lr=False)
    graphed, reads = _trained(make_tensor_lr=True)
    assert reads == 0  # SGD's foreach path would .item() the tensor lr at every step: a sync a capture refuses
    for a, b in zip(reference, graphed):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_capturable_adam_gets_its_restored_step_counters_as_float_tensors_on_the_device():
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    opt.load_state_dict(opt.state_dict())  # as a resume restores it
    capturable(opt, torch.device("cpu"))
    assert opt.param_groups[0]["capturable"] is True and torch.is_tensor(opt.param_groups[0]["lr"])
    assert all(s["step"].dtype == torch.float32 for s in opt.state.values())


def test_nnn_with_cuda_graphs_is_refused_before_training():
    cfg = from_dict({"model": {"name": "mlp", "method": "nnn"}, "train": {"cuda_graph": True}}, "t")
    with pytest.raises(UserError, match="model.method=nnn"):
        check(cfg, torch.device("cuda"))  # a device object only: nothing runs on it


def test_the_gpu_check_names_a_missing_compiler_before_any_part(monkeypatch, capsys, tmp_path):
    from cwn_bench.bench import gpu_check

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no gcc, no clang
    assert "no C compiler" in gpu_check.toolchain_problem()
    monkeypatch.setattr(gpu_check, "resolve_device", lambda name: torch.device("cuda"))
    assert gpu_check.main(["--results-root", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("gpu-check: error: no C compiler")
    assert not (tmp_path / "r").exists()  # stopped before writing anything


def test_progress_on_a_terminal_without_tqdm_prints_plain_lines(monkeypatch, capsys):
    from cwn_bench.train.progress import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress = Progress(True, 1, 2)
    progress.start_epoch(0, 4, 0)
    progress.step(1, 0.5, 0.1, 100.0, 0.0)
    assert "epoch 1/2 step 1/4  loss 0.5000" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_a_graphed_run_s_checkpoint_resumes_without_graphs_as_a_run_that_never_had_them(name):
    from cwn_bench.train.optim import load_optimizer_state

    def built() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = nn.Linear(3, 2)
        make = torch.optim.SGD if name == "sgd" else torch.optim.Adam
        return model, make(model.parameters(), lr=0.1, **({"momentum": 0.9} if name == "sgd" else {}))

    def step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()
        model(torch.ones(4, 3)).sum().backward()
        opt.step()

    graphed_model, graphed = built()
    step(graphed_model, graphed)  # before capturable(): a capturable Adam steps on a GPU only
    capturable(graphed, torch.device("cpu"))
    saved = graphed.state_dict()  # as a graphed run checkpoints it: tensor lr, fused SGD, capturable Adam
    assert torch.is_tensor(saved["param_groups"][0]["lr"])
    model, plain = built()
    model.load_state_dict(graphed_model.state_dict())
    load_optimizer_state(plain, saved)
    group = plain.param_groups[0]
    assert group["lr"] == 0.1 and not torch.is_tensor(group["lr"])  # a tensor lr would be .item()'d every step
    assert not group.get("fused") and not group.get("capturable")
    step(model, plain)  # a capturable Adam's state would refuse this step on the CPU
    assert all(not torch.is_tensor(v) or v.device.type == "cpu" for s in plain.state.values() for v in s.values())
