"""``cwn-bench``: the command line, the top floor (the only module that imports ``launch``).

Each sub-command is a ``cmd_*`` function taking the parsed arguments and returning an
exit code; user errors (bad config, missing data, ...) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cwn_bench import config as cfgmod
from cwn_bench.errors import UserError


def cmd_config(args: argparse.Namespace) -> int:
    cfg = cfgmod.load_config(args.config, args.overrides)
    print(cfgmod.dump_yaml(cfg), end="")
    print(f"# config_hash: {cfgmod.config_hash(cfg)}")
    runs = cfgmod.expand_sweep(cfg)
    print(f"# sweep: {len(runs)} run(s)")
    for point, run in runs:
        print(f"#   {cfgmod.run_name(point)}  config_hash={cfgmod.config_hash(run)[:12]}")
    return 0


EXIT_PREEMPTED = 3  # `train` stopped by SIGTERM/SIGUSR2 after a checkpoint: requeue it


def default_run_dir(path: str, cfg: cfgmod.Config) -> Path:
    """``runs/<name>/<swept values>``: ``runs/demo/method=cwn,seed=0`` for the base values
    (or overrides) of the file's sweep keys, ``runs/<name>/run`` when it has no sweep."""
    swept = cfgmod.load_config(path).sweep
    return Path("runs") / cfg.name / cfgmod.run_name({k: cfgmod.get(cfg, k) for k in swept})


def cmd_train(args: argparse.Namespace) -> int:
    from cwn_bench.train import PREEMPTED, run  # torch: imported only when used

    cfg = cfgmod.load_config(args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config, cfg)
    cfg.sweep = {}  # `train` runs the base values alone
    print(run_dir, flush=True)
    return EXIT_PREEMPTED if run(cfg, run_dir) == PREEMPTED else 0


def cmd_report(args: argparse.Namespace) -> int:
    from cwn_bench.report import write_report  # pandas + matplotlib: imported only when used

    print(write_report([Path(p) for p in args.paths], Path(args.out)))
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from cwn_bench.data import make_digits_dataset

    out = make_digits_dataset(args.out, size=args.size)
    print(f"wrote {out}/train and {out}/val (10 classes of {args.size}x{args.size} JPEGs)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cwn-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("config", help="print the resolved config, its hash and the sweep's runs")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, value parsed as YAML")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("train", help="one training run (a rank of a distributed run under torchrun/SLURM)",
                       description="Train one run; prints the run dir. Exit 0 when completed, "
                                   f"{EXIT_PREEMPTED} when stopped by SIGTERM/SIGUSR2 after a checkpoint "
                                   "(run it again to resume), 2 on bad input or a non-finite loss.")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, value parsed as YAML")
    p.add_argument("--run-dir", help="run directory (default: runs/<name>/<swept values>); resumed if it exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("report", help="tables, curves and a reproducibility report from run dirs and bench JSONL")
    p.add_argument("paths", nargs="+", metavar="PATH", help="run dirs, sweep dirs, folders of them, bench .jsonl")
    p.add_argument("--out", required=True, help="output folder (CSV, LaTeX, PNG, report.md, index.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("make-dataset", help="write a small real JPEG dataset (ImageNet layout) for demos and tests")
    p.add_argument("dataset", choices=("digits",), help="digits: scikit-learn's 1797 8x8 digits, upscaled")
    p.add_argument("out", metavar="OUT", help="folder to create (absent or empty)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default: 32)")
    p.set_defaults(func=cmd_make_dataset)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"cwn-bench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
