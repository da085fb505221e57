"""``cwn-bench status SWEEP_DIR``: one row per run, from SLURM (sacct, or squeue when the
cluster keeps no accounting) and the run directories; the report job's state; and
``--wait``'s progress display.

A job of submitit's local executor has no sacct record: if its run.json says running but
no process holds the run directory's lock (:func:`cwn_bench.rundir.lock.holder`), it
was stopped or killed, and the row says so.  Without accounting, a SLURM job that squeue
no longer lists (ended more than MinJobAge ago) is known only from its run directory: a
run.json still saying running is shown as stopped."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import JobPaths
from tqdm import tqdm

from cwn_bench.rundir import METRICS, metrics, runjson, sweepjson
from cwn_bench.rundir import lock as runlock

from launch import slurm_state
from launch.submit import JOBS

ACTIVE = ("RUNNING", "COMPLETING")
COLUMNS = ("run", "job", "slurm", "status", "restarts", "epoch", "val_top1_err", "img_per_s", "reason")


@dataclass
class Row:
    run: str
    job: str = "-"
    slurm: str = "-"  # SLURM state (sacct), "-" off SLURM
    status: str = "pending"  # completed | failed | running | stopped | pending | incomplete
    restarts: int = 0
    epoch: str = "-"  # "done/total"
    val_top1_err: float | None = None  # percent
    img_per_s: float | None = None
    reason: str = ""  # why it failed: run.json's reason, or SLURM's state and the stderr tail


def _stderr_tail(root: Path, job_id: str, lines: int = 3) -> str:
    path = JobPaths(root / JOBS, job_id=job_id, task_id=0).stderr
    try:
        text = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _run_files(run_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """(run.json, last epoch record, problems reading them).  Each file is read on its
    own, so a bad metrics line (e.g. one being written right now) hides neither
    run.json nor the epoch records before it."""
    run_json, bad = runjson.load(run_dir)
    recs, bad_lines = metrics.load(run_dir / METRICS)
    return run_json, metrics.last_epoch(recs), "; ".join(map(str, bad + bad_lines))


def rows(root: Path) -> list[Row]:
    return table_and_notes(root)[0]


def table_and_notes(root: Path) -> tuple[list[Row], list[str]]:
    """The rows, and lines saying where the SLURM states came from and how the report
    job (``submit --report``) stands."""
    data = sweepjson.read(root)
    latest = sweepjson.latest_jobs(data)
    report_job = sweepjson.report_job(data)
    slurm_ids = [job for cluster, job in latest.values() if cluster == "slurm"]
    states = slurm_state.query(slurm_ids + ([report_job] if report_job else []))
    epochs = runjson.planned_epochs(data)
    out = []
    for run in data["runs"]:
        row = Row(run["name"])
        cluster, row.job = latest.get(row.run, ("-", "-"))
        state = states.get(row.job)
        run_json, last, problem = _run_files(root / row.run)
        epochs_total = (runjson.planned_epochs(run_json) if run_json else None) or epochs or "?"
        if last:
            row.epoch = f"{last['epoch']}/{epochs_total}"
            row.val_top1_err, row.img_per_s = last.get("val_top1_err"), last.get("img_per_s")
        if run_json:
            row.status, row.reason = run_json["status"], run_json.get("reason") or ""
            row.restarts = max(len(run_json.get("attempts", [])) - 1, 0)
        if state is not None:
            row.slurm, row.restarts = state.state, max(row.restarts, state.restarts)
            if state.final and row.status != "completed":
                row.status = "failed" if state.state != "COMPLETED" else "incomplete"
                tail = _stderr_tail(root, row.job)
                row.reason = "; ".join(x for x in (row.reason, f"SLURM {state.state}", tail) if x)
        if cluster == "local" and row.status == "running" and runlock.holder(root / row.run) is None:
            row.status, problem = "stopped", "; ".join(
                x for x in (problem, "no process is training it (stopped or killed): submit again to resume") if x)
        if cluster == "slurm" and state is None and states.source == slurm_state.SQUEUE and row.status == "running":
            row.status, problem = "stopped", "; ".join(
                x for x in (problem, f"job {row.job} is no longer queued (no accounting says how it ended): "
                            "submit again to resume") if x)
        row.reason = "; ".join(x for x in (row.reason, problem) if x)
        out.append(row)
    return out, _notes(root, states, bool(slurm_ids), report_job)


def _notes(root: Path, states: slurm_state.States, on_slurm: bool, report_job: str | None) -> list[str]:
    notes = []
    if on_slurm and states.source == slurm_state.SQUEUE:  # said only then: sacct is the rule
        notes.append("SLURM states: squeue and the run directories (sacct failed: no accounting on this cluster)")
    if report_job:
        state = states.get(report_job)
        done = (root / "report" / "report.md").exists()
        notes.append(f"report job {report_job}: {state.state if state else 'unknown'}"
                     + (f" -> {root / 'report' / 'report.md'}" if done else ""))
    return notes


def _fmt(value: Any) -> str:
    """A cell as printable text: a run name or reason from a run dir cannot move the
    cursor or recolour the terminal (control characters show as U+FFFD)."""
    text = "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def render(table: list[Row]) -> str:
    """Aligned plain-text table, one row per run."""
    cells = [list(COLUMNS)] + [[_fmt(getattr(r, c)) for c in COLUMNS] for r in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row, widths)), row[-1]]).rstrip()
                     for row in cells)


def wait(jobs: list[submitit.Job], poll_s: float = 5.0) -> None:
    """Follow ``jobs`` until every one has ended: a tqdm bar on a terminal, else a line
    whenever the count of states changes."""
    tty = sys.stderr.isatty()
    bar = tqdm(total=len(jobs), unit="job", disable=not tty)
    last = ""
    while True:
        jobs[0].done(force_check=True)  # one sacct call refreshes every job of the sweep
        states = [job.state.upper() for job in jobs]
        unknown = [j.job_id for j, s in zip(jobs, states) if s == "UNKNOWN" and isinstance(j, submitit.SlurmJob)]
        if unknown:  # sacct knows nothing (no accounting): squeue's view
            queue = slurm_state.query(unknown)
            states = [queue[j.job_id].state if j.job_id in queue else s for j, s in zip(jobs, states)]
        # A result written is not the end: SLURM may still be RUNNING / COMPLETING the job.
        done = [job.done() and state not in ACTIVE for job, state in zip(jobs, states)]
        counts: dict[str, int] = {}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        summary = ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()))
        bar.update(sum(done) - bar.n)
        bar.set_postfix_str(summary)
        if not tty and summary != last:
            print(f"{sum(done)}/{len(jobs)} ended: {summary}", file=sys.stderr, flush=True)
        last = summary
        if all(done):
            break
        time.sleep(poll_s)
    bar.close()
