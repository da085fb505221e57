"""Read run dirs into two frames: ``runs`` (one row per run) and ``epochs`` (one row per
epoch record, the run's columns joined: the long tidy table every table is grouped from).

A run's group is its resolved config as run.json records it (seed left out, see
:mod:`cwn_bench.report.grouping`) and world size; groups of one dataset and model that
differ in more than the method are labelled by the keys and values that differ
(``variant``, e.g. ``optim.lr=0.5``) and never merged.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from cwn_bench import config as cfgmod
from cwn_bench.errors import UserError, brief
from cwn_bench.report.grouping import compared, group_ids
from cwn_bench.report.paper import MATCH_KEYS
from cwn_bench.rundir import METRICS, RUN_JSON, metrics, runjson
from cwn_bench.rundir.files import Problem

SET_KEYS = ("dataset", "model")  # runs compared with each other in one table / figure
GROUP_KEYS = ["dataset", "model", "method", "variant", "group"]
# Epoch-record fields the tables compute with; a value that is not a number becomes NaN
# and a Problem (null is allowed: e.g. no GPU memory on a CPU run).
NUMERIC = ("step", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err", "val_top5_err", "img_per_s",
           "img_per_s_per_gpu", "data_time_s", "data_wait_share", "wall_s", "peak_gpu_mem_gib")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"name": "mlp"}}`` -> ``{"model.name": "mlp"}``; lists become compact
    JSON text (``[128,64]``) so that every value is hashable and has no ", " in it."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            compound = isinstance(value, (list, dict))
            out[f"{prefix}{key}"] = json.dumps(value, separators=(",", ":")) if compound else value
    return out


def _config_hash(run: dict[str, Any], config: dict[str, Any]) -> str:
    if isinstance(run.get("config_hash"), str) and run["config_hash"]:
        return run["config_hash"]
    try:
        return cfgmod.config_hash(cfgmod.from_dict(config))
    except (UserError, TypeError, ValueError):  # a config from another version of the code
        return hashlib.sha256(json.dumps(compared(flatten(config)), sort_keys=True, default=str).encode()).hexdigest()


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _epoch_records(run_dir: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    records, bad = metrics.load(path)
    problems.extend(bad)
    by_epoch: dict[int, dict[str, Any]] = {}
    for record in records:
        if record.get("kind", "epoch") != "epoch":
            continue
        epoch = record["epoch"]
        if epoch in by_epoch:
            problems.append(Problem(str(path), None, f"epoch {epoch} recorded twice; the last record is kept"))
        for key in NUMERIC:
            value = record.get(key)
            if value is not None and math.isnan(_number(value)):
                problems.append(Problem(str(path), None, f"epoch {epoch}: {key}={brief(value)} is not a number"))
        by_epoch[epoch] = {k: _number(v) if k in NUMERIC else v for k, v in record.items() if k != "kind"}
    return [by_epoch[e] for e in sorted(by_epoch)]


def _hostnames(env: dict[str, Any]) -> list[str]:
    hosts = env.get("hostnames", env.get("hostname"))
    if isinstance(hosts, str):
        return [hosts]
    return sorted({str(h) for h in hosts}) if isinstance(hosts, list) else []


def read_run(run_dir: Path, problems: list[Problem]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """``(row, epoch records)`` of one run dir, or None when its run.json is missing or
    unreadable (then a Problem says why)."""
    run, bad = runjson.load(run_dir)
    problems.extend(bad)
    if run is None:
        return None
    config = run.get("config", {})
    if not config:
        problems.append(Problem(str(run_dir / RUN_JSON), None, "no 'config' mapping; run listed without its config"))
    env = run.get("env", {})
    epochs = _epoch_records(run_dir, problems)
    flat = flatten(config)
    planned = flat.get("train.epochs")
    last = epochs[-1]["epoch"] if epochs else 0
    status = str(run.get("status", "unknown"))
    note = ""
    if status == "completed" and isinstance(planned, int) and last < planned:
        note = f"completed, but metrics.jsonl ends at epoch {last} of {planned}"
        problems.append(Problem(str(run_dir / METRICS), None, note + "; run not counted"))
    world = run.get("world_size", env.get("world_size", 1))
    row = {
        "run": str(run_dir),
        "status": status,
        "reason": run.get("reason") or "",
        "note": note,
        "counted": status == "completed" and not note and bool(epochs),
        "seed": run.get("seed", config.get("seed")),
        "config_hash": _config_hash(run, config),
        "world_size": int(world) if isinstance(world, int) else 1,
        "nodes": len(_hostnames(env)) or 1,
        "global_batch": _number(run.get("global_batch")),
        "dataset": str(flat.get("data.name", "unknown")),
        "model": str(flat.get("model.name", "unknown")),
        "method": str(flat.get("model.method", "unknown")),
        **{col: flat.get(key, default) for col, (key, default) in MATCH_KEYS.items()},  # which paper number
        "last_epoch": last,
        "updated": str(run.get("updated") or ""),  # when run.json was last written (UTC)
        "planned_epochs": planned if isinstance(planned, int) else pd.NA,
        "env": env,
        "attempts": run.get("attempts") if isinstance(run.get("attempts"), list) else [],
        "config": flat,
    }
    return row, epochs


def _variants(runs: pd.DataFrame) -> pd.Series:
    """Per run, the keys and values by which its group differs from the other groups of
    its dataset and model (method and seed aside), e.g. ``"optim.lr=0.5"``."""
    labels = pd.Series("", index=runs.index, dtype=object)
    for _, members in runs.groupby(list(SET_KEYS), dropna=False):
        firsts = members.drop_duplicates("group")
        configs = {g: {**compared(c), "world_size": w}
                   for g, c, w in zip(firsts.group, firsts.config, firsts.world_size)}
        keys = sorted(k for k in set().union(*configs.values()) if k != "model.method")
        differ = [k for k in keys if len({repr(c.get(k, "<unset>")) for c in configs.values()}) > 1]
        by_group = {g: ", ".join(f"{k}={c.get(k, '<unset>')}" for k in differ) for g, c in configs.items()}
        labels[members.index] = members.group.map(by_group)
    return labels


def runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs as a frame with ``group`` and ``variant`` columns added."""
    runs = pd.DataFrame(rows)
    runs["group"] = group_ids(runs)
    runs["variant"] = _variants(runs)
    return runs


def epochs_frame(runs: pd.DataFrame, records: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per epoch record with the run's identifying columns: the long tidy table."""
    frames = [pd.DataFrame(recs).assign(run=run) for run, recs in records.items() if recs]
    if not frames:
        return pd.DataFrame(columns=["run", "epoch", *GROUP_KEYS, "seed", "status", "counted"])
    epochs = pd.concat(frames, ignore_index=True)
    keep = ["run", *GROUP_KEYS, "seed", "status", "counted", "world_size", "nodes"]
    return epochs.merge(runs[keep], on="run", how="left")
