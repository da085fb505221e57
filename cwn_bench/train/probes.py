"""Figure 2's probes (Huang et al. 2017): per-layer pre-activation statistics and the
condition number of a layer's relative Fisher information matrix, as ``metrics.jsonl`` records.

Off unless ``train.probe_every`` or ``train.fim_layers`` is set. The trainer builds one
:class:`Probes` (rank 0 only) and calls :meth:`Probes.after_step` after every optimizer step
(it arms the hooks for the next one; between probe steps the call returns ``[]`` at once);
everything here reads the model and its outputs and changes nothing: no RNG stream is drawn
from, no batch altered, no parameter gradient or buffer written, so a run with probes trains
bitwise the same weights as one without (tests/test_probes.py).

- ``probe`` records, every ``probe_every`` steps: for every linear/conv layer (module path),
  the mean and the variance (1/n) of its output, pre-activation (before BN and ReLU), over
  all the elements of that step's training batch (batch x neurons, x positions for a conv),
  taken by a forward hook during the step's own forward (weights before the step's update).
  With DDP, rank 0's share of the batch.
- ``fim`` records, every ``fim_every`` steps (default ``probe_every``), for each layer of
  ``fim_layers``: as the authors' NormLinear_new.lua, per sample i the gradient of the loss
  w.r.t. the layer's weight, ``G_i = dL_i/dy_i x_i^T`` (x: the layer's input; for a layer
  with a ``fim_input(x)`` method, e.g. NNN, what it returns: the whitened input its learned
  matrix multiplies), ``F = mean_i vec(G_i) vec(G_i)^T``, singular values + 1e-100, cond =
  max / min. With fewer samples than F's size (out*in) F is singular: ``rank`` is its
  numerical rank (numpy's ``matrix_rank`` tolerance) and ``cond`` the condition of the
  non-zero spectrum (the authors' number when ``rank == size``). The samples are a fixed probe
  set of ``fim_samples`` training images (evaluation crop) drawn once per run from a generator
  seeded by (run seed, ``FIM_TAG``) and held on the device; the pass runs the model in eval
  mode (BN uses running statistics, no dropout), with plain cross-entropy, after the step's
  update. A layer used in an eval-mode forward must not change its state (NNN: no
  re-estimation, no recorded inputs).

Cost: a probe step syncs with the device once; between probe steps the hooks test one flag.
Measured in the README ("Figure 2 probes").
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cwn_bench.config import Config
from cwn_bench.data.augment import mix_seed
from cwn_bench.data.module import DataModule
from cwn_bench.errors import UserError

PROBED = (nn.Linear, nn.Conv2d)  # subclasses included: WN/CWN layers (and an NNN layer deriving from nn.Linear)
EPS = 1e-100  # added to every singular value, as the authors' code
FIM_TAG = 0xF15  # mixed with the run seed: the probe set's own stream
CHUNK = 256  # probe-set images per forward of the FIM pass


def probed_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> layer for every linear/conv layer of ``model`` (or one with ``fim_input``)."""
    return {name: m for name, m in model.named_modules() if name and (isinstance(m, PROBED) or hasattr(m, "fim_input"))}


def fim_condition(grad_out: Tensor, inputs: Tensor) -> tuple[float | None, int, int]:
    """``(cond, rank, size)`` of ``F = mean_i vec(g_i x_i^T) vec(g_i x_i^T)^T`` for per-sample
    output gradients ``grad_out`` ``[N, out]`` and inputs ``inputs`` ``[N, in]``; ``size = out*in``.

    Computed in float64 from the smaller of F (``[size, size]``, when N > size) and the Gram
    matrix of the vec(G_i) (``[N, N]``: ``(g g^T) * (x x^T) / N``, the same non-zero spectrum),
    so a 2304-wide F costs an N x N eigen-decomposition. cond is None when F is zero."""
    g, x = grad_out.double(), inputs.double()
    n, size = g.shape[0], g.shape[1] * x.shape[1]
    if n > size:
        rows = (g[:, :, None] * x[:, None, :]).reshape(n, size)  # vec(G_i), row-major like torch.reshape
        mat = rows.T @ rows / n
    else:
        mat = (g @ g.T) * (x @ x.T) / n
    spectrum = torch.linalg.eigvalsh(mat).abs().sort(descending=True).values  # PSD: singular values = |eigenvalues|
    tol = spectrum[0] * size * torch.finfo(torch.float64).eps
    rank = int((spectrum > tol).sum())
    if rank == 0:
        return None, 0, size
    return float((spectrum[0] + EPS) / (spectrum[rank - 1] + EPS)), rank, size


class Probes:
    """The probes of one run (see the module docstring). ``start_step``: the global step
    already done (resume), so the hooks know whether the next step is a probe step."""

    def __init__(self, cfg: Config, model: nn.Module, data: DataModule, start_step: int) -> None:
        t = cfg.train
        self.model, self.every = model, t.probe_every
        self.fim_every = t.fim_every or t.probe_every
        self.layers = probed_layers(model)
        self.fim_layers = check(cfg, model)
        self.stats: dict[str, Tensor] = {}  # layer -> [mean, var] of the armed step's forward
        self.armed = bool(self.every) and (start_step + 1) % self.every == 0
        if self.every:
            for name, layer in self.layers.items():
                layer.register_forward_hook(partial(self._record, name))
        self.fim_seed = mix_seed(cfg.seed, FIM_TAG)
        self.probe_set: tuple[Tensor, Tensor] | None = None
        if self.fim_layers:
            n = min(t.fim_samples, data.train_size)
            gen = torch.Generator().manual_seed(self.fim_seed)  # never the training streams
            self.probe_set = data.train_samples(torch.randperm(data.train_size, generator=gen)[:n].tolist())

    def info(self) -> dict[str, Any]:
        """What run.json records of the probes: the probe set's seed and size."""
        samples = 0 if self.probe_set is None else len(self.probe_set[1])
        return {"fim_probe_set": {"seed": self.fim_seed, "samples": samples}} if self.fim_layers else {}

    def _record(self, name: str, module: nn.Module, inputs: Any, output: Tensor) -> None:
        if self.armed and module.training and torch.is_grad_enabled():  # the step's forward, not eval / FIM passes
            var, mean = torch.var_mean(output.detach().float(), correction=0)
            self.stats[name] = torch.stack([mean, var])

    def after_step(self, epoch: int, step: int) -> list[dict[str, Any]]:
        """The records due after global step ``step`` (counting from 1) of ``epoch`` (from 1),
        and the hooks armed for the next step. Syncs with the device on probe steps only."""
        records: list[dict[str, Any]] = []
        if self.stats:
            names = [n for n in self.layers if n in self.stats]
            values = torch.stack([self.stats[n] for n in names]).tolist()
            records += [{"kind": "probe", "epoch": epoch, "step": step, "layer": n, "preact_mean": m, "preact_var": v}
                        for n, (m, v) in zip(names, values)]
            self.stats.clear()
        if self.fim_layers and step % self.fim_every == 0:
            samples = len(self.probe_set[1])
            records += [{"kind": "fim", "epoch": epoch, "step": step, "layer": name, "cond": cond, "rank": rank,
                         "samples": samples, "size": size}
                        for name, (cond, rank, size) in zip(self.fim_layers, self.fim())]
        self.armed = bool(self.every) and (step + 1) % self.every == 0
        return records

    def fim(self) -> list[tuple[float | None, int, int]]:
        """:func:`fim_condition` of each of ``fim_layers`` on the probe set, current weights."""
        images, labels = self.probe_set
        seen: dict[str, tuple[Tensor, Tensor]] = {}

        def grab(name: str, module: nn.Module, inputs: Any, output: Tensor) -> None:
            x = inputs[0].detach()
            if x.ndim != 2:
                raise UserError(f"train.fim_layers: '{name}' gets input of shape {tuple(x.shape)}; "
                                "expected [batch, features]")
            seen[name] = (module.fim_input(x).detach() if hasattr(module, "fim_input") else x, output)

        handles = [self.model.get_submodule(n).register_forward_hook(partial(grab, n)) for n in self.fim_layers]
        grads: dict[str, list[Tensor]] = {n: [] for n in self.fim_layers}
        xs: dict[str, list[Tensor]] = {n: [] for n in self.fim_layers}
        training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                for lo in range(0, len(labels), CHUNK):
                    seen.clear()
                    logits = self.model(images[lo:lo + CHUNK])
                    # summed: each sample's gradient is that of its own loss (eval mode: no coupling in the batch)
                    loss = F.cross_entropy(logits.float(), labels[lo:lo + CHUNK], reduction="sum")
                    outs = torch.autograd.grad(loss, [seen[n][1] for n in self.fim_layers])  # no parameter .grad
                    for name, g in zip(self.fim_layers, outs):
                        grads[name].append(g.detach())
                        xs[name].append(seen[name][0])
        finally:
            for h in handles:
                h.remove()
            self.model.train(training)
        return [fim_condition(torch.cat(grads[n]), torch.cat(xs[n])) for n in self.fim_layers]


def check(cfg: Config, model: nn.Module) -> list[str]:
    """The probe keys of ``cfg`` checked against ``model``: its ``train.fim_layers`` (a
    UserError names a bad value or layer)."""
    t = cfg.train
    for key in ("probe_every", "fim_every", "fim_samples"):
        if getattr(t, key) is not None and getattr(t, key) < 1:
            raise UserError(f"train.{key}={getattr(t, key)}: expected at least 1")
    if t.fim_layers and (t.fim_every or t.probe_every) is None:
        raise UserError("train.fim_layers is set but neither train.fim_every nor train.probe_every: "
                        "say how many steps apart the FIM is probed")
    layers = probed_layers(model)
    linears = [n for n, m in layers.items() if isinstance(m, nn.Linear) or hasattr(m, "fim_input")]
    for name in t.fim_layers:
        if name not in layers:
            raise UserError(f"train.fim_layers: '{name}' is not a linear layer of the model; its linear layers: "
                            f"{', '.join(linears) or 'none'}")
        if name not in linears:
            raise UserError(f"train.fim_layers: '{name}' is a {type(layers[name]).__name__}; the FIM probe takes "
                            "linear layers (a conv's F has (out*in*k*k)^2 entries)")
    return list(t.fim_layers)


def build(cfg: Config, model: nn.Module, data: DataModule, start_step: int, enabled: bool = True) -> Probes | None:
    """The run's :class:`Probes` (None when ``train.probe_every`` and ``train.fim_layers`` are
    unset, or not ``enabled``: ranks other than 0, which only :func:`check` the keys, so a bad
    one stops every rank at once)."""
    if cfg.train.probe_every is None and not cfg.train.fim_layers:
        return None
    check(cfg, model)
    return Probes(cfg, model, data, start_step) if enabled else None

