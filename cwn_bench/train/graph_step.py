"""``train.cuda_graph: true``: the whole training step (forward, backward, optimizer, CWN's
Triton kernels included) captured once as a CUDA graph and replayed every later step.

After :data:`WARMUP` eager steps on a side stream (real steps of the run: cuDNN autotuning,
Triton compilation, the optimizer's momentum buffers happen there; DDP asks for 11), the
step is captured on static input buffers; each later step copies its batch into them and
replays. The learning rate becomes a device tensor filled before each replay. Shapes must be
static (every train batch is full, so they are). What cannot be captured is refused with a
UserError: a CPU device, ``train.amp: fp16`` (the GradScaler reads ``found_inf`` on the host
every step), ``train.compile`` (its ``mode="reduce-overhead"`` makes graphs of its own),
``model.method: nnn`` (it counts optimizer updates in Python, which a replay skips).

The optimizer must take the device tensor ``lr`` without reading it on the host: SGD runs
fused (its foreach and single-tensor paths turn a tensor ``lr`` into a float with ``.item()``,
a sync that a capture refuses), Adam ``capturable`` (its step counters moved to the device,
also those a checkpoint restored on the host). A replay updates the weights without bumping
their version counters; the CWN layers' eval-mode weight caches are dropped when evaluation
switches them to eval mode (:mod:`cwn_bench.nn.layers`), so no evaluation sees stale weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cwn_bench.config import Config
from cwn_bench.errors import UserError
from cwn_bench.train.distributed import DistEnv
from cwn_bench.train.loop import Batch, Engine, train_step

WARMUP, DDP_WARMUP = 3, 11  # eager steps before the capture (DDP's number: torch's CUDA-graph notes)


def check(cfg: Config, device: torch.device) -> None:
    """Raise UserError when ``train.cuda_graph`` cannot work with ``cfg`` on ``device``."""
    if device.type != "cuda":
        raise UserError(f"train.cuda_graph=true needs a GPU, but the run is on {device}; "
                        "set train.cuda_graph=false (or train.device=cuda on a GPU machine)")
    if cfg.train.amp == "fp16":
        raise UserError("train.cuda_graph=true with train.amp=fp16: the fp16 GradScaler reads found_inf on the "
                        "host every step, which cannot be captured; use train.amp=bf16 or none")
    if cfg.train.compile:
        raise UserError("train.cuda_graph=true with train.compile=true: choose one (torch.compile's "
                        "mode='reduce-overhead' captures graphs of its own)")
    if cfg.model.method == "nnn":
        raise UserError("train.cuda_graph=true with model.method=nnn: NNN counts optimizer updates in Python, "
                        "which a replayed graph skips; set train.cuda_graph=false for NNN runs")


def capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Make ``optimizer`` steppable inside a CUDA graph, in place: its learning rates device
    tensors (a float would be baked into the graph; :func:`~cwn_bench.train.optim.set_lr` fills
    them), SGD fused (the only SGD path that reads a tensor lr on the device), Adam
    ``capturable`` with its step counters on ``device``."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
        if isinstance(optimizer, torch.optim.SGD):
            group["fused"], group["foreach"] = True, False
        if "capturable" in group:
            group["capturable"] = True
    for state in optimizer.state.values():  # restored from a checkpoint before capturable was set
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].to(device, torch.float32)


class GraphedStep:
    """A :data:`cwn_bench.train.loop.StepFn`: eager warm-up, one capture, then replays.
    Returns the graph's static (loss, hits) tensors, overwritten by the next replay."""

    def __init__(self, eng: Engine, warmup: int, side: torch.cuda.Stream) -> None:
        self.eng, self.warmup, self.done = eng, warmup, 0
        self.side = side  # warm-up and capture; DDP was built on it too (:func:`side_stream`)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: list[Batch] = []
        self.out: tuple[Tensor, Tensor] | None = None
        capturable(eng.optimizer, eng.device)

    def __call__(self, micro: list[Batch]) -> tuple[Tensor, Tensor]:
        current = torch.cuda.current_stream(self.eng.device)
        if self.graph is None and self.done < self.warmup:
            self.side.wait_stream(current)
            with torch.cuda.stream(self.side):
                out = train_step(self.eng, micro)
            current.wait_stream(self.side)
            self.done += 1
            return out
        if self.graph is None:
            self.static = [(images.clone(), labels.clone()) for images, labels in micro]
            self.graph = torch.cuda.CUDAGraph()
            self.eng.autocast_cache = False
            try:
                # thread_local: a loader's own threads (DALI) may keep using CUDA during the capture
                with torch.cuda.graph(self.graph, stream=self.side, capture_error_mode="thread_local"):
                    self.out = train_step(self.eng, self.static)
            finally:
                self.eng.autocast_cache = True
        for (images, labels), (new_images, new_labels) in zip(self.static, micro):
            images.copy_(new_images, non_blocking=True)
            labels.copy_(new_labels, non_blocking=True)
        self.graph.replay()
        assert self.out is not None
        return self.out


def side_stream(cfg: Config, device: torch.device) -> torch.cuda.Stream | None:
    """The one side stream of a ``train.cuda_graph`` run on a GPU (None otherwise): DDP is built
    on it, as torch's CUDA-graph notes ask (its reducer keeps the stream it was built on), and the
    warm-up and the capture run on it, so DDP meets a single non-default stream throughout."""
    return torch.cuda.Stream(device) if cfg.train.cuda_graph and device.type == "cuda" else None


def build(cfg: Config, eng: Engine, env: DistEnv, side: torch.cuda.Stream | None) -> GraphedStep:
    """The graphed step of ``cfg`` (checked by :func:`check`) on ``side`` (:func:`side_stream`)."""
    check(cfg, env.device)
    assert side is not None
    return GraphedStep(eng, DDP_WARMUP if env.distributed else WARMUP, side)
