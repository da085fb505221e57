"""The report's figures, drawn on matplotlib's Agg canvas without pyplot (no display, no
global state):

- training curves as in the paper's figures: train and val top-1 error (%) against epoch,
  one line per method (mean over seeds) with a min-max band, one PNG per dataset and model;
- kernel overhead: each variant's time over the plain layer's, per layer shape, one PNG
  per card (dozens of googlenet_bn shapes read better as points than as table rows).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
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


VARIANT_COLORS = {"cwn-reference": "tab:gray", "cwn-explicit": "tab:orange", "cwn-triton": "tab:red",
                  "cwn-compiled": "tab:purple", "wn": "tab:blue", "ws": "tab:green", "cwn": "tab:red"}
FORMAT_MARKERS = {"nchw": "o", "nhwc": "s"}


def _numbers_first(shape: str) -> list[int | str]:
    """Sort key: ``64x96x28x28`` before ``64x128x28x28`` (its pieces alternate text, number)."""
    return [int(piece) if i % 2 else piece for i, piece in enumerate(re.split(r"(\d+)", shape))]


def _overhead_panel(ax: Axes, rows: pd.DataFrame, shapes: list[str]) -> None:
    for (variant, fmt), series in rows.groupby(["variant", "memory_format"], sort=False, dropna=False):
        geomean = float(np.exp(np.log(series.ratio_vs_plain).mean()))
        ax.plot([shapes.index(s) for s in series["shape"]], series.ratio_vs_plain, ls="", ms=4,
                marker=FORMAT_MARKERS.get(fmt, "^"), color=VARIANT_COLORS.get(variant),
                label=f"{variant} {fmt} (geomean {geomean:.3f})")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")  # ratios from ~1.01 (fused) to several x (naive) on one axis
    ax.yaxis.set_major_formatter("{x:.2f}")
    ax.yaxis.set_minor_formatter("{x:.2f}")
    ax.tick_params(axis="y", which="both", labelsize=7)
    ax.set_xticks(range(len(shapes)), [s.split(":", 1)[-1] for s in shapes], rotation=90, fontsize=6)
    ax.set_ylabel("time / plain (median of pairs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the points, not on them


def overhead_plots(oh: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``overhead_<card>.png`` under ``out`` from the overhead table's measured conv
    and linear rows: x the layer shape, y time over plain (log scale), one panel per pass
    and dtype, one series per variant and memory format; returns the files written."""
    if oh.empty:
        return []
    conv = oh.bench.isna() | (oh.bench == "conv")  # step rows are whole models
    rows = oh[conv & (oh.variant != "plain") & oh.ratio_vs_plain.notna()]
    written = []
    for card, per_card in rows.groupby("card", sort=False):
        shapes = sorted(set(per_card["shape"]), key=_numbers_first)
        panels = list(per_card.groupby(["pass", "dtype"], sort=False))
        cols = min(len(panels), 2)
        fig = Figure(figsize=(cols * max(7.0, 3.5 + 0.12 * len(shapes)), 4.5 * math.ceil(len(panels) / cols)),
                     layout="constrained")
        FigureCanvasAgg(fig)
        axes = list(fig.subplots(math.ceil(len(panels) / cols), cols, squeeze=False).flat)
        for ax, ((pass_, dtype), panel) in zip(axes, panels):
            _overhead_panel(ax, panel, shapes)
            ax.set_title(f"{pass_}, {dtype}")
        for ax in axes[len(panels):]:  # an odd panel count leaves one empty
            ax.set_visible(False)
        fig.suptitle(f"{card}: CWN / WN / WS layer time over the plain layer")
        path = out / f"overhead_{_safe(str(card))}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written
