"""The report's tables, each a groupby/agg over the tidy frames of :mod:`read`; numbers
stay numbers here (they become strings only when rendered).

Errors are in percent, times in seconds. Accuracy and convergence count only completed
runs (``counted``); curves and throughput also use the finished epochs of runs still
running. Standard deviations are over seeds with ddof=1 (NaN for a single seed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cwn_bench.report.envfields import env_summary
from cwn_bench.report.paper import MATCH_KEYS, paper_columns
from cwn_bench.report.runs import GROUP_KEYS, SET_KEYS
from cwn_bench.report.stats import olympic_mean

METHOD_ORDER = {"plain": 0, "nnn": 0.5, "wn": 1, "ws": 1.5, "cwn": 2}
LIVE = ("completed", "running")  # statuses whose finished epochs are valid measurements
OVERHEAD_COLUMNS = ["shape", "variant", "pass", "dtype", "memory_format", "median_ms", "ratio_vs_plain"]


def ordered(df: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Rows sorted by dataset, model, method (plain, wn, cwn, others), variant, extra."""
    keys = [k for k in ["dataset", "model", "method", "variant", *(extra or [])] if k in df]

    def rank(column: pd.Series) -> pd.Series:
        return column.map(METHOD_ORDER).fillna(len(METHOD_ORDER)) if column.name == "method" else column

    return df.sort_values(keys, key=rank, kind="stable").reset_index(drop=True)


def _with(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``df`` with each missing optional metric column added as NaN."""
    return df.assign(**{c: np.nan for c in columns if c not in df})


def counted_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """Epoch records of completed runs, with ``elapsed_s`` (wall time since the run's
    start, the sum of the epochs' ``wall_s``) added: the ``done`` frame that
    :func:`accuracy`, :func:`convergence` and :func:`error_at_epochs` take (built once)."""
    done = _with(epochs[epochs["counted"].astype(bool)], "val_top1_err", "val_top5_err", "train_top1_err", "wall_s")
    done = done.sort_values(["run", "epoch"])
    return done.assign(elapsed_s=done.groupby("run")["wall_s"].cumsum())


def _natural(text: str) -> tuple[int, int | str]:
    """Sort key putting "2" before "10" (seeds are usually integers)."""
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def _stats(column: str, prefix: str) -> dict[str, tuple[str, str]]:
    return {f"{prefix}_{s}": (column, s) for s in ("mean", "std", "min", "max")}


def accuracy(runs: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """One row per group: final-epoch val top-1/top-5 error over counted seeds (``done``:
    :func:`counted_epochs`), with runs running / failed beside (not in ``n_seeds``) and
    the paper's numbers."""
    final = done.groupby("run").tail(1)
    stats = final.groupby(GROUP_KEYS, dropna=False).agg(
        n_seeds=("run", "size"), **_stats("val_top1_err", "top1_err"), **_stats("val_top5_err", "top5_err"),
        epochs=("epoch", "max"), seeds=("seed", lambda s: ",".join(sorted(map(str, s), key=_natural))))
    status = runs.groupby(GROUP_KEYS, dropna=False).agg(
        n_running=("status", lambda s: int((s == "running").sum())),
        n_failed=("status", lambda s: int((s == "failed").sum())),
        n_other=("counted", lambda c: int((~c.astype(bool)).sum())),
        config_hash=("config_hash", "first"), **{c: (c, "first") for c in MATCH_KEYS if c in runs})
    table = status.join(stats, how="left").reset_index()
    table["n_other"] -= table.n_running + table.n_failed  # e.g. completed without final epoch
    table["n_seeds"] = table.n_seeds.fillna(0).astype(int)
    table = pd.concat([table, paper_columns(table)], axis=1)
    first = ["dataset", "model", "method", "n_seeds", "top1_err_mean", "top1_err_std",
             "top5_err_mean", "top5_err_std", "paper_top1_err", "paper_top5_err"]
    return ordered(table[first + [c for c in table if c not in first]])


def _targets(acc: pd.DataFrame, target: float | None = None) -> pd.Series:
    """Per (dataset, model): the target val top-1 error, ``target`` when given, else the
    best final error of the plain method's rows (the paper's baseline), else the worst
    row's (which all reach)."""
    done = acc[acc.n_seeds > 0]
    plain = done[done.method == "plain"].groupby(list(SET_KEYS)).top1_err_mean.min()
    worst = done.groupby(list(SET_KEYS)).top1_err_mean.max()
    found = plain.combine_first(worst)
    return (found if target is None else pd.Series(target, index=found.index)).rename("target_top1_err")


def convergence(acc: pd.DataFrame, done: pd.DataFrame, target: float | None = None) -> pd.DataFrame:
    """One row per group: epochs and wall time until val top-1 error first reaches the
    target of its dataset and model (:func:`_targets`); ``n_reached`` of ``n_seeds``;
    with 5 seeds or more the olympic means as MLPerf scores time to train (fastest and
    slowest seed dropped, a seed that never reached it counting as the slowest).
    ``done``: :func:`counted_epochs`."""
    done = done.join(_targets(acc, target), on=list(SET_KEYS))
    hit = done[done.val_top1_err <= done.target_top1_err].groupby("run").head(1)
    base = done.groupby(GROUP_KEYS, dropna=False).agg(
        n_seeds=("run", "nunique"), target_top1_err=("target_top1_err", "first"))
    reached = hit.groupby(GROUP_KEYS, dropna=False).agg(
        n_reached=("run", "size"), epochs_to_target_mean=("epoch", "mean"), epochs_to_target_std=("epoch", "std"),
        wall_s_to_target_mean=("elapsed_s", "mean"), wall_s_to_target_std=("elapsed_s", "std"))
    per_run = done.drop_duplicates("run")[["run", *GROUP_KEYS]].join(
        hit.set_index("run")[["epoch", "elapsed_s"]], on="run").fillna({"epoch": np.inf, "elapsed_s": np.inf})
    olympic = per_run.groupby(GROUP_KEYS, dropna=False).agg(
        olympic_epochs_to_target=("epoch", olympic_mean), olympic_wall_s_to_target=("elapsed_s", olympic_mean))
    table = base.join(reached, how="left").join(olympic, how="left").reset_index()
    table["n_reached"] = table.n_reached.fillna(0).astype(int)
    return ordered(table)


def _checkpoints(last_epoch: int) -> list[int]:
    """A quarter, half, three quarters and all of a run's epochs (1-based, unique)."""
    return sorted({max(1, math.ceil(last_epoch * q)) for q in (0.25, 0.5, 0.75, 1.0)})


def error_at_epochs(done: pd.DataFrame) -> pd.DataFrame:
    """Val/train error at fixed epochs (quarters of the shortest counted run of each
    dataset and model), mean and std over seeds. ``done``: :func:`counted_epochs`."""
    if done.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "epoch"])
    last = done.groupby("run").agg(dataset=("dataset", "first"), model=("model", "first"), last_epoch=("epoch", "max"))
    shortest = last.groupby(list(SET_KEYS)).last_epoch.min()
    wanted = pd.DataFrame([(d, m, e) for (d, m), n in shortest.items() for e in _checkpoints(int(n))],
                          columns=[*SET_KEYS, "epoch"])
    at = done.merge(wanted, on=[*SET_KEYS, "epoch"])
    table = at.groupby([*GROUP_KEYS, "epoch"], dropna=False).agg(
        n_seeds=("run", "size"), val_top1_err_mean=("val_top1_err", "mean"), val_top1_err_std=("val_top1_err", "std"),
        val_top5_err_mean=("val_top5_err", "mean"), train_top1_err_mean=("train_top1_err", "mean"))
    return ordered(table.reset_index(), ["epoch"])


def throughput(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per group (config and world size): median img/s, img/s per GPU and share of time
    waiting for data over epochs (the first left out when there are more: it holds
    warm-up and compilation), averaged over runs; peak GPU memory, max over runs.
    ``scaling_efficiency`` = per-GPU rate / per-GPU rate of the same config on the fewest
    GPUs; ``speedup`` = total rate / that config's total rate."""
    metrics = ["img_per_s", "img_per_s_per_gpu", "data_wait_share", "data_time_s", "wall_s", "peak_gpu_mem_gib"]
    live = _with(epochs[epochs.status.isin(LIVE)], *metrics)
    if live.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "world_size", "nodes", "img_per_s_per_gpu"])
    live = live.assign(data_wait_share=live.data_wait_share.fillna(live.data_time_s / live.wall_s))
    steady = live[(live.epoch > 1) | (live.groupby("run").epoch.transform("max") == 1)]
    by_run = steady.groupby([*GROUP_KEYS, "world_size", "nodes", "run"], dropna=False)
    per_run = by_run[metrics].median().assign(peak_gpu_mem_gib=by_run.peak_gpu_mem_gib.max())
    table = per_run.groupby(level=[*GROUP_KEYS, "world_size", "nodes"], dropna=False).agg(
        n_runs=("img_per_s", "size"), img_per_s=("img_per_s", "mean"),
        img_per_s_per_gpu=("img_per_s_per_gpu", "mean"), img_per_s_per_gpu_std=("img_per_s_per_gpu", "std"),
        data_wait_share=("data_wait_share", "mean"), epoch_wall_s=("wall_s", "mean"),
        peak_gpu_mem_gib=("peak_gpu_mem_gib", "max")).reset_index()
    table["config"] = table.group.str.split("-w").str[0]
    base = table.sort_values("world_size").groupby("config")[["img_per_s_per_gpu", "img_per_s"]].transform("first")
    table["scaling_efficiency"] = table.img_per_s_per_gpu / base.img_per_s_per_gpu
    table["speedup"] = table.img_per_s / base.img_per_s
    return ordered(table.drop(columns="config"), ["world_size"])


def overhead(measurements: pd.DataFrame) -> pd.DataFrame:
    """Kernel and train-step timings from bench JSONL: the contract's columns first, then
    iqr_ms, img/s (step bench), which bench, why a variant was skipped, the card and the
    file. Sorted by card, bench, shape, pass, dtype, format, then plain, wn, ws, cwn*."""
    extra = ["iqr_ms", "img_per_s", "bench", "reason", "card", "file"]
    table = _with(measurements, *OVERHEAD_COLUMNS, *extra)[[*OVERHEAD_COLUMNS, *extra]]
    family = table.variant.astype(str).str.split("-").str[0]
    return (table.assign(_v=family.map({**METHOD_ORDER, "ws": 1.5}).fillna(len(METHOD_ORDER)))
            .sort_values(["card", "bench", "shape", "pass", "dtype", "memory_format", "_v"], kind="stable")
            .drop(columns="_v").reset_index(drop=True))


def loaders(rows: pd.DataFrame) -> pd.DataFrame:
    """Data-loader throughput rows from bench JSONL (``cpu_ms_per_img``: CPU time of the
    process and its workers per image; NaN in files written before it was measured)."""
    columns = ["loader", "device", "batch_size", "images", "skipped", "img_per_s", "cpu_ms_per_img", "card", "file"]
    return _with(rows, *columns)[columns].reset_index(drop=True)


def reproducibility(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: status, seed, config hash, world size, and the environment
    fields that pin the result (git commit, hosts, SLURM ids and restarts, versions)."""
    keep = ["run", "status", "reason", "note", "seed", "dataset", "model", "method", "variant",
            "config_hash", "world_size", "nodes", "last_epoch", "planned_epochs", "updated"]
    env = pd.DataFrame([env_summary(e, a) for e, a in zip(runs.env, runs.attempts)], index=runs.index)
    # A job run from a code snapshot outside git: the commit its submission recorded.
    recorded = [(d.get("job", ""), d.get("commit", "")) for d in runs.submitted]
    sub = pd.DataFrame(recorded, index=runs.index, columns=["job", "commit"], dtype=object)
    env["git_commit"] = env.git_commit.mask(env.git_commit == "", sub.commit)
    env.insert(0, "job", sub.job)
    table = pd.concat([runs[keep].assign(config_hash=runs.config_hash.str[:12]), env], axis=1)
    return ordered(table, ["seed"])
