"""report.md / index.html sections of the tables that decide: the paper's claims, the
comparisons against plain and the model selection (strings, see :mod:`sections`)."""

from __future__ import annotations

import pandas as pd

from cwn_bench.report.sections import Section, num


def pvalue(p: object) -> str:
    if p is None or pd.isna(p):
        return ""
    return f"{float(p):.3f}" if float(p) >= 0.001 else f"{float(p):.1e}"


def _diff(diff: object, lo: object, hi: object) -> str:
    text = num(diff)
    return f"{text} [{num(lo)}, {num(hi)}]" if text and not pd.isna(lo) else text


def claims_section(cl: pd.DataFrame, selected: bool) -> Section:
    table = cl.assign(p_value=cl.p_value.map(pvalue)).drop(columns="methods").astype(str)
    counts = cl.verdict.value_counts()
    note = (f"{counts.get('reproduced', 0)} reproduced, {counts.get('contradicted', 0)} contradicted, "
            f"{counts.get('inconclusive', 0)} inconclusive. Each claim the paper makes about an experiment it ran "
            "(Tables 1-4, Sec. 4.2; Figure 2 from fim records), checked on the completed runs with a two-sided "
            "Welch t-test over seeds: reproduced = the paper's direction at p < 0.05, contradicted = the opposite "
            "at p < 0.05, else inconclusive (p is the largest of the tests a claim needs, or the contradicting one).")
    if selected:
        note += " Each method is represented by its selected config (see Model selection)."
    return Section("claims", "The paper's claims", note, table, latex=True)


def no_claims_section() -> Section:
    return Section("claims", "The paper's claims", "No completed run is of an experiment the paper ran (Tables 1-4: "
                   "imagenet/googlenet_bn, cifar10 and cifar100 resnet56, the MLP tables; cifar vgg_a and "
                   "googlenet_bn of Sec. 4.2) and none has fim records (Figure 2): no claim to check.", pd.DataFrame())


def comparisons_section(cmp: pd.DataFrame) -> Section:
    table = pd.DataFrame({
        "dataset": cmp.dataset, "model": cmp.model, "variant": cmp.variant, "method": cmp.method,
        "vs": cmp.baseline, "seeds": [f"{a} vs {b}" for a, b in zip(cmp.n, cmp.n_baseline)],
        "top-1 diff [95% CI] (pp)": [_diff(*v) for v in zip(cmp.diff_top1_err, cmp.ci_low, cmp.ci_high)],
        "p (top-1)": cmp.p_value.map(pvalue),
        "top-5 diff [95% CI] (pp)": [_diff(*v) for v in zip(cmp.diff_top5_err, cmp.ci_low_top5, cmp.ci_high_top5)],
        "p (top-5)": cmp.p_value_top5.map(pvalue), "verdict": cmp.verdict})
    note = ("Final val error of the method minus the baseline's, mean over seeds in percentage points (negative: "
            "the method is better), with the 95% Welch confidence interval and the two-sided Welch t-test "
            "(scipy.stats.ttest_ind, equal_var=False). Verdict on top-1: better / worse at p < 0.05, no difference "
            "(p >= 0.05), too few seeds (fewer than 2 on a side).")
    return Section("comparisons", "Comparisons against plain", note, table, latex=True)


def selection_section(sel: pd.DataFrame, keys: list[str]) -> Section:
    errs = ("holdout_top1_err", "val_top1_err", "val_top5_err")
    table = sel.drop(columns=["group"]).assign(**{c: sel[c].map(num) for c in errs}).astype(str)
    fallback = sel.criterion.str.contains("no holdout").sum()
    note = (f"Per dataset, model and method, the value(s) of {', '.join(keys)} whose runs have the lowest mean "
            "final holdout top-1 error (data.holdout: a validation split of the training set), as the paper chose "
            "the learning rates of Tables 1-2; reported with the test (val_*) errors of that config.")
    if fallback:
        note += (f" {fallback} row(s) had no holdout split and were selected on the test error val_top1_err "
                 "itself (criterion column): an optimistic choice, not the paper's protocol.")
    return Section("selection", "Model selection", note, table, latex=True)
