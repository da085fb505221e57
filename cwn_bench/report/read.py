"""The read step: every input under the user's paths into frames, every bad file or
line into ``problems``. Nothing here raises for bad content, only for a missing path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from cwn_bench.errors import UserError
from cwn_bench.report.bench import read_bench
from cwn_bench.report.discover import discover
from cwn_bench.rundir.files import Problem
from cwn_bench.report.runs import epochs_frame, read_run, runs_frame
from cwn_bench.report.sweeps import missing_runs, read_sweeps, submitted


@dataclass
class Inputs:
    runs: pd.DataFrame  # one row per readable run (columns: see runs.read_run)
    epochs: pd.DataFrame  # one row per epoch record, run columns joined
    measurements: pd.DataFrame  # bench kind=measurement rows, with file and card
    loaders: pd.DataFrame  # data-loader bench rows
    bench_files: list[str]
    missing: pd.DataFrame  # sweep, run, reason, job (SLURM / local job id from sweep.json)
    problems: pd.DataFrame  # path, line, problem


def read_inputs(paths: list[Path]) -> Inputs:
    """Read all run dirs, sweep dirs and bench JSONL under ``paths``. Raises UserError
    only for a path that does not exist or when none of them is found."""
    found = discover(paths)
    problems: list[Problem] = list(found.problems)
    rows, records, missing = [], {}, []
    for run_dir in tqdm(found.run_dirs, desc="reading runs", unit="run", disable=None):
        before = len(problems)
        read = read_run(run_dir, problems)
        if read is None:
            reason = problems[before].problem if len(problems) > before else "no run.json (never started?)"
            missing.append({"sweep": "", "run": str(run_dir), "reason": reason, "job": ""})
        else:
            rows.append(read[0])
            records[read[0]["run"]] = read[1]
    sweeps = read_sweeps(found.sweep_dirs, problems)
    missing += missing_runs(sweeps, set(records))
    recorded = submitted(sweeps)
    for row in rows:
        row["submitted"] = recorded.get(row["run"], {})  # job id and code commit from sweep.json
    measurements, loaders, bench_files = read_bench(found.jsonl_files, problems)
    if not (found.run_dirs or found.sweep_dirs or bench_files):
        raise UserError(f"no run dirs, sweep dirs or bench JSONL found under {', '.join(map(str, paths))}"
                        + (f" ({len(problems)} unreadable file(s), e.g. {problems[0].path})" if problems else ""))
    runs = runs_frame(rows) if rows else pd.DataFrame()
    return Inputs(
        runs=runs,
        epochs=epochs_frame(runs, records) if rows else pd.DataFrame(),
        measurements=measurements,
        loaders=loaders,
        bench_files=bench_files,
        missing=pd.DataFrame(missing, columns=["sweep", "run", "reason", "job"]).drop_duplicates("run"),
        problems=pd.DataFrame([vars(p) for p in problems], columns=["path", "line", "problem"]).astype(
            {"line": "Int64"}),
    )
