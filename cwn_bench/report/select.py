"""Model selection as the paper made Tables 1-2: per dataset, model and method, the swept
value(s) of the selected keys (``--select optim.lr``) whose runs have the lowest mean
final ``holdout_top1_err`` (the validation split ``data.holdout`` takes from the training
set), reported with their test (``val_*``) errors. Runs without a holdout split are
selected on ``val_top1_err`` instead, and the table says so (``criterion``)."""

from __future__ import annotations

import pandas as pd

from cwn_bench.errors import UserError
from cwn_bench.report.grouping import NOT_COMPARED
from cwn_bench.report.runs import SET_KEYS
from cwn_bench.report.tables import ordered

HOLDOUT, TEST = "holdout_top1_err", "val_top1_err"
NOT_SELECTABLE = (*NOT_COMPARED, "model.method")  # averaged over / the rows of the table


def _rest(variant: str, keys: list[str]) -> str:
    """A variant label (``"optim.lr=0.1, model.init=he"``) without the selected keys."""
    parts = [p for p in variant.split(", ") if p and p.partition("=")[0] not in keys]
    return ", ".join(parts)


def check_keys(keys: list[str], runs: pd.DataFrame) -> None:
    """UserError for a key that cannot be selected on or that no run's config holds."""
    for key in keys:
        if key in NOT_SELECTABLE:
            raise UserError(f"--select {key}: not a hyper-parameter to select ({', '.join(NOT_SELECTABLE)} are "
                            "averaged over or are the table's rows)")
        if not any(key in config for config in runs.config):
            raise UserError(f"--select {key}: no run's config has this key (expected a dotted key such as optim.lr)")


def finals(runs: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """One row per counted run: group columns, final ``holdout_top1_err`` (NaN without a
    holdout split), ``val_top1_err``, ``val_top5_err``."""
    last = done.groupby("run").tail(1)
    holdout = pd.to_numeric(last[HOLDOUT], errors="coerce") if HOLDOUT in last else float("nan")
    return last.assign(**{HOLDOUT: holdout})[["run", "group", *SET_KEYS, "method", "variant", HOLDOUT, TEST,
                                              "val_top5_err"]]


def selection(runs: pd.DataFrame, done: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Columns ``dataset, model, method, <keys>..., n_seeds, holdout_top1_err,
    val_top1_err, val_top5_err`` (means over seeds of the chosen config), then
    ``criterion`` (the column minimised), ``candidates`` (configs compared), ``variant``
    (what else differs, kept apart) and ``group``. ``done``: counted epochs."""
    check_keys(keys, runs)
    final = finals(runs, done)
    if final.empty:
        return pd.DataFrame(columns=[*SET_KEYS, "method", *keys, "n_seeds", HOLDOUT, TEST, "val_top5_err"])
    config = runs.drop_duplicates("group").set_index("group").config
    per_group = final.groupby("group").agg(
        dataset=("dataset", "first"), model=("model", "first"), method=("method", "first"),
        variant=("variant", "first"), n_seeds=("run", "size"), has_holdout=(HOLDOUT, lambda s: s.notna().all()),
        **{c: (c, "mean") for c in (HOLDOUT, TEST, "val_top5_err")}).reset_index()
    for key in keys:
        per_group[key] = [config[g].get(key, "<unset>") for g in per_group.group]
    per_group["variant"] = [_rest(v, keys) for v in per_group.variant]
    rows = []
    for _, candidates in per_group.groupby([*SET_KEYS, "method", "variant"], sort=False):
        criterion = HOLDOUT if candidates.has_holdout.all() else TEST
        best = candidates.sort_values(criterion, kind="stable").iloc[0]
        rows.append({**best.to_dict(), "criterion": criterion if criterion == HOLDOUT else
                     f"{TEST} (no holdout split)", "candidates": len(candidates)})
    columns = [*SET_KEYS, "method", *keys, "n_seeds", HOLDOUT, TEST, "val_top5_err", "criterion", "candidates",
               "variant", "group"]
    return ordered(pd.DataFrame(rows)[columns])
