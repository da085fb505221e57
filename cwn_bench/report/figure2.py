"""The paper's Figure 2 (Huang et al. 2017, the Yale-B case study) from the runs' probe records.

Reads the ``probe``, ``fim`` and ``step`` records of ``metrics.jsonl`` (written with
``train.probe_every`` / ``train.fim_layers``, see cwn_bench/train/probes.py) of completed and
running runs, and per dataset and model (and variant: one figure per lr of a sweep) draws
``figure2_<dataset>_<model>.png`` with the paper's four panels against updates (global step),
one colour per method, the mean over seeds: (a) the pre-activation mean and (b) variance of the first two layers (solid:
the first, dashed: the second), (c) log10 of the relative-FIM condition number of each FIM
layer (solid: the first listed, e.g. the second-last linear), (d) the training loss of the step
records. The section's table gives each curve's first and last value.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cwn_bench.report.plots import COLORS, _safe
from cwn_bench.report.runs import SET_KEYS
from cwn_bench.report.sections import Section, num
from cwn_bench.report.tables import LIVE, ordered
from cwn_bench.rundir import METRICS
from cwn_bench.rundir.metrics import load as load_metrics

KINDS = ("probe", "fim", "step")
CURVE_KEYS = ["dataset", "model", "method", "variant"]  # one line per method (and variant), mean over seeds
STYLES = ("-", "--", ":", "-.")
METHOD_COLORS = {**COLORS, "nnn": "tab:green"}
PANELS = (("probe", "preact_mean", "(a) pre-activation mean"), ("probe", "preact_var", "(b) pre-activation variance"),
          ("fim", "log10_cond", "(c) log10 cond(relative FIM)"), ("step", "loss", "(d) training loss"))


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def traces(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per probe / fim / step record of the live runs in ``runs`` (:func:`runs.runs_frame`):
    ``run, group, dataset, model, method, variant, seed, kind, step, layer, order`` (the layer's position in
    its run's records: model order for probes, fim_layers order for fim) and the values
    ``preact_mean, preact_var, log10_cond, loss``; empty when no run has probe records."""
    rows = []
    live = runs[runs.status.isin(LIVE)] if not runs.empty else runs
    for run in live.itertuples():
        records = load_metrics(Path(run.run) / METRICS)[0]  # bad lines are already problems of runs.py
        if not any(r.get("kind") in ("probe", "fim") for r in records):
            continue
        order: dict[tuple[str, str], int] = {}
        for r in records:
            kind, step = r.get("kind"), _number(r.get("step"))
            if kind not in KINDS or math.isnan(step):
                continue
            layer = str(r.get("layer", ""))
            cond = _number(r.get("cond"))
            rows.append({"run": run.run, "group": run.group, **{k: getattr(run, k) for k in CURVE_KEYS},
                         "seed": run.seed, "kind": kind, "step": step, "layer": layer,
                         "order": order.setdefault((kind, layer), sum(k == kind for k, _ in order)),
                         "preact_mean": _number(r.get("preact_mean")), "preact_var": _number(r.get("preact_var")),
                         "log10_cond": math.log10(cond) if cond > 0 else math.nan, "loss": _number(r.get("loss"))})
    return pd.DataFrame(rows)


def _curves(tr: pd.DataFrame, kind: str, value: str) -> list[tuple[tuple, str, int, int, pd.Series]]:
    """``[(curve keys, layer, layer order, runs, mean over seeds by step)]`` of one panel
    (probe panels: the first two layers of each run)."""
    rows = tr[(tr.kind == kind) & tr[value].notna()]
    if kind == "probe":
        rows = rows[rows.order < 2]
    return [(keys[:-2], keys[-2], keys[-1], part.run.nunique(), part.groupby("step")[value].mean())
            for keys, part in rows.groupby([*CURVE_KEYS, "layer", "order"], sort=False)]


def plots(tr: pd.DataFrame, out: Path, selection: pd.DataFrame | None = None) -> list[Path]:
    """Write ``figure2_<dataset>_<model>.png`` under ``out`` for each dataset and model with
    probe records in ``tr`` (:func:`traces`), the methods side by side; configs that differ in
    more than the method (e.g. an lr sweep) get one figure each, ``..._<variant>.png``
    (``optim.lr_0.5``); with a ``selection`` (report --select: its ``group`` and ``variant``
    columns) also ``..._selected.png``, each method at its selected config, as the paper's
    figure shows each method at its chosen learning rate; returns the files written."""
    written = []
    if tr.empty:
        return written
    if selection is not None and not selection.empty:
        label = {g: "selected" + (f", {v}" if v else "") for g, v in zip(selection.group, selection.variant)}
        tr = pd.concat([tr, tr[tr.group.isin(label)].assign(variant=lambda f: f.group.map(label))])
    for (dataset, model, variant), part in ordered(tr, ["order", "step"]).groupby([*SET_KEYS, "variant"], sort=False):
        fig = Figure(figsize=(13, 8.5), layout="constrained")  # no pyplot: no global figure state
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2).flat
        for ax, (kind, value, title) in zip(axes, PANELS):
            for keys, layer, order, _, series in _curves(part, kind, value):
                label = keys[2] + (f" {layer}" if layer else "")
                ax.plot(series.index, series.values, ls=STYLES[order % len(STYLES)], lw=1.2,
                        color=METHOD_COLORS.get(keys[2]), label=label)
            ax.set_title(title)
            ax.set_xlabel("updates")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="x-small")
        fig.suptitle(f"Figure 2, {dataset} / {model}{f', {variant}' if variant else ''}: mean over seeds")
        path = out / f"figure2_{_safe(dataset)}_{_safe(model)}{f'_{_safe(variant)}' if variant else ''}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def summary(tr: pd.DataFrame) -> pd.DataFrame:
    """One row per curve of the figure (the first two probed layers, every FIM layer, the loss):
    dataset, model, method, variant, quantity, layer, seeds, first/last step and value (means over seeds)."""
    rows = []
    if tr.empty:
        return pd.DataFrame()
    for kind, value, _ in PANELS:
        for keys, layer, _, seeds, series in _curves(tr, kind, value):
            rows.append({**dict(zip(CURVE_KEYS, keys)), "quantity": value, "layer": layer, "seeds": seeds,
                         "first_step": series.index[0], "first": series.iloc[0], "last_step": series.index[-1],
                         "last": series.iloc[-1]})
    return ordered(pd.DataFrame(rows))


def section(fig2: pd.DataFrame) -> Section:
    """The report's "Figure 2" section from :func:`summary`."""
    table = pd.DataFrame({
        "dataset": fig2.dataset, "model": fig2.model, "method": fig2.method, "variant": fig2.variant,
        "quantity": fig2.quantity, "layer": fig2.layer, "seeds": fig2.seeds.astype(str),
        "first (step)": [f"{num(v, 3)} ({int(s)})" for v, s in zip(fig2["first"], fig2.first_step)],
        "last (step)": [f"{num(v, 3)} ({int(s)})" for v, s in zip(fig2["last"], fig2.last_step)]})
    note = ("The paper's Figure 2 (Yale-B case study): pre-activation mean and variance over the batch and all "
            "neurons of the first two layers, log10 of the relative-FIM condition number (F's non-zero spectrum "
            "when the probe set is smaller than F; fim records give the rank), and the training loss, against "
            "updates; mean over seeds of completed and running runs.")
    return Section("figure2", "Figure 2", note, table.astype(str).replace("nan", ""))

