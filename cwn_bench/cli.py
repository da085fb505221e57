"""``cwn-bench``: the command line, the top floor (the only module that imports ``launch``).

Each sub-command is a ``cmd_*`` function taking the parsed arguments and returning an
exit code; user errors (bad config, missing data, ...) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from pathlib import Path

from cwn_bench import config as cfgmod
from cwn_bench.bench import options as bench_options
from cwn_bench.errors import UserError, one_line
from launch import commands as launch_commands  # submit, status (submitit imported when run)


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
    return EXIT_PREEMPTED if run(cfg, run_dir, restart=args.restart) == PREEMPTED else 0


def cmd_report(args: argparse.Namespace) -> int:
    from cwn_bench.report import write_report  # pandas + matplotlib: imported only when used

    print(write_report([Path(p) for p in args.paths], Path(args.out), select=args.select,
                       target_top1=args.target_top1))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from launch.profile import load_profile
    from launch.submit import absolute_paths

    cfg = cfgmod.load_config(args.config, args.overrides)
    absolute_paths(cfg)  # as submit does: configs compare equal with those of submitted runs
    launch_commands.print_plan(cfg, load_profile(args.profile), args)
    return 0


def cmd_bench_conv(args: argparse.Namespace) -> int:
    from cwn_bench.bench.conv import run_conv  # torch: imported only when used

    out = args.out or bench_options.default_out("conv")
    run_conv(bench_options.spec_from_args(bench_options.ConvBenchSpec, args), out)
    print(f"# wrote {out}")
    return 0


def cmd_bench_step(args: argparse.Namespace) -> int:
    from cwn_bench.bench.step import run_step  # torch: imported only when used

    out = args.out or bench_options.default_out("step")
    run_step(bench_options.spec_from_args(bench_options.StepBenchSpec, args), out)
    print(f"# wrote {out}")
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    from cwn_bench.bench.data import run_data  # torch (and DALI): imported only when used

    out = args.out or bench_options.default_out("data")
    run_data(args.root, args.loader, out, batch_size=args.batch_size, epochs=args.epochs, reps=args.reps,
             skip_corrupt=args.skip_corrupt, image_size=args.image_size, workers=args.workers, warmup=args.warmup)
    print(f"wrote {out}")
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from cwn_bench.data import make_digits_dataset, make_sized_jpegs

    if args.dataset == "digits":
        out = make_digits_dataset(args.out, size=32 if args.size is None else args.size)
    else:
        size = 500 if args.size is None else args.size
        out = make_sized_jpegs(args.out, args.classes, args.per_class, size, size * 3 // 4)
    print(f"wrote {out}/train and {out}/val")
    return 0


DEMO_CPU_VARIANTS = ["plain", "cwn-reference", "cwn-explicit", "wn"]  # Triton's interpreter and
# torch.compile's cold start would take minutes on a CPU; a GPU runs every variant.


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline on embedded defaults: digits JPEGs -> the demo sweep through
    ``submit`` -> the paper-shape micro-benchmark on this device -> the report."""
    import torch

    from cwn_bench.bench.conv import run_conv
    from cwn_bench.data import make_digits_dataset
    from cwn_bench.report import write_report
    from launch.profile import load_profile
    from launch.status import wait
    from launch.submit import submit_sweep

    out = Path(args.out)
    cfg = cfgmod.load_config(args.config, args.overrides)
    root = Path(cfg.data.root or "data/digits")
    if (root / "train").is_dir():  # a rerun: the steps still count from 1
        print(f"[1/4] the digits JPEG folder is there: {root}", flush=True)
    else:
        print(f"[1/4] writing the digits JPEG folder to {root}", flush=True)
        make_digits_dataset(root)
    profile = load_profile(args.profile, {"cluster": args.cluster, "runs_root": str(out)})
    print(f"[2/4] submitting the {cfg.name} sweep", flush=True)
    sub = submit_sweep(cfg, profile, allow_dirty=True)  # a demo runs what is here; the diff is recorded
    print(f"sweep: {sub.sweep_dir} ({len(sub.submitted)} submitted, {len(sub.skipped)} skipped)", flush=True)
    if sub.jobs:
        wait(sub.jobs)
    failed = launch_commands.print_status(sub.sweep_dir)
    gpu = torch.cuda.is_available()
    bench_out = out / "bench" / f"conv-paper-{'cuda' if gpu else 'cpu'}.jsonl"
    print(f"[3/4] paper-shape conv benchmark on {'the GPU' if gpu else 'the CPU'} -> {bench_out}", flush=True)
    bench_out.unlink(missing_ok=True)  # this file is the demo's own; a rerun measures again
    spec = bench_options.ConvBenchSpec()
    if not gpu:
        spec.variants, spec.reps = list(DEMO_CPU_VARIANTS), args.cpu_reps
    run_conv(spec, bench_out)
    report = write_report([sub.sweep_dir, bench_out], out / "report")
    print(f"[4/4] report: {report}")
    return failed


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line, whatever the user typed (a value holding a newline)."""

    def error(self, message: str) -> typing.NoReturn:
        super().error(one_line(message, 2000))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cwn-bench", description="Centered Weight Normalization at ImageNet scale: configs, training, SLURM "
                                      "sweeps, benchmarks and reports. `cwn-bench COMMAND --help` for each command.")
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
    p.add_argument("--restart", action="store_true",
                   help="if every checkpoint is unusable (*.corrupt), start over from step 0 instead of stopping")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("report", help="tables, curves and a reproducibility report from run dirs and bench JSONL")
    p.add_argument("paths", nargs="+", metavar="PATH", help="run dirs, sweep dirs, folders of them, bench .jsonl")
    p.add_argument("--out", required=True, help="output folder (CSV, LaTeX, PNG, report.md, index.html)")
    p.add_argument("--select", nargs="+", metavar="KEY",
                   help="per dataset, model and method, pick the swept value(s) of these config keys with the lowest "
                        "mean final holdout_top1_err (val_top1_err without data.holdout): selection.csv")
    p.add_argument("--target-top1", type=bench_options.finite, metavar="ERR",
                   help="convergence target, val top-1 error in %% (default: plain's final error per dataset/model)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("submit", help="send a config's whole sweep to SLURM (a job array) or run it locally")
    launch_commands.add_submit_arguments(p)
    p.set_defaults(func=launch_commands.cmd_submit)

    p = sub.add_parser("plan", help="GPUs, images, wall time, GPU-hours, requeues and storage of a sweep, before "
                                    "submitting it",
                       description="The cost of a config's sweep on a cluster profile, per run and in total. "
                                   "Throughput per GPU: --img-per-s, else completed runs of the same config under "
                                   "--runs, else the newest matching `bench step` row under --bench (which one "
                                   "is printed). Training images only: evaluation passes are not counted.")
    p.add_argument("config", help="experiment YAML (its sweep: the runs planned)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, value parsed as YAML")
    p.add_argument("--profile", required=True, help="cluster profile YAML, e.g. configs/clusters/gpu-8x.yaml")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    launch_commands.add_plan_arguments(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("status", help="one row per run of a sweep: SLURM state, restarts, epoch, error, img/s")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the folder `cwn-bench submit` printed")
    p.set_defaults(func=launch_commands.cmd_status)

    p = sub.add_parser("bench", help="micro-benchmarks: normalised convs vs cuDNN, training steps, input pipeline")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name, func in (("conv", cmd_bench_conv), ("step", cmd_bench_step), ("data", cmd_bench_data)):
        bench_options.add_parser(bench, name).set_defaults(func=func)

    p = sub.add_parser("demo", help="digits dataset, the demo sweep, the paper-shape benchmark and the report",
                       description="The main job on embedded defaults, on whatever device this is: writes the "
                                   "digits JPEG folder, runs the demo sweep (plain/nnn/wn/cwn x 2 seeds) through "
                                   "`submit`, times the paper's conv shape and writes the report under "
                                   "OUT/report (its path is printed). Runs again resume and skip what is done.")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the demo config")
    p.add_argument("--config", default="configs/demo.yaml", help="experiment YAML (default: configs/demo.yaml)")
    p.add_argument("--out", default="runs/demo", help="runs root of the demo (default: runs/demo)")
    p.add_argument("--cluster", choices=("local", "slurm", "debug"), default="local",
                   help="submitit executor for the sweep (default: local processes)")
    p.add_argument("--profile", help="cluster profile YAML (default: one task per run, no GPU request)")
    p.add_argument("--cpu-reps", type=bench_options.at_least(1), default=5,
                   help="benchmark pairs on a CPU (default: 5)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("make-dataset", help="write a small real JPEG dataset (ImageNet layout) for demos and tests")
    p.add_argument("dataset", choices=("digits", "jpegs"),
                   help="digits: scikit-learn's 1797 8x8 digits, upscaled; jpegs: ImageNet-sized random JPEGs "
                        "(for `bench data`)")
    p.add_argument("out", metavar="OUT", help="folder to create (absent or empty)")
    p.add_argument("--size", type=bench_options.at_least(1, 8192),
                   help="image width in pixels (default: digits 32 square, jpegs 500x375)")
    p.add_argument("--classes", type=bench_options.at_least(1, 100_000), default=10, help="jpegs: class folders (default: 10)")
    p.add_argument("--per-class", type=bench_options.at_least(1, 10_000_000), default=50,
                   help="jpegs: train images per class, val a tenth (default: 50)")
    p.set_defaults(func=cmd_make_dataset)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra  # KEY=VALUE after the options: argparse leaves them over
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except UserError as err:
        print(f"cwn-bench {args.command}: error: {one_line(err, 2000)}", file=sys.stderr)  # one line, always
        return 2
    except BrokenPipeError:  # stdout's reader left early (`cwn-bench config X | head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else the flush at exit fails again
        return 1
    except OSError as err:  # an output path that cannot be created or written (--out, --run-dir, OUT)
        if err.filename is None:
            raise
        print(f"cwn-bench {args.command}: error: {err.filename}: {err.strerror}; expected a path that can be "
              "created and written", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
