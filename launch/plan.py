"""``cwn-bench plan``: what a sweep will cost before it is submitted.

For the sweep of a config on a cluster profile: per run the GPUs, the images trained per
epoch, the throughput used and the wall time it gives; in total the GPU-hours (training
images only: evaluation passes are not counted), the SLURM jobs each run needs within the
profile's time limit less the warning signal's delay (requeues), the sweep's wall time
in waves of ``array_parallelism`` runs, and the checkpoint storage. Throughput, in order: ``--img-per-s`` (per GPU), the
median ``img_per_s_per_gpu`` of completed runs of the same config under ``--runs``, the
newest ``bench step`` JSONL row for the model, batch size, dtype and method.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cwn_bench.config import Config, expand_sweep, run_name, to_dict
from cwn_bench.data import holdout
from cwn_bench.data.folder import EXTENSIONS
from cwn_bench.data.module import image_shape
from cwn_bench.data.sharding import steps_per_epoch
from cwn_bench.errors import UserError
from cwn_bench.models.factory import from_config
from cwn_bench.report.discover import discover
from cwn_bench.report.envfields import device_name
from cwn_bench.report.grouping import compared
from cwn_bench.report.runs import flatten, read_run
from cwn_bench.rundir.files import Problem, read_jsonl

from launch.profile import Profile
from launch.published import PUBLISHED

GIB = 2**30
DTYPES = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}  # train.amp -> bench step's dtype
OPTIMIZER_COPIES = {"sgd": 1, "adam": 2}  # per-parameter state tensors (SGD: momentum; Adam: both moments)


@dataclass
class RunPlan:
    name: str
    method: str
    img_per_s_per_gpu: float | None
    source: str  # where the throughput came from
    wall_hours: float | None
    jobs: int | None  # SLURM jobs (1 + requeues) within the profile's time limit
    state_gib: float  # one checkpoint


@dataclass
class Plan:
    runs: int
    gpus_per_run: int
    ranks_per_run: int
    images_per_epoch: int  # trained per epoch (full batches on every rank)
    train_images: int
    val_images: int
    images_source: str
    epochs: int
    img_per_s_per_gpu: float | None  # the slowest run's
    wall_hours_per_run: float | None  # the longest run's
    gpu_hours: float | None
    jobs_per_run: int | None
    sweep_wall_hours: float | None
    checkpoint_gib: float
    keep_checkpoints: int
    array_parallelism: int
    time_min: int
    signal_delay_s: int
    max_requeues: int
    state_note: str
    per_run: list[RunPlan] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _count_folder(root: Path, split: str) -> int:
    """Image files in ``root/split/<class>/`` (what the folder loaders read)."""
    total = 0
    for cls in os.scandir(root / split):
        if cls.is_dir():
            with os.scandir(cls.path) as entries:
                total += sum(1 for e in entries if e.name.lower().endswith(EXTENSIONS) and e.is_file())
    return total


def dataset_size(cfg: Config) -> tuple[int, int, int, str]:
    """``(train images, val images, classes, how they were found)``; with ``data.holdout`` the
    train images are those left to train on (``cwn_bench.data.holdout.split``'s count)."""
    holdout.check(cfg.data)  # what training refuses, the plan refuses
    train, val, classes, how = _split_sizes(cfg)
    if cfg.data.holdout:
        held = holdout.count(cfg.data.holdout, train)
        return train - held, val, classes, f"{how}, less {held:,} held out (data.holdout={cfg.data.holdout})"
    return train, val, classes, how


def _split_sizes(cfg: Config) -> tuple[int, int, int, str]:
    """``(train split's images, val images, classes, how they were found)``."""
    name, root = cfg.data.name, cfg.data.root
    if cfg.data.loader == "synthetic" or name == "synthetic":
        classes = cfg.data.num_classes or 1000
        return cfg.data.synthetic_samples, cfg.data.synthetic_samples, classes, "data.synthetic_samples"
    if root and (Path(root) / "train").is_dir() and (Path(root) / "val").is_dir():
        classes = sum(1 for e in os.scandir(Path(root) / "train") if e.is_dir())
        return (_count_folder(Path(root), "train"), _count_folder(Path(root), "val"), cfg.data.num_classes or classes,
                f"counted in {root}")
    if name not in PUBLISHED:
        raise UserError(f"data.name {name}: no published size known and data.root {root!r} holds no train/ and val/ "
                        "folders to count")
    train, val, classes = PUBLISHED[name]
    return train, val, cfg.data.num_classes or classes, f"published size of {name}"


def state_size(cfg: Config, classes: int) -> tuple[float, str]:
    """``(checkpoint GiB, how it was estimated)``: the model's parameters and buffers in
    fp32 (counted on a model built on the meta device: nothing allocated) plus the
    optimizer's per-parameter state; RNG states and counters are left out (kilobytes)."""
    with torch.device("meta"):
        model = from_config(cfg.model, classes, image_shape(cfg))
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    copies = OPTIMIZER_COPIES[cfg.optim.name] if cfg.optim.name != "sgd" or cfg.optim.momentum else 0
    how = (f"{params / 1e6:.2f}M parameters + {buffers / 1e3:.1f}k buffers in fp32, plus {copies} optimizer "
           f"cop{'y' if copies == 1 else 'ies'} of the parameters ({cfg.optim.name})")
    return 4 * ((1 + copies) * params + buffers) / GIB, how


def _rate_from_runs(run_cfg: Config, runs_dir: Path) -> tuple[float, str] | None:
    """Median img/s per GPU over the epochs (first left out when there are more) of the
    completed runs under ``runs_dir`` whose resolved config equals ``run_cfg`` (seed aside)."""
    wanted = compared(flatten(to_dict(run_cfg)))
    problems: list[Problem] = []
    rates, matched = [], 0
    for run_dir in discover([runs_dir]).run_dirs:
        read = read_run(run_dir, problems)
        if read is None or read[0]["status"] != "completed" or compared(read[0]["config"]) != wanted:
            continue
        epochs = [e for e in read[1] if isinstance(e.get("img_per_s_per_gpu"), float)
                  and not math.isnan(e["img_per_s_per_gpu"])]
        rates += [e["img_per_s_per_gpu"] for e in (epochs[1:] if len(epochs) > 1 else epochs)]
        matched += 1
    if not rates:
        return None
    return statistics.median(rates), f"{matched} completed run(s) of this config under {runs_dir}"


def _bench_rows(paths: list[Path], card: str | None) -> list[tuple[float, dict[str, Any], str]]:
    """``(file mtime, row, card)`` of every bench step measurement under ``paths`` (of a
    card whose name contains ``card``, case aside, when given)."""
    rows = []
    for path in paths:
        files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            records, _ = read_jsonl(file)
            env = next((r for r in records if r.get("kind") == "env"), {})
            if card and card.lower() not in device_name(env).lower():
                continue
            rows += [(file.stat().st_mtime, r, device_name(env)) for r in records
                     if r.get("kind") == "measurement" and r.get("bench") == "step" and "img_per_s" in r]
    return rows


def _rate_from_bench(run_cfg: Config, rows: list[tuple[float, dict[str, Any], str]]) -> tuple[float, str] | None:
    """The newest step-bench row for this model, image size, per-rank batch, dtype and
    method (``cwn``'s row for a method the bench does not time: an upper bound on cost)."""
    side = run_cfg.data.image_size
    shape = f"{run_cfg.model.name}:{run_cfg.train.batch_size}x3x{side}x{side}"
    fits = [(t, r, card) for t, r, card in rows if r.get("shape") == shape
            and r.get("dtype") == DTYPES[run_cfg.train.amp]]
    for variant in dict.fromkeys([run_cfg.model.method, "cwn"]):
        found = [x for x in fits if x[1].get("variant") == variant]
        if found:
            _, row, card = max(found, key=lambda x: x[0])
            label = variant if variant == run_cfg.model.method else f"{variant} (no {run_cfg.model.method} row)"
            return float(row["img_per_s"]), f"bench step on {card}, {shape} {row['dtype']} {label}"
    return None


def make_plan(cfg: Config, profile: Profile, *, img_per_s: float | None = None, runs_dir: Path | None = None,
              bench: list[Path] | None = None, card: str | None = None) -> Plan:
    """The plan of ``cfg``'s sweep on ``profile`` (see the module docstring); a throughput
    that no source gives leaves the times None."""
    if img_per_s is not None and img_per_s <= 0:
        raise UserError(f"--img-per-s {img_per_s}: expected images per second per GPU, > 0")
    if runs_dir is not None and not runs_dir.is_dir():
        raise UserError(f"--runs {runs_dir}: no such folder (expected run dirs of completed runs)")
    # A job trains until the warning signal, signal_delay_s before its time limit, then
    # checkpoints and is requeued: that much of each job's time is not training.
    useful_s = profile.time_min * 60 - profile.signal_delay_s
    if useful_s <= 0:
        raise UserError(f"profile: time_min={profile.time_min} min leaves no training time before the signal "
                        f"signal_delay_s={profile.signal_delay_s} s ahead of the limit")
    points = expand_sweep(cfg)
    ranks = profile.nodes * profile.tasks
    gpus = profile.nodes * profile.gpus_per_node
    train, val, classes, how = dataset_size(cfg)
    steps = steps_per_epoch(train, cfg.train.batch_size, ranks)
    steps = min(steps, cfg.train.steps_per_epoch or steps)
    images = steps * cfg.train.batch_size * ranks
    bench_rows = _bench_rows(bench or [], card) if img_per_s is None else []
    per_run = []
    for point, run_cfg in points:
        found = ((img_per_s, "given (--img-per-s)") if img_per_s is not None else
                 (runs_dir and _rate_from_runs(run_cfg, runs_dir)) or _rate_from_bench(run_cfg, bench_rows))
        rate, source = found or (None, "unknown: pass --img-per-s N, --runs DIR or a bench step JSONL")
        wall = images * run_cfg.train.epochs / (rate * ranks) / 3600 if rate else None
        jobs = math.ceil(wall * 3600 / useful_s) if wall is not None else None
        state, state_note = state_size(run_cfg, classes)
        per_run.append(RunPlan(run_name(point), run_cfg.model.method, rate, source, wall, jobs, state))
    walls = [r.wall_hours for r in per_run]
    known = None not in walls
    longest = max(walls) if known else None
    return Plan(
        runs=len(points), gpus_per_run=gpus, ranks_per_run=ranks, images_per_epoch=images, train_images=train,
        val_images=val, images_source=how, epochs=cfg.train.epochs,
        img_per_s_per_gpu=min(r.img_per_s_per_gpu for r in per_run) if known else None,
        wall_hours_per_run=longest, gpu_hours=sum(walls) * gpus if known else None,
        jobs_per_run=max(r.jobs for r in per_run) if known else None,
        sweep_wall_hours=math.ceil(len(points) / profile.array_parallelism) * longest if known else None,
        checkpoint_gib=sum(r.state_gib for r in per_run) * cfg.train.keep_checkpoints,
        keep_checkpoints=cfg.train.keep_checkpoints, array_parallelism=profile.array_parallelism,
        time_min=profile.time_min, signal_delay_s=profile.signal_delay_s, max_requeues=profile.max_requeues,
        state_note=state_note, per_run=per_run)


def _hours(h: float | None) -> str:
    return "?" if h is None else f"{h:,.2f} h"


def render(plan: Plan) -> str:
    """The plan as lines of text for the terminal."""
    p = plan
    lines = [f"plan: {p.runs} run(s), each on {p.gpus_per_run} GPU(s) ({p.ranks_per_run} rank(s))",
             f"images per epoch: {p.images_per_epoch:,} trained (full batches on every rank) of "
             f"{p.train_images:,} train images ({p.images_source})",
             f"val images: {p.val_images:,} (evaluation not counted); epochs: {p.epochs}"]
    width = max(len(r.name) for r in p.per_run)
    lines.append(f"  {'run':<{width}}  {'img/s/GPU':>9}  {'wall':>10}  {'jobs':>4}  throughput from")
    for r in p.per_run:
        rate = "?" if r.img_per_s_per_gpu is None else f"{r.img_per_s_per_gpu:,.0f}"
        jobs = "?" if r.jobs is None else str(r.jobs)
        lines.append(f"  {r.name:<{width}}  {rate:>9}  {_hours(r.wall_hours):>10}  {jobs:>4}  {r.source}")
    if p.gpu_hours is not None:
        waves = math.ceil(p.runs / p.array_parallelism)
        lines += [f"GPU-hours: {p.gpu_hours:,.1f} for the sweep (training images at the rates above; evaluation "
                  "passes and start-up not counted)",
                  f"SLURM jobs per run: {p.jobs_per_run} within time_min={p.time_min} min, each training until "
                  f"the signal signal_delay_s={p.signal_delay_s} s before it ({p.jobs_per_run - 1} requeue(s); "
                  f"the profile allows max_requeues={p.max_requeues})",
                  f"sweep wall time: {waves} wave(s) of array_parallelism={p.array_parallelism} x "
                  f"{_hours(p.wall_hours_per_run)} = {_hours(p.sweep_wall_hours)} (queue waits not counted)"]
        if p.jobs_per_run - 1 > p.max_requeues:
            lines.append(f"warning: a run needs {p.jobs_per_run - 1} requeue(s) but max_requeues={p.max_requeues}: "
                         "raise max_requeues or time_min, or the runs stop before the end")
    else:
        lines.append("times unknown: pass --img-per-s N (images per second per GPU), --runs DIR, or keep a "
                     "`cwn-bench bench step` JSONL under --bench")
    lines += [f"checkpoints: {p.checkpoint_gib:,.2f} GiB = {p.keep_checkpoints} kept x {p.runs} run(s) x "
              f"up to {max(r.state_gib for r in p.per_run):.3f} GiB per state",
              f"  state estimated: {p.state_note}"]
    return "\n".join(lines)
