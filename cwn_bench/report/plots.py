"""Training curves as in the paper's figures: train and val top-1 error (%) against
epoch, one line per method (mean over seeds) with a min-max band, one PNG per dataset
and model. Drawn on matplotlib's Agg canvas, without pyplot (no display, no global state)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cwn_bench.report.runs import GROUP_KEYS, SET_KEYS
from cwn_bench.report.tables import LIVE, ordered

PANELS = (("train_top1_err", "train top-1 error (%)"), ("val_top1_err", "val top-1 error (%)"))
COLORS = {"plain": "tab:blue", "wn": "tab:orange", "cwn": "tab:red"}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _label(group: pd.DataFrame) -> str:
    first = group.iloc[0]
    running = group.loc[group.status == "running", "run"].nunique()
    label = f"{first.method} {first.variant}".strip() + f" (n={group.run.nunique()}"
    return label + (f", {running} running)" if running else ")")


def _panel(ax: Axes, runs: pd.DataFrame, column: str, ylabel: str) -> None:
    for _, group in ordered(runs).groupby(GROUP_KEYS, sort=False, dropna=False):
        if column not in group or group[column].isna().all():
            continue
        per_epoch = group.groupby("epoch")[column].agg(["mean", "min", "max"])
        color = COLORS.get(group.method.iloc[0]) if group.variant.iloc[0] == "" else None
        marker = "o" if len(per_epoch) <= 20 else None
        line, = ax.plot(per_epoch.index, per_epoch["mean"], marker=marker, ms=3, color=color, label=_label(group))
        ax.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def curves(epochs: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``curves_<dataset>_<model>.png`` under ``out`` from the finished epochs of
    completed and running runs; returns the files written."""
    live = epochs[epochs.status.isin(LIVE)] if not epochs.empty else epochs
    written = []
    for (dataset, model), runs in live.groupby(list(SET_KEYS)):
        fig = Figure(figsize=(11, 4.2), layout="constrained")  # no pyplot: no global figure state
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(PANELS))
        for ax, (column, ylabel) in zip(axes, PANELS):
            _panel(ax, runs, column, ylabel)
        fig.suptitle(f"{dataset} / {model}: top-1 error, mean over seeds (band: min-max)")
        path = out / f"curves_{_safe(dataset)}_{_safe(model)}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written
