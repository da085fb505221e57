"""``write_report``: read, aggregate, write CSV / LaTeX / PNG / report.md / index.html.

The whole report is written to a temporary folder beside ``out`` and then renamed into
place, so a failure (a full disk, a permission error) leaves the previous report whole.
``out`` is replaced only when it is absent, empty or holds a previous report's files
(names no input uses: run.json, metrics.jsonl, sweep.json and bench ``.jsonl`` are read,
never written), so inputs and other files are never overwritten.
"""

from __future__ import annotations

import datetime
import html
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

from cwn_bench.errors import UserError
from cwn_bench.report import compare, figure2, tables
from cwn_bench.report import sections as sec
from cwn_bench.report import verdict_sections as vs
from cwn_bench.report.claims import claims
from cwn_bench.report.plots import curves, overhead_plots
from cwn_bench.report.read import Inputs, read_inputs
from cwn_bench.report.render import html_page, html_table, latex, markdown, md_escape
from cwn_bench.report.select import selection

REPORT_SUFFIXES = (".csv", ".tex", ".png", ".md", ".html")  # what a report folder holds


def _selected(final: pd.DataFrame, sel: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """The final errors of the selected configs only, each labelled by its selection."""
    labels = {g: ", ".join(filter(None, [f"selected on {', '.join(keys)}", v])) for g, v in zip(sel.group, sel.variant)}
    kept = final[final.group.isin(labels)]
    return kept, kept.group.map(labels)


def _tables(inputs: Inputs, select: list[str], target: float | None) -> dict[str, pd.DataFrame]:
    """Every CSV the report writes, by file stem (numbers, not strings)."""
    out = {"overhead": tables.overhead(inputs.measurements), "loaders": tables.loaders(inputs.loaders),
           "missing": inputs.missing, "problems": inputs.problems}
    if inputs.runs.empty:
        return out
    done = tables.counted_epochs(inputs.epochs)  # completed runs' epochs, shared by the tables below
    acc = tables.accuracy(inputs.runs, done)
    final = compare.final_errors(done)
    decided = {"comparisons": compare.comparisons(done)}
    units = final.variant
    if select:
        decided["selection"] = selection(inputs.runs, done, select)
        final, units = _selected(final, decided["selection"], select)
    return {"claims": claims(final, inputs.runs, units), "accuracy": acc, **decided,
            "convergence": tables.convergence(acc, done, target),
            "error_at_epochs": tables.error_at_epochs(done), "throughput": tables.throughput(inputs.epochs),
            "runs": tables.reproducibility(inputs.runs), **out}


def _sections(data: dict[str, pd.DataFrame], images: dict[str, list[str]], select: list[str]) -> list[sec.Section]:
    """The report's sections in order, the paper's claims first; ``images`` holds the PNGs
    of "curves" (a section of its own) and "overhead" (shown above that section's table)."""
    builders = [("claims", lambda t: vs.claims_section(t, bool(select))), ("accuracy", sec.accuracy_section),
                ("comparisons", vs.comparisons_section), ("selection", lambda t: vs.selection_section(t, select)),
                ("convergence", sec.convergence_section), ("figure2", figure2.section),
                ("error_at_epochs", sec.error_at_epochs_section), ("throughput", sec.throughput_section),
                ("overhead", sec.overhead_section), ("loaders", sec.loaders_section), ("runs", sec.runs_section),
                ("missing", sec.missing_section), ("problems", sec.problems_section)]
    out = [build(data[key]) for key, build in builders if key in data and not data[key].empty]
    if "claims" in data and data["claims"].empty:
        out.insert(0, vs.no_claims_section())
    for part in out:
        part.images = images.get(part.key, [])
    if images.get("curves"):
        curves_note = "Mean over seeds of completed and running runs; the band spans min to max."
        after = next((i + 1 for i, part in enumerate(out) if part.key == "accuracy"), 0)
        out.insert(after, sec.Section("curves", "Training curves", curves_note, pd.DataFrame(), images["curves"]))
    return out


def _files(part: sec.Section) -> list[str]:
    """The files holding a section's table: its CSV, and its LaTeX when it has one."""
    return [f"{part.key}.csv"] + ([f"{part.key}.tex"] if part.latex else [])


def _markdown(title: str, lines: list[str], parts: list[sec.Section], csvs: list[str]) -> str:
    text = [f"# {title}", "", *[f"- {md_escape(line)}" for line in lines],
            "- every table as CSV: " + ", ".join(f"[{f}]({f})" for f in csvs), ""]
    for part in parts:
        text += [f"## {md_escape(part.title)}", "", md_escape(part.note), ""]
        text += [f"![{part.title}: {name}]({name})\n" for name in part.images]
        if not part.table.empty:
            text += [markdown(part.table), "Data: " + ", ".join(f"[{f}]({f})" for f in _files(part)), ""]
    return "\n".join(text)


def _html(title: str, lines: list[str], parts: list[sec.Section], csvs: list[str]) -> str:
    links = ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in csvs)
    body = [f"<h1>{html.escape(title)}</h1>", "<ul>", *[f"<li>{html.escape(line)}</li>" for line in lines],
            '<li><a href="report.md">report.md</a></li>', f"<li>every table as CSV: {links}</li>", "</ul>"]
    for part in parts:
        body += [f"<h2>{html.escape(part.title)}</h2>", f"<p>{html.escape(part.note)}</p>"]
        body += [f'<p><img src="{html.escape(name)}" alt="{html.escape(part.title)}: {html.escape(name)}"></p>'
                 for name in part.images]
        if not part.table.empty:
            links = " &middot; ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in _files(part))
            body += [html_table(part.table), f"<p>{links}</p>"]
    return html_page(title, body)


def _check_replaceable(out: Path) -> None:
    """``out`` must be absent, or a folder holding only a report's files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    others = sorted(p.name for p in out.iterdir() if not (p.is_file() and p.suffix in REPORT_SUFFIXES))
    if others:
        raise UserError(f"--out {out}: holds files a report does not write ({', '.join(others[:3])}"
                        f"{', ...' if len(others) > 3 else ''}); expected a new folder or a previous report's")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished report folder ``tmp`` with renames (the old report
    is renamed aside first and removed only once the new one is in place)."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def write_report(paths: list[Path], out: Path, *, select: list[str] | None = None,
                 target_top1: float | None = None) -> Path:
    """Read every run dir, sweep dir and bench JSONL under ``paths`` and write the report
    under ``out``: CSV tables, LaTeX (booktabs) tables, PNG curves and overhead plots,
    ``report.md`` and ``index.html``. Returns the path of ``report.md``. A path that does
    not exist, an ``out`` that is a file or holds other files, and a disk or permission
    error are UserErrors (one line; the previous report stays whole); a bad input file is
    counted, not fatal.  ``select``: config keys to select per method on the holdout error
    (selection.csv); ``target_top1``: the convergence target (val top-1 error, %) instead
    of plain's."""
    out = Path(out)
    _check_replaceable(out)
    inputs = read_inputs([Path(p) for p in paths])
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        lines = _write_all(inputs, paths, tmp, list(select or []), target_top1)
        _move_into_place(tmp, out)
    except OSError as err:
        where = err.filename or tmp
        raise UserError(f"{where}: cannot write the report ({err.strerror or err}); expected a writable "
                        f"folder with free space beside --out {out}; the previous report is left as it was") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in lines[1:]:
        print(f"report: {line}", file=sys.stderr)
    return out / "report.md"


def _write_all(inputs: Inputs, paths: list[Path], out: Path, select: list[str], target_top1: float | None) -> list[str]:
    """Every file of the report into the (new, empty) folder ``out``; the summary lines."""
    data = _tables(inputs, select, target_top1)
    traces = figure2.traces(inputs.runs)  # the probe / fim / step records, when probes were on
    if not traces.empty:
        data["figure2"] = figure2.summary(traces)
    for key, frame in data.items():
        frame.to_csv(out / f"{key}.csv", index=False)
    images = {"curves": [p.name for p in curves(inputs.epochs, out)] if not inputs.epochs.empty else [],
              "overhead": [p.name for p in overhead_plots(data["overhead"], out)],
              "figure2": [p.name for p in figure2.plots(traces, out, data.get("selection"))]}
    parts = _sections(data, images, select)
    for part in parts:
        if part.latex:
            (out / f"{part.key}.tex").write_text(latex(part.table, f"cwn-bench report: {part.title}"))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = "cwn-bench report"
    lines = [f"generated {stamp} from {', '.join(map(str, paths))}", *sec.summary(inputs)]
    csvs = [f"{key}.csv" for key in data]
    (out / "report.md").write_text(_markdown(title, lines, parts, csvs))
    (out / "index.html").write_text(_html(title, lines, parts, csvs))
    return lines
