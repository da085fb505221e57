"""The ``submit`` and ``status`` sub-commands (wired into ``cwn_bench/cli.py``).

Every profile field is also a flag (``--nodes``, ``--gpus-per-node``, ``--time`` in
minutes, ``--partition``, ``--setup 'module load cuda'`` repeatable, ...) that overrides
the profile for this submission.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from cwn_bench.bench.options import finite
from cwn_bench.config import Config, load_config
from cwn_bench.errors import UserError

from launch.profile import Profile, load_profile

RENAMED = {"time_min": "--time", "signal_delay_s": "--signal-delay"}


def _flag_type(tp: typing.Any) -> type:
    """``int | None`` -> int; ``str`` -> str."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def add_submit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML (its sweep: becomes one job per point)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, value parsed as YAML")
    p.add_argument("--profile", help="cluster profile YAML, e.g. configs/clusters/local.yaml")
    p.add_argument("--wait", action="store_true", help="follow the jobs until they end")
    p.add_argument("--dry-run", action="store_true",
                   help="print the batch script(s) alone on stdout (the other lines on stderr); submit nothing")
    p.add_argument("--restart", action="store_true",
                   help="runs whose checkpoints are all unusable start over from step 0 (`train --restart`)")
    p.add_argument("--report", action="store_true",
                   help="one more job (1 CPU), after every array has ended: cwn-bench report SWEEP --out SWEEP/report")
    p.add_argument("--allow-dirty", action="store_true",
                   help="snapshot uncommitted changes of the code (recorded as uncommitted.diff)")
    add_plan_arguments(p)
    hints = typing.get_type_hints(Profile)
    group = p.add_argument_group("cluster profile overrides")
    for f in dataclasses.fields(Profile):
        flag = RENAMED.get(f.name, "--" + f.name.replace("_", "-"))
        tp = hints[f.name]
        if f.name == "setup":
            group.add_argument(flag, action="append", metavar="LINE", help="shell line run before the tasks")
        elif f.name == "cluster":
            group.add_argument(flag, dest=f.name, choices=typing.get_args(tp),
                               help=f"default: slurm when sbatch is on PATH, else local (profile: {f.default})")
        elif typing.get_origin(tp) is typing.Literal:
            group.add_argument(flag, dest=f.name, choices=typing.get_args(tp), help=f"profile default: {f.default}")
        else:
            group.add_argument(flag, dest=f.name, type=_flag_type(tp), help=f"profile default: {f.default}")


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """The throughput sources of `plan` (and of the plan `submit --dry-run` prints)."""
    group = p.add_argument_group("plan throughput (first found: --img-per-s, --runs, --bench)")
    group.add_argument("--img-per-s", type=finite, metavar="N", help="training images per second per GPU")
    group.add_argument("--runs", metavar="DIR", help="completed runs of the same config to take the rate from")
    group.add_argument("--bench", nargs="+", metavar="PATH", default=["results"],
                       help="`bench step` JSONL files or folders; the newest matching row (default: results)")
    group.add_argument("--card", metavar="TEXT", help="only bench rows of a card whose name contains TEXT (e.g. H100)")


def print_plan(cfg: Config, profile: Profile, args: argparse.Namespace, file: typing.TextIO | None = None) -> None:
    """Print the sweep's plan (:mod:`launch.plan`) to ``file`` (stdout), as JSON with ``args.json``."""
    from launch.plan import make_plan, render

    plan = make_plan(cfg, profile, img_per_s=args.img_per_s, runs_dir=Path(args.runs) if args.runs else None,
                     bench=[Path(b) for b in args.bench], card=args.card)
    print(json.dumps(plan.as_json(), indent=1) if getattr(args, "json", False) else render(plan), file=file)


def cmd_submit(args: argparse.Namespace) -> int:
    from launch.status import wait
    from launch.submit import submit_sweep

    cfg = load_config(args.config, args.overrides)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Profile)}  # --setup: a list
    profile = load_profile(args.profile, overrides)
    sub = submit_sweep(cfg, profile, dry_run=args.dry_run, allow_dirty=args.allow_dirty, report=args.report,
                       restart=args.restart)
    info = sys.stdout
    if sub.script is not None:  # the script alone on stdout: `submit --dry-run ... > job.sh` can be read or run
        print(sub.script)
        info = sys.stderr
    if args.dry_run:
        try:
            print_plan(cfg, profile, args, info)
        except UserError as err:  # the script above is the dry run's answer; the plan is extra
            print(f"plan: not computed: {err}", file=sys.stderr)
    print(f"sweep: {sub.sweep_dir}", file=info)
    for name, why in sub.skipped.items():
        print(f"  {name}: skipped ({why})", file=info)
    for name, job_id in sub.submitted.items():
        print(f"  {name}: {sub.cluster} job {job_id}", file=info)
    if len(sub.arrays) > 1:
        print(f"  {len(sub.arrays)} arrays (MaxArraySize): {', '.join(sub.arrays)}", file=info)
    if sub.report_job is not None:
        print(f"  report: slurm job {sub.report_job.job_id} (afterany: {', '.join(sub.arrays)}) -> "
              f"{sub.sweep_dir / 'report'}", file=info)
    if sub.cluster == "debug":  # runs here and now, one run after the other; pdb on an error
        for job in sub.jobs:
            job.result()
    if (args.wait or sub.cluster == "debug") and sub.jobs:
        wait(sub.jobs + ([sub.report_job] if sub.report_job is not None else []))
        return print_status(sub.sweep_dir)
    return 0


def print_status(sweep_dir: Path) -> int:
    """Print the status table of ``sweep_dir`` and where its SLURM states came from (and
    the report job's state); 1 when a run failed, else 0."""
    from launch.status import render, table_and_notes

    table, notes = table_and_notes(sweep_dir)
    print(render(table))
    for note in notes:
        print(note)
    return int(any(r.status == "failed" for r in table))


def cmd_status(args: argparse.Namespace) -> int:
    """Exit status 1 when a run failed, else 0."""
    return print_status(Path(args.sweep_dir))
