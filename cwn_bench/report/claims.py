"""The paper's claims about each experiment it ran, checked on our runs.

The paper's numbers come from :func:`cwn_bench.report.paper.paper_columns`, the function
that puts them beside ours in the accuracy table, so a row added to paper.py gets its
claims without more code. An experiment of the paper is a set of our runs (a dataset,
model and variant, or a selection) whose methods all map to one source of the paper
(``Table 3``, ...). For each:

- each method's error against plain's, in the direction the paper found (``wn`` higher
  than ``plain`` on CIFAR-10 ResNet-56 is a claim too), and CWN's against WN's;
- the paper's lowest method has the lowest error of all the methods we ran;
- top-5 the same where the paper gives top-5 errors;
- Figure 2 (c), when ``fim`` records exist: NNN, WN and CWN condition the relative FIM
  better (lower condition number) than plain, and CWN better than WN, per probed layer
  (each run's mean log10 condition number over its records).

Verdicts: ``reproduced`` (the paper's direction at p < 0.05, two-sided Welch),
``contradicted`` (the opposite at p < 0.05) or ``inconclusive`` (neither, or fewer than 2
seeds on a side). Our runs: the counted (completed) ones, per variant, or with
``--select`` the selected config of each method.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from cwn_bench.report.paper import paper_columns
from cwn_bench.report.stats import ALPHA, Welch, welch
from cwn_bench.report.tables import METHOD_ORDER
from cwn_bench.rundir import METRICS as METRICS_FILE
from cwn_bench.rundir.metrics import load as load_metrics

COLUMNS = ["dataset", "model", "claim", "methods", "paper_values", "our_values", "p_value", "verdict", "variant",
           "source"]
METRICS = (("val_top1_err", "top-1 error"), ("val_top5_err", "top-5 error"))  # column, words
FIGURE2_BETTER_THAN_PLAIN = ("nnn", "wn", "cwn")  # Sec. 4.1: "CWN, WN, NNN achieve better conditioning"
FIGURE2_PAIRS = (("cwn", "wn"),)  # "Compared to WN, our proposed CWN method further significantly improves"
FIGURE2_SOURCE = "Figure 2c (Yale-B MLP)"


def _order(methods: list[str]) -> list[str]:
    return sorted(methods, key=lambda m: (METHOD_ORDER.get(m, len(METHOD_ORDER)), m))


def _verdict(tests: list[Welch], want_lower: list[bool]) -> tuple[str, float]:
    """Verdict over tests that should all show a lower (``want_lower``) or higher mean;
    the p-value that decided it (the smallest contradicting one, else the largest; NaN
    when a test had fewer than 2 seeds on a side)."""
    against = [t.p_value for t, low in zip(tests, want_lower) if t.p_value < ALPHA and (t.diff < 0) != low]
    if against:
        return "contradicted", min(against)
    ps = [t.p_value for t in tests]
    p = math.nan if not ps or any(math.isnan(x) for x in ps) else max(ps)  # NaN: a test lacked seeds
    agree = all(t.p_value < ALPHA and (t.diff < 0) == low for t, low in zip(tests, want_lower))
    return ("reproduced" if tests and agree else "inconclusive"), p


def _ours(values: pd.Series, method: str) -> str:
    v = values.dropna()
    text = f"{v.mean():.2f}" + (f" ± {v.std():.2f}" if len(v) > 1 else "")
    return f"{method} {text} (n={len(v)})"


def _paper(value: float, method: str) -> str:
    return f"{method} {value:.2f}"


def _pair(a: str, b: str, words: str, paper: dict[str, float], ours: dict[str, pd.Series]) -> list:
    """``[claim, methods, paper_values, our_values, p_value, verdict]`` of "a's <words> is
    lower (or higher, as in the paper) than b's"."""
    lower = paper[a] < paper[b]
    test = welch(ours[a], ours[b])
    verdict, p = _verdict([test], [lower])
    claim = f"{a}'s {words} is {'lower' if lower else 'higher'} than {b}'s"
    return [claim, f"{a} vs {b}", f"{_paper(paper[a], a)}; {_paper(paper[b], b)}",
            f"{_ours(ours[a], a)}; {_ours(ours[b], b)}", p, verdict]


def _lowest(words: str, paper: dict[str, float], ours: dict[str, pd.Series]) -> list | None:
    best = min(paper, key=paper.get, default=None)
    others = [m for m in _order(list(paper)) if m != best and m in ours]
    if best not in ours or not others:
        return None
    verdict, p = _verdict([welch(ours[best], ours[m]) for m in others], [True] * len(others))
    return [f"{best} has the lowest {words} of all methods", ", ".join([best, *others]),
            "; ".join(_paper(paper[m], m) for m in [best, *others]),
            "; ".join(_ours(ours[m], m) for m in [best, *others]), p, verdict]


def _table_claims(unit: pd.DataFrame) -> list[list]:
    """Claims of one experiment of the paper on one unit of our runs (final errors per
    run, with the paper's ``paper_top1_err`` / ``paper_top5_err`` per method)."""
    rows = []
    for column, words in METRICS:
        by_method = {m: g for m, g in unit.groupby("method")}
        paper = {m: float(g[f"paper_{column[4:]}"].iloc[0]) for m, g in by_method.items()
                 if g[f"paper_{column[4:]}"].notna().any()}
        ours = {m: by_method[m][column] for m in paper if by_method[m][column].notna().any()}
        pairs = [(m, "plain") for m in _order(list(paper)) if m != "plain"] + [("cwn", "wn")]
        for a, b in pairs:
            if a in ours and b in ours and paper[a] != paper[b]:
                rows.append(_pair(a, b, words, paper, ours))
        lowest = _lowest(words, paper, ours)
        if lowest:
            rows.append(lowest)
    return rows


def fim_values(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run and probed layer: the mean log10 condition number of its ``fim`` records
    (metrics.jsonl); columns run, layer, log10_cond. Bad lines are the reader's
    problems, already reported; here they are passed over."""
    rows = []
    for run in runs.run:
        records, _ = load_metrics(Path(run) / METRICS_FILE)
        by_layer: dict[str, list[float]] = defaultdict(list)
        for r in records:
            cond = r.get("cond")
            if r.get("kind") == "fim" and isinstance(cond, (int, float)) and cond > 0:
                by_layer[str(r.get("layer"))].append(math.log10(cond))
        rows += [(run, layer, float(np.mean(v))) for layer, v in by_layer.items()]
    return pd.DataFrame(rows, columns=["run", "layer", "log10_cond"])


def _figure2_claims(unit: pd.DataFrame) -> list[list]:
    rows = []
    words_base = "FIM condition number (log10, layer {})"
    for layer, per_layer in unit.groupby("layer"):
        words = words_base.format(layer)
        ours = {m: g.log10_cond for m, g in per_layer.groupby("method")}
        pairs = [(m, "plain") for m in FIGURE2_BETTER_THAN_PLAIN] + list(FIGURE2_PAIRS)
        for a, b in pairs:
            if a in ours and b in ours:
                verdict, p = _verdict([welch(ours[a], ours[b])], [True])
                rows.append([f"{a}'s {words} is lower than {b}'s", f"{a} vs {b}", f"{a} lower than {b}",
                             f"{_ours(ours[a], a)}; {_ours(ours[b], b)}", p, verdict])
    return rows


def claims(final: pd.DataFrame, runs: pd.DataFrame, units: pd.Series) -> pd.DataFrame:
    """The table of :data:`COLUMNS`. ``final``: one row per counted run (run, dataset,
    model, method, val_top1_err, val_top5_err; see :func:`compare.final_errors`), of the
    runs to judge; ``units``: per row of ``final``, the label of the set of runs its
    methods are compared within (its variant, or the selection it came from)."""
    known = final.assign(unit=units).merge(runs.drop(columns=[c for c in final if c != "run"], errors="ignore"),
                                           on="run", how="left")
    known = pd.concat([known, paper_columns(known)], axis=1)
    rows = []
    for (dataset, model, unit, source), members in known[known.paper_source != ""].groupby(
            ["dataset", "model", "unit", "paper_source"], sort=False):
        rows += [[dataset, model, *row, unit, source] for row in _table_claims(members)]
    fim = fim_values(runs[runs.run.isin(final.run)])
    if not fim.empty:
        fim = fim.merge(known[["run", "dataset", "model", "method", "unit"]], on="run")
        for (dataset, model, unit), members in fim.groupby(["dataset", "model", "unit"], sort=False):
            rows += [[dataset, model, *row, unit, FIGURE2_SOURCE] for row in _figure2_claims(members)]
    return pd.DataFrame(rows, columns=COLUMNS)
