"""Process group from the environment (env://), device choice, and the few collectives.

The variables are those submitit's ``TorchDistributedEnvironment.export()`` and torchrun
set: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``.  With no
``WORLD_SIZE`` (or ``WORLD_SIZE=1``) the run is a single process and no group is made.
NCCL on GPUs, gloo on CPUs.  Every helper here is a no-op in a single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from cwn_bench.errors import UserError, brief

_REQUIRED = ("RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when this module created the group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment variable {name}={brief(raw)}: expected an integer") from None


def _device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("train.device=cuda: no GPU is visible (torch.cuda.is_available() is False); "
                        "use train.device=cpu or auto")
    count = torch.cuda.device_count()
    index = 0 if count == 1 else local_rank  # one visible GPU: the task was bound to its own
    if index >= count:
        raise UserError(f"LOCAL_RANK={local_rank} but {count} GPUs are visible on this node; expected one "
                        "visible GPU per task or at least LOCAL_RANK + 1")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def init(device_choice: str = "auto") -> DistEnv:
    """Read the env:// variables, pick the device (``cuda:LOCAL_RANK`` or CPU) and join
    the process group.  A group that already exists (made by the caller) is reused."""
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = _device(device_choice, local_rank)
    if world_size <= 1:
        return DistEnv(device=device)
    missing = [k for k in _REQUIRED if k not in os.environ]
    if missing:
        raise UserError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set; a distributed run "
                        "needs RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT")
    rank = _env_int("RANK", 0)
    owns = not dist.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=30),
                                device_id=device if device.type == "cuda" else None)
    return DistEnv(rank, world_size, local_rank, device, owns)


def shutdown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_(tensor: torch.Tensor, env: DistEnv, op: Any = None) -> torch.Tensor:
    """In-place all-reduce (sum by default) over ranks; returns ``tensor``."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op is None else op)
    return tensor


def all_gather(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj`` (picklable), indexed by rank, on every rank."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
