"""One training run: ``run(cfg, run_dir) -> "completed" | "preempted"``.

Top to bottom: read run.json (skip a completed run), join the process group, build
data, model, optimizer; resume from the newest checkpoint; then per epoch train,
evaluate, append the epoch record, checkpoint.  Rank 0 alone writes files; every
decision to checkpoint, stop or fail is agreed by all ranks at a sync point (every
``train.sync_every`` steps, each checkpoint, each epoch end) through one small
all-reduce started there and read at the next one (:mod:`cwn_bench.train.flags`), so the
host never waits for the device between sync points.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cwn_bench import data as datamod
from cwn_bench import models
from cwn_bench.config import Config, config_hash, to_dict
from cwn_bench.errors import UserError, brief, one_line
from cwn_bench.rundir import CHECKPOINTS, METRICS, runjson
from cwn_bench.rundir import lock as runlock
from cwn_bench.rundir.metrics import MetricsLog
from cwn_bench.train import checkpoint, distributed, envinfo, graph_step, probes, rng
from cwn_bench.train.distributed import DistEnv
from cwn_bench.train.flags import Captured, Collected, FlagReduction
from cwn_bench.train.loop import Engine, evaluate, train_one_epoch
from cwn_bench.train.metrics import EpochMeter
from cwn_bench.train.optim import build_optimizer, load_optimizer_state, lr_at
from cwn_bench.train.progress import Progress
from cwn_bench.train.stopping import DEFAULT_SIGNALS, StopRequest
from cwn_bench.train.tensorboard import EventLog

COMPLETED, PREEMPTED = "completed", "preempted"
BEFORE_RESTART = "before-restart"  # suffix of the metrics.jsonl a --restart sets aside
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingFailed(UserError):
    """The loss became NaN/inf: run.json says ``failed`` with the step; checkpoints kept."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _torch_flags(cfg: Config) -> None:
    """Deterministic mode, or cudnn.benchmark (autotuning: fastest, not repeatable)."""
    det = cfg.train.deterministic
    if det and torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' deterministic workspace
    torch.use_deterministic_algorithms(det)
    torch.backends.cudnn.deterministic = det
    torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark and not det


class Trainer:
    """State of one run on one rank; implements :class:`cwn_bench.train.loop.Control`."""

    def __init__(self, cfg: Config, run_dir: Path, env: DistEnv, stop: StopRequest, restart: bool = False) -> None:
        self.cfg, self.run_dir, self.env, self.stop, self.restart = cfg, run_dir, env, stop, restart
        self.ckpt_dir = run_dir / CHECKPOINTS
        _torch_flags(cfg)
        rng.seed_all(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
        self.log = MetricsLog(run_dir / METRICS, env.is_main)
        found = self.latest_checkpoint()
        # data.normalize=dataset: the statistics come from the run's first start (saved in every checkpoint)
        stats = found[0].get("data_stats") if found else None
        self.data = datamod.build(cfg, env.rank, env.world_size, env.device, stats)
        self.accum = cfg.train.accum_steps
        full = self.data.steps_per_epoch // self.accum  # optimizer steps of accum_steps batches each
        self.steps = min(full, cfg.train.steps_per_epoch or full)
        if self.steps < 1:
            raise UserError(f"{cfg.data.root or cfg.data.name}: {self.data.train_size} training images give "
                            f"no {self.accum} full batch(es) of train.batch_size={cfg.train.batch_size} per rank "
                            "(train.accum_steps per step)")
        model = models.from_config(cfg.model, self.data.num_classes, self.data.in_shape).to(env.device)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        net: nn.Module = model
        ddp = None
        side = graph_step.side_stream(cfg, env.device)
        if env.distributed:
            net = ddp = self._ddp(model, side)
        if cfg.train.compile:
            net = torch.compile(net)
        amp = AMP_DTYPES[cfg.train.amp]
        self.eng = Engine(model, net, nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing),
                          build_optimizer(model, cfg.optim),
                          torch.amp.GradScaler(env.device.type, enabled=cfg.train.amp == "fp16"),
                          env.device, amp, cfg.train.channels_last, ddp)
        if found is not None:  # now that the model exists: a checkpoint of another model is unusable too
            found = self.latest_checkpoint()
        rng.seed_all(cfg.seed + 7919 * env.rank)  # per-rank stream for dropout and the like
        self.epoch = 0  # epoch in progress, 0-based
        self.meter = EpochMeter(env.device, self.accum)
        self.flags = FlagReduction(env)
        self.records: list[Captured] = []  # step records whose loss is still on the device
        self.progress = Progress(env.is_main, cfg.train.log_every, cfg.train.epochs)
        self.step_offset = 0  # global steps before a resize that this world size's epochs do not count
        self.resized_from: int | None = None  # the checkpoint's world size, when resumed on another
        self.resumed_from = self.resume(found)
        # after the resume: loading the optimizer's state would put a float learning rate back
        self.step_fn = graph_step.build(cfg, self.eng, env, side) if cfg.train.cuda_graph else None
        self.probes = probes.build(cfg, model, self.data, self.global_step, env.is_main)  # Figure 2, rank 0
        self.events = EventLog(run_dir, cfg.train.tensorboard and env.is_main, self.global_step)
        self.last_save = time.monotonic()

    # ------------------------------------------------------------------ files

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps + self.meter.steps + self.step_offset

    @property
    def global_batch(self) -> int:
        """Images per optimizer step over all ranks (``train.accum_steps`` batches per rank)."""
        return self.cfg.train.batch_size * self.env.world_size * self.cfg.train.accum_steps

    def new_record(self) -> dict[str, Any]:
        """run.json's contents for this start (collective: gathers every rank's host name)."""
        hosts = distributed.all_gather(envinfo.host(), self.env)
        previous = (runjson.read(self.run_dir) if self.env.is_main else None) or {}
        attempt = {"started": _now(), "hostnames": sorted(set(hosts)), "resumed_from": self.resumed_from,
                   "world_size": self.env.world_size, "resized_from": self.resized_from,
                   "slurm": envinfo.slurm_ids()}
        cfg, data = self.cfg, self.data
        return {
            "config": to_dict(cfg), "seed": cfg.seed, "config_hash": config_hash(cfg),
            "status": "running", "reason": None, "env": envinfo.capture(hosts),
            "world_size": self.env.world_size, "batch_size_per_rank": cfg.train.batch_size,
            "global_batch": self.global_batch, "accum_steps": self.accum, "steps_per_epoch": self.steps,
            "device": str(self.env.device), "num_params": sum(p.numel() for p in self.eng.model.parameters()),
            "train_size": data.train_size, "val_size": data.val_size, "skipped": data.skipped,
            **data.splits, **(self.probes.info() if self.probes else {}),
            "created": previous.get("created", _now()), "attempts": previous.get("attempts", []) + [attempt],
        }

    def run_record(self, status: str, reason: str | None = None, **extra: Any) -> None:
        """Rank 0 rewrites run.json with ``status`` (running | completed | failed)."""
        self.info.update(status=status, reason=reason, updated=_now(), skipped=self.data.skipped, **extra)
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            runjson.write(self.run_dir, self.info)

    def save(self) -> bool:
        """Collective checkpoint of the current position; rank 0 writes, all wait for it.
        A non-finite loss since the last check fails the run instead (nothing written).
        Returns whether a stop was requested (agreed)."""
        stop = self.agree().flags.stop
        meter = self.meter.state_dict(self.env)
        rngs = distributed.all_gather(rng.get_state(self.env.device), self.env)
        if self.env.is_main:
            state = {"format": 1, "model": self.eng.model.state_dict(), "optimizer": self.eng.optimizer.state_dict(),
                     "scaler": self.eng.scaler.state_dict(), "epoch": self.epoch, "global_step": self.global_step,
                     "meter": meter, "rng": rngs, "world_size": self.env.world_size, "global_batch": self.global_batch,
                     "data_stats": self.data.stats}
            checkpoint.save(state, self.ckpt_dir, self.global_step, self.cfg.train.keep_checkpoints)
        distributed.barrier(self.env)
        self.last_save = time.monotonic()
        return stop

    def latest_checkpoint(self) -> tuple[dict[str, Any], Path] | None:
        """The newest readable checkpoint ``(state, path)`` on every rank, or None; cuts
        metrics.jsonl back to it.

        Rank 0 picks the checkpoint and trims the log; a UserError there (no readable
        checkpoint, a corrupt log line) is broadcast so every rank raises it at once
        instead of waiting for rank 0 until the process group's 30-minute timeout."""
        found, problem = None, None
        if self.env.is_main:
            try:
                found = checkpoint.load_latest(self.ckpt_dir, self.check_checkpoint, self.restart)
                starting_over = found is None and checkpoint.unusable(self.ckpt_dir)  # only with restart
                if starting_over and not self.log.path.with_name(f"{METRICS}.{BEFORE_RESTART}").exists():
                    kept = self.log.set_aside(BEFORE_RESTART)  # the records of the lost run stay readable
                    if kept:
                        print(f"{self.log.path}: kept as {kept.name}", file=sys.stderr)
                at = found[0] if found else {"epoch": 0, "global_step": 0}
                self.log.truncate(at["epoch"], at["global_step"])
            except UserError as err:
                problem = str(err)
        path, problem = distributed.broadcast((str(found[1]) if found else None, problem), self.env)
        if problem is not None:
            raise UserError(problem)
        if path is None:
            return None
        return found or (checkpoint.load(Path(path)), Path(path))

    def check_checkpoint(self, state: dict[str, Any]) -> None:
        """Raise checkpoint.Unusable when ``state`` is not a checkpoint of this run: its
        counters are not integers or (once the model is built) its model's parameter names
        and shapes or its optimizer's groups differ from this run's."""
        if not all(isinstance(state[k], int) and state[k] >= 0 for k in ("epoch", "global_step", "world_size")):
            raise checkpoint.Unusable("has no valid epoch / global_step / world_size counters")
        if not hasattr(self, "eng"):
            return
        mine, theirs = self.eng.model.state_dict(), state["model"]
        if not isinstance(theirs, dict) or set(theirs) != set(mine):
            names = set(theirs) if isinstance(theirs, dict) else set()
            raise checkpoint.Unusable(f"holds another model ({len(set(mine) - names)} of this run's parameters "
                                      f"missing, {len(names - set(mine))} unknown ones)")
        for key, value in mine.items():  # tensors by shape; extra state (e.g. NNN's whitening) by type
            if not isinstance(value, Tensor):
                if type(theirs[key]) is not type(value):
                    raise checkpoint.Unusable(f"holds another model ({brief(key)}: a {type(theirs[key]).__name__}, "
                                              f"this run's a {type(value).__name__})")
                continue
            shape = getattr(theirs[key], "shape", None)
            if shape != value.shape:
                raise checkpoint.Unusable(f"holds another model ({brief(key)}: shape {brief(shape)}, this run's "
                                          f"{tuple(value.shape)})")
        groups = state["optimizer"].get("param_groups") if isinstance(state["optimizer"], dict) else None
        sizes = [len(g.get("params", ())) for g in groups] if isinstance(groups, list) and all(
            isinstance(g, dict) for g in groups) else None
        if sizes != [len(g["params"]) for g in self.eng.optimizer.param_groups]:
            raise checkpoint.Unusable("holds another optimizer (its parameter groups differ from this run's)")

    def resume(self, found: tuple[dict[str, Any], Path] | None) -> str | None:
        """Continue from ``found`` (:meth:`latest_checkpoint`), if any: its checkpoint's name."""
        if found is None:
            return None
        state, path = found
        self.eng.model.load_state_dict(state["model"])
        load_optimizer_state(self.eng.optimizer, state["optimizer"])
        self.eng.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.meter.load_state_dict(state["meter"], self.env)
        if state["world_size"] == self.env.world_size:
            rng.set_state(state["rng"][self.env.rank], self.env.device)
        else:
            self.resize(state, path)
        self.step_offset = state["global_step"] - (self.epoch * self.steps + self.meter.steps)
        if self.env.is_main:
            print(f"resuming from {path}: epoch {self.epoch + 1}, step {self.meter.steps}/{self.steps}",
                  file=sys.stderr)
        return path.name

    def resize(self, state: dict[str, Any], path: Path) -> None:
        """Continue a checkpoint of another world size (``train.allow_resize``) from the
        images its epoch had reached: the epoch's step count is converted to this global
        batch (rounded down: a few images may be seen twice), the random streams are
        re-seeded.  Refused otherwise: the run would no longer be bitwise repeatable."""
        old = state["world_size"]
        if not self.cfg.train.allow_resize:
            raise UserError(f"{path}: checkpoint saved with world size {old}, this start has world size "
                            f"{self.env.world_size}; resume on {old} rank(s), or set train.allow_resize: true to "
                            "continue from the sample count reached (not bitwise repeatable)")
        images = self.meter.steps * state.get("global_batch", self.cfg.train.batch_size * old)
        self.meter.steps = min(images // self.global_batch, self.steps)
        self.resized_from = old
        if self.env.is_main:
            print(f"{path}: saved with world size {old}, resuming with {self.env.world_size} from image "
                  f"{images} of epoch {self.epoch + 1} (step {self.meter.steps}); random streams re-seeded, "
                  "the run is no longer bitwise repeatable", file=sys.stderr)

    # ------------------------------------------------------------------ Control

    def lr(self, epoch: int, step: int) -> float:
        return lr_at(epoch * self.steps + step, self.steps, self.cfg.train.epochs, self.cfg.optim.lr, self.cfg.sched)

    def _clock_due(self) -> bool:
        """Rank 0's clock says a checkpoint is due (agreed through the flag reduction)."""
        return self.env.is_main and time.monotonic() - self.last_save >= 60 * self.cfg.train.checkpoint_minutes

    def _bad_step(self) -> Tensor:
        """The first global step of this epoch with a non-finite loss (0: none), on the device."""
        return self.meter.bad_global(self.global_step - self.meter.steps)

    def _start_flags(self) -> None:
        self.flags.start(self.stop.requested, self._clock_due(), self._bad_step(), self.records)
        self.records = []

    def _handle(self, got: Collected | None) -> Collected | None:
        """Write the collected step records (those before a non-finite step), then fail on one."""
        if got is None:
            return None
        bad = got.flags.bad_step
        for fields, loss in got.records:
            if bad is None or fields["step"] < bad:
                self._write_step(fields, loss)
        if bad is not None:
            epoch, step = divmod(bad - 1 - self.step_offset, self.steps)
            self.fail(f"non-finite training loss at epoch {epoch + 1} step {step + 1} (global step {bad}); "
                      "the last good checkpoint is kept")
        return got

    def agree(self) -> Collected:
        """Blocking sync point (checkpoints, epoch ends): flags agreed now, step records written.
        The wait for the device to catch up counts as training time (``meter.train_s``)."""
        start = time.perf_counter()
        got = self.flags.now(self.stop.requested, False, self._bad_step(), self.records)
        self.meter.train_s += time.perf_counter() - start
        self.records = []
        return self._handle(got)

    def _ddp(self, model: nn.Module, side: torch.cuda.Stream | None) -> DistributedDataParallel:
        """``model`` in DDP; with ``train.cuda_graph`` built on the graph's side stream
        (:func:`~cwn_bench.train.graph_step.side_stream`)."""
        device = self.env.device
        if side is None:
            return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            ddp = DistributedDataParallel(model, device_ids=[device.index])
        torch.cuda.current_stream(device).wait_stream(side)
        return ddp

    def write(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` to metrics.jsonl and mirror it as TensorBoard events (train.tensorboard)."""
        self.log.write(rec)
        self.events.write(rec)

    def _write_step(self, fields: dict[str, Any], loss: float) -> None:
        progress = fields.pop("progress")
        if self.progress.wants(progress[0]):
            self.progress.step(progress[0], loss, fields["lr"], *progress[1:])
        if self.env.is_main and fields.pop("log"):
            self.write({**fields, "loss": loss})

    def after_step(self, epoch: int, meter: EpochMeter, loss: Tensor, lr: float) -> bool:
        """Control: capture the step record (its loss stays on the device), and at a sync
        point act on the flags of the previous one: fail, checkpoint, stop."""
        train = self.cfg.train
        step, global_step = meter.steps, self.global_step
        self.progress.tick(step)
        log = self.env.is_main and step % max(train.log_every, 1) == 0
        if log or self.progress.wants(step):  # rank 0's view of the epoch so far
            img_per_s = self.global_batch * step / max(meter.train_s, 1e-9)
            fields = {"kind": "step", "epoch": epoch + 1, "step": global_step, "lr": lr, "log": log,
                      "progress": (step, img_per_s, meter.data_s / max(meter.train_s, 1e-9))}
            self.records.append(Captured(fields, loss.detach() if self.step_fn is None else loss.detach().clone()))
        if self.probes is not None:  # Figure 2 probes (train/probes.py): a sync on their steps only
            for rec in self.probes.after_step(epoch + 1, global_step):
                self.write(rec)
        every = train.checkpoint_every_steps
        checkpoint_due = bool(every and global_step % every == 0)
        if step == self.steps or not (checkpoint_due or step % train.sync_every == 0):
            return True  # the epoch's end is a sync point of its own (epochs())
        start = time.perf_counter()
        collected = self.flags.collect()
        meter.train_s += time.perf_counter() - start  # the device catching up is the steps' time
        got = self._handle(collected)
        self._start_flags()
        flags = got.flags if got else None
        if checkpoint_due or (flags and (flags.stop or flags.due)):
            if self.save():
                return False
        return not (flags and flags.stop)

    def fail(self, reason: str) -> None:
        self.run_record("failed", reason)
        raise TrainingFailed(f"{self.run_dir}: {reason}")

    # ------------------------------------------------------------------ main flow

    def fit(self) -> str:
        self.info = self.new_record()
        self.run_record("running")
        try:
            return self.epochs()
        except TrainingFailed:
            raise
        except Exception as err:  # recorded for the report; the traceback (for a bug) still propagates
            reason = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {one_line(err)}"
            try:
                self.run_record("failed", reason)
            except UserError as also:  # e.g. the disk is full: run.json cannot say so either
                print(f"{also} (run.json could not record the failure)", file=sys.stderr)
            raise
        finally:
            self.events.close()

    def epochs(self) -> str:
        cfg, env, eng = self.cfg, self.env, self.eng
        for epoch in range(self.epoch, cfg.train.epochs):
            if env.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(env.device)
            self.progress.start_epoch(epoch, self.steps, self.meter.steps)
            # train.steps_per_epoch may cap the epoch; accum_steps batches per step
            batches = self.data.train_batches(epoch, self.meter.steps * self.accum, self.steps * self.accum)
            if not train_one_epoch(eng, batches, epoch, self.steps, self.meter, self, self.step_fn):
                return PREEMPTED
            stop = self.agree().flags.stop  # fails here on a non-finite loss: no epoch record
            t_eval = time.perf_counter()
            val = evaluate(eng, self.data.val_batches(), env)
            if self.data.holdout_size:  # data.holdout: the validation split taken from the training set
                held = evaluate(eng, self.data.holdout_batches(), env)
                val |= {k.replace("val_", "holdout_"): v for k, v in held.items()}
            train = self.meter.summary(env)
            eval_s = time.perf_counter() - t_eval
            peak = torch.cuda.max_memory_allocated(env.device) / 2**30 if env.device.type == "cuda" else None
            rec = {"kind": "epoch", "epoch": epoch + 1, "step": self.global_step,
                   "lr": self.lr(epoch, self.steps - 1), **train, **val, "eval_s": eval_s,
                   "wall_s": train["train_s"] + eval_s, "peak_gpu_mem_gib": peak}
            self.write(rec)  # before the checkpoint: a crash in between re-runs (and re-logs) the epoch
            self.progress.end_epoch(rec)
            self.epoch, self.meter = epoch + 1, EpochMeter(env.device, self.accum)
            if self.save() or stop:
                return PREEMPTED
        self.run_record("completed", final=self.log.last("epoch"))
        return COMPLETED


def run(cfg: Config, run_dir: str | Path, signals: Iterable[int] = DEFAULT_SIGNALS, restart: bool = False) -> str:
    """Train ``cfg`` in ``run_dir`` (created) as this process's rank; resume from its
    checkpoints.  Returns "completed" (also when run.json already says so) or
    "preempted" (a signal in ``signals`` arrived; a checkpoint was written and the
    caller should requeue).  Raises TrainingFailed on a non-finite loss.  ``restart``:
    when every checkpoint is unusable, start over from step 0 instead of stopping (the
    old metrics.jsonl is kept as metrics.jsonl.before-restart)."""
    run_dir = Path(run_dir)
    lock = runlock.exclusive(run_dir) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
    with lock:  # rank 0 is the only writer; the other ranks meet it at the process group
        return _run_locked(cfg, run_dir, signals, restart)


def _run_locked(cfg: Config, run_dir: Path, signals: Iterable[int], restart: bool) -> str:
    previous = runjson.read(run_dir)
    runjson.check_same_experiment(previous, cfg, run_dir)
    if previous and previous["status"] == COMPLETED:
        print(f"{run_dir}: already completed, skipping", file=sys.stderr)
        return COMPLETED
    env = distributed.init(cfg.train.device)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    try:
        with StopRequest(signals) as stop:
            trainer = Trainer(cfg, run_dir, env, stop, restart)
            return trainer.fit()
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1:]
        distributed.shutdown(env)
