"""Two-sample statistics over seeds: Welch's t-test and its confidence interval, and the
MLPerf olympic mean. Inputs are per-seed values (errors in percent, times in seconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided significance level; the intervals are 1 - ALPHA = 95%


@dataclass(frozen=True)
class Welch:
    """``a`` minus ``b``: difference of means, its 95% interval and the two-sided p-value
    (NaN with fewer than 2 values on a side)."""

    n_a: int
    n_b: int
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def welch(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> Welch:
    """Welch's unequal-variance t-test of mean(a) - mean(b) (``scipy.stats.ttest_ind``,
    ``equal_var=False``) with the Welch-Satterthwaite interval. NaN values are dropped.
    Two sides each without spread (every seed equal) give p = 0 when the means differ and
    1 when they do not, the limit of the test as the spread goes to 0."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    diff = float(x.mean() - y.mean()) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return Welch(len(x), len(y), diff, math.nan, math.nan, math.nan)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if va + vb == 0:
        return Welch(len(x), len(y), diff, diff, diff, 0.0 if diff else 1.0)
    p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf(1 - ALPHA / 2, dof)) * math.sqrt(va + vb)
    return Welch(len(x), len(y), diff, diff - half, diff + half, p)


def olympic_mean(values: list[float] | np.ndarray, minimum: int = 5) -> float:
    """MLPerf's olympic mean: drop the fastest and the slowest, average the rest; NaN with
    fewer than ``minimum`` values. A run that never got there counts as infinitely slow
    (``inf``): one is dropped as the slowest, a second leaves the mean undefined (NaN)."""
    x = np.sort(np.asarray(values, dtype=float))
    if len(x) < minimum:
        return math.nan
    kept = x[1:-1]
    return float(kept.mean()) if np.isfinite(kept).all() else math.nan
