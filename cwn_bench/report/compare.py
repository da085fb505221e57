"""Each method against ``plain`` (and ``cwn`` against ``wn``), per dataset, model and
variant: the difference of the mean final val errors over seeds (percentage points,
method minus baseline: negative is better), its 95% Welch interval and the two-sided
Welch p-value, for top-1 and top-5, and a verdict on top-1."""

from __future__ import annotations

import pandas as pd

from cwn_bench.report.runs import GROUP_KEYS
from cwn_bench.report.stats import ALPHA, Welch, welch
from cwn_bench.report.tables import METHOD_ORDER

COLUMNS = ["dataset", "model", "variant", "method", "baseline", "n", "n_baseline", "diff_top1_err", "ci_low",
           "ci_high", "p_value", "diff_top5_err", "ci_low_top5", "ci_high_top5", "p_value_top5", "verdict"]
EXTRA_BASELINES = {"cwn": ("wn",)}  # besides plain: CWN is WN plus centring


def final_errors(done: pd.DataFrame) -> pd.DataFrame:
    """One row per counted run: its group columns, seed and final-epoch errors.
    ``done``: :func:`cwn_bench.report.tables.counted_epochs`."""
    return done.groupby("run").tail(1)[["run", *GROUP_KEYS, "seed", "val_top1_err", "val_top5_err"]]


def verdict(test: Welch) -> str:
    """``better`` / ``worse`` (lower / higher error at p < 0.05), ``no difference`` or
    ``too few seeds`` (fewer than 2 on a side)."""
    if test.n_a < 2 or test.n_b < 2:
        return "too few seeds"
    if test.p_value < ALPHA:
        return "better" if test.diff < 0 else "worse"
    return "no difference"


def comparisons(done: pd.DataFrame) -> pd.DataFrame:
    """The table of :data:`COLUMNS`, one row per (dataset, model, variant, method,
    baseline) whose baseline ran in that variant."""
    rows = []
    final = final_errors(done)
    for (dataset, model, variant), runs in final.groupby(["dataset", "model", "variant"], sort=False):
        by_method = dict(tuple(runs.groupby("method")))
        for method in sorted(by_method, key=lambda m: METHOD_ORDER.get(m, len(METHOD_ORDER))):
            for baseline in ("plain", *EXTRA_BASELINES.get(method, ())):
                if method == baseline or baseline not in by_method:
                    continue
                a, b = by_method[method], by_method[baseline]
                top1 = welch(a.val_top1_err, b.val_top1_err)
                top5 = welch(a.val_top5_err, b.val_top5_err)
                rows.append([dataset, model, variant, method, baseline, top1.n_a, top1.n_b, top1.diff, top1.ci_low,
                             top1.ci_high, top1.p_value, top5.diff, top5.ci_low, top5.ci_high, top5.p_value,
                             verdict(top1)])
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["dataset", "model", "variant"], kind="stable").reset_index(drop=True)
