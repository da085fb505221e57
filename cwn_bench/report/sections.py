"""The report's sections: each numeric table turned into strings for reading (mean ±
std, counts, units in the headers) with a sentence saying what it holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cwn_bench.bench import targets
from cwn_bench.report.grouping import merged_hashes
from cwn_bench.report.read import Inputs

MAX_PROBLEM_ROWS = 100  # problems listed one by one in report.md; all are in problems.csv


@dataclass
class Section:
    key: str  # file stem of its CSV / .tex
    title: str
    note: str
    table: pd.DataFrame  # strings only
    images: list[str] = field(default_factory=list)
    latex: bool = False


def num(x: object, digits: int = 2) -> str:
    return "" if x is None or pd.isna(x) else f"{float(x):.{digits}f}"


def mean_std(mean: object, std: object, digits: int = 2) -> str:
    text = num(mean, digits)
    return f"{text} ± {num(std, digits)}" if text and not pd.isna(std) else text


def duration(seconds: object) -> str:
    if seconds is None or pd.isna(seconds):
        return ""
    s = float(seconds)
    return f"{s:.1f} s" if s < 600 else f"{s / 3600:.2f} h"


def _keys(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {"dataset": df.dataset, "model": df.model, "method": df.method, "variant": df.variant}


def _seeds(row: pd.Series) -> str:
    extra = [f"{row[c]} {w}" for c, w in (("n_running", "running"), ("n_failed", "failed"), ("n_other", "other"))
             if row[c]]
    return f"{row.n_seeds}" + (f" (+{', '.join(extra)})" if extra else "")


def _range(lo: object, hi: object) -> str:
    return f"{num(lo)}-{num(hi)}" if not pd.isna(lo) and lo != hi else ""


def accuracy_section(acc: pd.DataFrame) -> Section:
    table = pd.DataFrame({
        **_keys(acc), "seeds": acc.apply(_seeds, axis=1),
        "top-1 err (%)": [mean_std(m, s) for m, s in zip(acc.top1_err_mean, acc.top1_err_std)],
        "top-1 min-max": [_range(lo, hi) for lo, hi in zip(acc.top1_err_min, acc.top1_err_max)],
        "top-5 err (%)": [mean_std(m, s) for m, s in zip(acc.top5_err_mean, acc.top5_err_std)],
        "paper top-1": acc.paper_top1_err.map(num), "paper top-5": acc.paper_top5_err.map(num),
        "epochs": acc.epochs.map(lambda e: num(e, 0)), "config": acc.config_hash.str[:8]})
    note = ("Validation error at the final epoch of completed runs, mean ± std over seeds (ddof=1); "
            "runs running or failed are shown beside the seed count and not averaged. Paper: "
            "Huang et al. 2017 (Tables 1, 3, 4 and Sec. 4.2).")
    return Section("accuracy", "Accuracy", note + differing_note(acc), table, latex=True)


def differing_note(acc: pd.DataFrame) -> str:
    """Names the config keys by which rows of one dataset and model differ."""
    parts = []
    for (dataset, model), rows in acc.groupby(["dataset", "model"]):
        keys = sorted({part.partition("=")[0] for v in rows.variant if v for part in v.split(", ")})
        if keys:
            parts.append(f" {dataset}/{model}: configs differ in {', '.join(keys)}; each is a row of its own.")
    return "".join(parts)


def convergence_section(conv: pd.DataFrame) -> Section:
    table = pd.DataFrame({
        **_keys(conv), "target top-1 err (%)": conv.target_top1_err.map(num),
        "reached": [f"{r}/{n}" for r, n in zip(conv.n_reached, conv.n_seeds)],
        "epochs to target": [mean_std(m, s, 1) for m, s in zip(conv.epochs_to_target_mean, conv.epochs_to_target_std)],
        "wall time to target": conv.wall_s_to_target_mean.map(duration),
        "olympic epochs": conv.olympic_epochs_to_target.map(lambda x: num(x, 1)),
        "olympic wall time": conv.olympic_wall_s_to_target.map(duration)})
    note = ("First epoch whose val top-1 error is at or below the target: --target-top1 when given, else the "
            "plain method's final error for its dataset and model (else the worst row's). Wall time is the sum "
            "of the epochs' wall_s. Olympic: with 5 seeds or more, the mean without the fastest and the slowest "
            "seed (MLPerf's time-to-train score; a seed that never reached the target is the slowest).")
    return Section("convergence", "Convergence", note, table, latex=True)


def error_at_epochs_section(at: pd.DataFrame) -> Section:
    table = pd.DataFrame({
        **_keys(at), "epoch": at.epoch.astype(str), "seeds": at.n_seeds.astype(str),
        "val top-1 err (%)": [mean_std(m, s) for m, s in zip(at.val_top1_err_mean, at.val_top1_err_std)],
        "val top-5 err (%)": at.val_top5_err_mean.map(num), "train top-1 err (%)": at.train_top1_err_mean.map(num)})
    return Section("error_at_epochs", "Error at fixed epochs",
                   "Quarters of the shortest completed run of each dataset and model; mean ± std over seeds.", table)


def throughput_section(tp: pd.DataFrame) -> Section:
    table = pd.DataFrame({
        **_keys(tp), "GPUs": tp.world_size.astype(str), "nodes": tp.nodes.astype(str), "runs": tp.n_runs.astype(str),
        "img/s": tp.img_per_s.map(lambda x: num(x, 0)),
        "img/s per GPU": [mean_std(m, s, 0) for m, s in zip(tp.img_per_s_per_gpu, tp.img_per_s_per_gpu_std)],
        "scaling eff. (%)": (100 * tp.scaling_efficiency).map(lambda x: num(x, 0)),
        "speedup": tp.speedup.map(lambda x: f"{num(x)}x" if not pd.isna(x) else ""),
        "data wait (%)": (100 * tp.data_wait_share).map(lambda x: num(x, 0)),
        "epoch wall (s)": tp.epoch_wall_s.map(lambda x: num(x, 1)),
        "peak GPU mem (GiB)": tp.peak_gpu_mem_gib.map(lambda x: num(x, 1))})
    note = ("Median over each run's epochs (the first left out when there are more), mean over runs. "
            "Scaling efficiency: img/s per GPU relative to the same config on the fewest GPUs.")
    return Section("throughput", "Throughput", note, table, latex=True)


def overhead_section(oh: pd.DataFrame) -> Section:
    table = pd.DataFrame({
        "shape": oh["shape"], "variant": oh.variant, "pass": oh["pass"], "dtype": oh.dtype,
        "memory format": oh.memory_format, "median (ms)": oh.median_ms.map(lambda x: num(x, 3)),
        "IQR (ms)": oh.iqr_ms.map(lambda x: num(x, 3)), "ratio vs plain": oh.ratio_vs_plain.map(lambda x: num(x, 3)),
        "card": oh.card, "skipped": oh.reason}).astype(object).fillna("").astype(str)
    return Section("overhead", "Kernel overhead", "From bench JSONL; ratio vs plain is the median of pairwise "
                   f"ratios measured alternately in one run. Targets (cwn_bench.bench.targets): {targets.describe()}.",
                   table, latex=True)


def loaders_section(ld: pd.DataFrame) -> Section:
    table = ld.drop(columns="file").assign(img_per_s=ld.img_per_s.map(lambda x: num(x, 0)),
                                           cpu_ms_per_img=ld.cpu_ms_per_img.map(num)).fillna("").astype(str)
    return Section("loaders", "Data-loader throughput", "From bench JSONL (images per second; CPU milliseconds "
                   "per image, the loader process and its workers together).", table)


def runs_section(rp: pd.DataFrame) -> Section:
    def status(row: pd.Series) -> str:
        if row.status == "running":
            since = f", run.json updated {row.updated}" if row.updated else ""
            return f"running (in progress, epoch {row.last_epoch}/{num(row.planned_epochs, 0) or '?'}{since})"
        detail = row.reason or row.note
        return f"{row.status}: {detail}" if detail else row.status

    table = pd.DataFrame({
        "run": rp.run, "status": rp.apply(status, axis=1), "seed": rp.seed.astype(str), "method": rp.method,
        "variant": rp.variant, "config": rp.config_hash.str[:8], "GPUs": rp.world_size.astype(str),
        "hosts": rp.hostnames, "git commit": rp.git_commit, "job": rp.job, "SLURM job": rp.slurm_job_id,
        "array": rp.slurm_array, "restarts": rp.restarts, "device": rp.device, "torch": rp.torch,
        "CUDA": rp.cuda})
    return Section("runs", "Runs and reproducibility", "Every run read, with the environment it ran in "
                   "(full versions in runs.csv).", table)


def missing_section(missing: pd.DataFrame) -> Section:
    return Section("missing", "Missing runs", "Points listed by a sweep.json, or run dirs, without a readable "
                   "run.json.", missing.astype(str))


def problems_section(problems: pd.DataFrame) -> Section:
    lines = int(problems.line.notna().sum())
    files = problems.path.nunique()
    note = (f"{lines} corrupt or truncated line(s) skipped and {len(problems) - lines} other problem(s) "
            f"in {files} file(s); the report was built from everything else.")
    if len(problems) > MAX_PROBLEM_ROWS:
        note += f" The first {MAX_PROBLEM_ROWS} are listed; all are in problems.csv."
    shown = problems.head(MAX_PROBLEM_ROWS).assign(line=problems.line.map(lambda x: "" if pd.isna(x) else str(int(x))))
    return Section("problems", "Skipped input", note, shown.astype(str))


def summary(inputs: Inputs) -> list[str]:
    """One line each: runs by status, groups, bench files, skipped lines."""
    runs = inputs.runs
    counts = runs.status.value_counts().to_dict() if not runs.empty else {}
    skipped = int(inputs.problems.line.notna().sum())
    kinds = inputs.measurements.get("kind", pd.Series(dtype=str))
    measured = int((kinds == "measurement").sum())
    return [
        f"{len(runs)} run(s): " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"),
        f"{runs.group.nunique() if not runs.empty else 0} experiment(s) (resolved config and world size; seeds merged)",
        f"{len(inputs.bench_files)} bench file(s), {measured} timing(s), {len(inputs.loaders)} data-loader row(s)",
        f"{len(inputs.missing)} missing run(s), {skipped} corrupt or truncated line(s) skipped, "
        f"{len(inputs.problems) - skipped} other input problem(s)",
        *(merged_hashes(runs) if not runs.empty else []),
    ]
