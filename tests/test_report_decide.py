"""The report's tables that decide, on crafted run trees with known numbers: comparisons
(against scipy), the paper's claims (a reproduced and a contradicted one), model
selection on the holdout split, MLPerf's olympic time to target."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from test_report import report, write_run

from cwn_bench.cli import main
from cwn_bench.report.stats import olympic_mean


def runs_of(root: Path, finals: dict[str, list[float]], **kwargs) -> None:
    """One completed run per (method, seed) whose final val top-1 error is the value given
    (two epochs: 50%, then the value)."""
    for method, values in finals.items():
        for seed, final in enumerate(values):
            write_run(root, f"{method}-{kwargs.get('lr', 0.1)}-{seed}", [50.0, final], method=method, seed=seed,
                      **kwargs)


def patch_last_epoch(run_dir: Path, **fields) -> None:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines[-1] = json.dumps({**json.loads(lines[-1]), **fields})
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_comparisons_equal_scipy_welch(tmp_path):
    finals = {"plain": [8.0, 8.4, 7.9, 8.3], "wn": [8.1, 8.0, 8.5], "cwn": [7.0, 7.3, 6.9]}
    runs_of(tmp_path / "runs", finals)
    write_run(tmp_path / "runs", "lonely", [50.0, 9.0], method="cwn", lr=0.5)  # one seed: its own variant
    write_run(tmp_path / "runs", "lonely-plain", [50.0, 9.5], method="plain", lr=0.5)
    md, out = report(tmp_path, tmp_path / "runs")
    cmp = pd.read_csv(out / "comparisons.csv", keep_default_na=False, na_values=[""])
    assert list(cmp.columns) == ["dataset", "model", "variant", "method", "baseline", "n", "n_baseline",
                                 "diff_top1_err", "ci_low", "ci_high", "p_value", "diff_top5_err", "ci_low_top5",
                                 "ci_high_top5", "p_value_top5", "verdict"]
    rows = cmp[cmp.variant == "optim.lr=0.1"].set_index(["method", "baseline"])
    assert sorted(rows.index) == [("cwn", "plain"), ("cwn", "wn"), ("wn", "plain")]
    for (method, baseline), row in rows.iterrows():
        a, b = finals[method], finals[baseline]
        test = stats.ttest_ind(a, b, equal_var=False)
        ci = test.confidence_interval(0.95)
        assert (row.n, row.n_baseline) == (len(a), len(b))
        assert row.diff_top1_err == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
        assert (row.ci_low, row.ci_high, row.p_value) == pytest.approx((ci.low, ci.high, test.pvalue))
        top5 = stats.ttest_ind([x / 3 for x in a], [x / 3 for x in b], equal_var=False)  # write_run: top-5 = /3
        assert (row.ci_low_top5, row.ci_high_top5, row.p_value_top5) == pytest.approx(
            (*top5.confidence_interval(0.95), top5.pvalue))
    assert rows.loc[("cwn", "plain"), "verdict"] == "better"  # p ~ 1e-4
    assert rows.loc[("wn", "plain"), "verdict"] == "no difference"
    assert rows.loc[("cwn", "wn"), "verdict"] == "better"
    lonely = cmp[cmp.variant == "optim.lr=0.5"].iloc[0]
    assert (lonely.verdict, lonely.n, lonely.n_baseline) == ("too few seeds", 1, 1) and math.isnan(lonely.p_value)
    assert lonely.diff_top1_err == pytest.approx(-0.5)
    assert "## Comparisons against plain" in md.read_text()
    assert (out / "comparisons.tex").read_text().count(r"\toprule") == 1


def test_claims_reproduced_and_contradicted(tmp_path):
    # Table 3, CIFAR-10 ResNet-56: plain 7.34, WN 7.58, CWN 6.85. Ours: CWN clearly lower
    # than plain (reproduced), WN clearly lower too where the paper has it higher (contradicted).
    finals = {"plain": [7.3, 7.4, 7.35], "wn": [7.0, 7.05, 7.1], "cwn": [6.8, 6.9, 6.85]}
    runs_of(tmp_path / "runs", finals)
    md, out = report(tmp_path, tmp_path / "runs")
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.columns[:8]) == ["dataset", "model", "claim", "methods", "paper_values", "our_values",
                                        "p_value", "verdict"]
    by_claim = claims.set_index("claim")
    cwn = by_claim.loc["cwn's top-1 error is lower than plain's"]
    assert cwn.verdict == "reproduced" and cwn.paper_values == "cwn 6.85; plain 7.34"
    assert cwn.p_value == pytest.approx(stats.ttest_ind(finals["cwn"], finals["plain"], equal_var=False).pvalue)
    assert cwn.our_values == "cwn 6.85 ± 0.05 (n=3); plain 7.35 ± 0.05 (n=3)"
    wn = by_claim.loc["wn's top-1 error is higher than plain's"]
    assert wn.verdict == "contradicted"
    assert by_claim.loc["cwn's top-1 error is lower than wn's", "verdict"] == "reproduced"
    lowest = by_claim.loc["cwn has the lowest top-1 error of all methods"]
    assert lowest.verdict == "reproduced" and lowest.methods == "cwn, plain, wn"
    assert lowest.p_value == pytest.approx(max(stats.ttest_ind(finals["cwn"], finals[m], equal_var=False).pvalue
                                               for m in ("plain", "wn")))
    assert (claims.dataset == "cifar10").all() and (claims.source == "Table 3").all()
    text = md.read_text()
    assert text.index("## The paper's claims") < text.index("## Accuracy")  # at the top
    assert "3 reproduced, 1 contradicted, 0 inconclusive" in text


def test_claims_inconclusive_with_one_seed_and_none_outside_the_paper(tmp_path):
    runs_of(tmp_path / "runs", {"plain": [7.3], "cwn": [6.8]})
    runs_of(tmp_path / "other", {"plain": [7.3, 7.2], "cwn": [6.8, 6.7]}, dataset="digits", model="mlp")
    md, out = report(tmp_path, tmp_path / "runs", tmp_path / "other")
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims.verdict) == {"inconclusive"} and set(claims.dataset) == {"cifar10"}
    assert claims.p_value.isna().all()  # one seed a side: no test


def test_figure2_claim_from_fim_records(tmp_path):
    conds = {"plain": [1e6, 3e6, 2e6], "cwn": [1e3, 2e3, 1.5e3]}
    for method, values in conds.items():
        for seed, cond in enumerate(values):
            run_dir = write_run(tmp_path / "runs", f"{method}{seed}", [50.0, 20.0], method=method, seed=seed,
                                dataset="digits", model="mlp")
            fim = [{"kind": "fim", "epoch": 1, "step": s, "layer": "fc3", "cond": cond * s, "rank": 4,
                    "samples": 32} for s in (1, 10)]  # mean log10 = log10(cond) + 0.5
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in fim))
    _, out = report(tmp_path, tmp_path / "runs")
    row = pd.read_csv(out / "claims.csv").set_index("claim").loc[
        "cwn's FIM condition number (log10, layer fc3) is lower than plain's"]
    logs = {m: [math.log10(c) + 0.5 for c in v] for m, v in conds.items()}
    assert row.verdict == "reproduced" and row.source == "Figure 2c (Yale-B MLP)"
    assert row.p_value == pytest.approx(stats.ttest_ind(logs["cwn"], logs["plain"], equal_var=False).pvalue)


def test_selection_picks_the_holdout_best_not_the_test_best(tmp_path, capsys):
    root = tmp_path / "runs"
    # cwn: lr 0.1 is best on holdout (10 < 12) though lr 0.5 is best on test (15 < 20).
    for lr, holdout, val in ((0.1, [10.0, 10.2], [20.0, 21.0]), (0.5, [12.0, 12.4], [15.0, 15.5])):
        for seed, (h, v) in enumerate(zip(holdout, val)):
            run_dir = write_run(root, f"cwn-{lr}-{seed}", [50.0, v], lr=lr, seed=seed)
            patch_last_epoch(run_dir, holdout_top1_err=h, holdout_top5_err=h / 3, holdout_loss=1.0)
    for lr, val in ((0.1, 30.0), (0.5, 25.0)):  # plain: no holdout split, selected on test error
        write_run(root, f"plain-{lr}", [50.0, val], method="plain", lr=lr)
    assert main(["report", str(root), "--out", str(tmp_path / "out"), "--select", "optim.lr"]) == 0
    out = tmp_path / "out"
    sel = pd.read_csv(out / "selection.csv").set_index("method")
    assert list(sel.columns[:8]) == ["dataset", "model", "optim.lr", "n_seeds", "holdout_top1_err", "val_top1_err",
                                     "val_top5_err", "criterion"]
    assert sel.loc["cwn", "optim.lr"] == 0.1 and sel.loc["cwn", "n_seeds"] == 2
    assert sel.loc["cwn", "holdout_top1_err"] == pytest.approx(10.1)
    assert sel.loc["cwn", "val_top1_err"] == pytest.approx(20.5)
    assert sel.loc["cwn", "val_top5_err"] == pytest.approx(20.5 / 3)
    assert sel.loc["cwn", "criterion"] == "holdout_top1_err" and sel.loc["cwn", "candidates"] == 2
    assert sel.loc["plain", "optim.lr"] == 0.5 and sel.loc["plain", "criterion"] == "val_top1_err (no holdout split)"
    text = (out / "report.md").read_text()
    assert "## Model selection" in text and "had no holdout split" in text
    claims = pd.read_csv(out / "claims.csv")  # the claims compare the selected configs
    row = claims.set_index("claim").loc["cwn's top-1 error is lower than plain's"]
    assert row.our_values == "cwn 20.50 ± 0.71 (n=2); plain 25.00 (n=1)" and row.variant.startswith("selected on")


def test_select_of_an_unknown_key_is_one_line(tmp_path, capsys):
    write_run(tmp_path / "runs", "a", [10.0])
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--select", "optim.lrr"]) == 2
    err = capsys.readouterr().err
    assert "--select optim.lrr: no run's config has this key" in err and "Traceback" not in err


def test_olympic_mean():
    assert olympic_mean([4, 1, 3, 2, 10]) == 3.0  # 1 and 10 dropped
    assert olympic_mean([4, 1, 3, 2, math.inf]) == 3.0  # the one that never got there is the slowest
    assert math.isnan(olympic_mean([4, 1, 3, math.inf, math.inf]))
    assert math.isnan(olympic_mean([1, 2, 3, 4]))  # fewer than 5


def test_olympic_time_to_target_in_convergence_table(tmp_path):
    # cwn: 6 seeds reaching 20% at epochs 1, 2, 2, 3, 4 and never (10 s per epoch).
    curves = [[20.0, 10, 10, 10], [30.0, 20, 10, 10], [30.0, 15, 10, 10], [30.0, 30, 20, 10],
              [30.0, 30, 30, 20], [30.0, 30, 30, 30]]
    for seed, curve in enumerate(curves):
        write_run(tmp_path / "runs", f"cwn{seed}", curve, seed=seed)
    for seed in range(4):
        write_run(tmp_path / "runs", f"plain{seed}", [30.0, 25.0, 21.0, 20.0 + seed], method="plain", seed=seed)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--target-top1", "20"]) == 0
    conv = pd.read_csv(tmp_path / "out" / "convergence.csv").set_index("method")
    assert (conv.target_top1_err == 20.0).all()
    cwn = conv.loc["cwn"]
    assert (cwn.n_seeds, cwn.n_reached) == (6, 5)
    assert cwn.epochs_to_target_mean == pytest.approx((1 + 2 + 2 + 3 + 4) / 5)
    assert cwn.olympic_epochs_to_target == pytest.approx((2 + 2 + 3 + 4) / 4)  # 1 and "never" dropped
    assert cwn.olympic_wall_s_to_target == pytest.approx(10 * (2 + 2 + 3 + 4) / 4)
    assert math.isnan(conv.loc["plain", "olympic_epochs_to_target"])  # 4 seeds: below MLPerf's 5


def test_a_row_added_to_paper_py_gets_its_claims(tmp_path, monkeypatch):
    from cwn_bench.report import paper

    monkeypatch.setitem(paper.PAPER, ("digits", "mlp", "plain"), (20.0, 5.0, "Table 9"))
    monkeypatch.setitem(paper.PAPER, ("digits", "mlp", "cwn"), (10.0, 2.0, "Table 9"))
    runs_of(tmp_path / "runs", {"plain": [20.0, 21.0, 20.5], "cwn": [10.0, 11.0, 10.5]}, dataset="digits",
            model="mlp")
    _, out = report(tmp_path, tmp_path / "runs")
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    assert set(claims.source) == {"Table 9"}
    assert claims.loc["cwn's top-1 error is lower than plain's", "verdict"] == "reproduced"
    assert claims.loc["cwn's top-5 error is lower than plain's", "paper_values"] == "cwn 2.00; plain 5.00"
    assert claims.loc["cwn has the lowest top-1 error of all methods", "methods"] == "cwn, plain"
