"""Generated bad input (Hypothesis) for every class of issue 13: configs, overrides, names,
profile strings, run-dir files, YAML alias bombs and bench shapes.  Each property calls
the CLI's ``main()`` in-process and asserts what a user must see: exit 0, or exit 2 with
exactly one stderr line and no traceback; and that nothing was written outside the
folder it was meant for.  A few subprocess checks at the end run the real console entry."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import typing
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cwn_bench import cli
from cwn_bench import config as C
from cwn_bench.bench.shapes import parse_shape
from cwn_bench.errors import UserError
from cwn_bench.rundir import METRICS, RUN_JSON, SWEEP_JSON, runjson
from cwn_bench.rundir.metrics import MetricsLog
from launch.submit import absolute_paths

REPO = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = {"model": {"name": "mlp", "hidden": [8]}, "data": {"name": "digits", "root": "absent", "workers": 0},
        "train": {"device": "cpu"}}

# every dotted leaf key of the schema and its type (Annotated kept: ranges are read from it)
LEAVES: dict[str, typing.Any] = {}


def _leaves(cls: type, prefix: str = "") -> None:
    for name, tp in typing.get_type_hints(cls, include_extras=True).items():
        if name == "sweep":
            continue
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            _leaves(tp, f"{prefix}{name}.")
        else:
            LEAVES[f"{prefix}{name}"] = tp


_leaves(C.Config)


def _ranges(tp: typing.Any) -> list[C.Range]:
    """The Range of a leaf type (through ``X | None`` and ``Annotated``)."""
    found = [m for m in getattr(tp, "__metadata__", ()) if isinstance(m, C.Range)]
    for arg in typing.get_args(tp):
        found += _ranges(arg) if typing.get_origin(tp) is not typing.Annotated else []
    return found


RANGED = {k: (r[0], "float" in str(tp)) for k, tp in LEAVES.items() if (r := _ranges(tp)) and "list" not in str(tp)}
FLOAT_KEYS = sorted(k for k, (_, is_float) in RANGED.items() if is_float)


def run_cli(argv: list[str]) -> tuple[int, list[str]]:
    """``main(argv)`` in this process: (exit status, stderr lines)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as stop:  # argparse usage errors
            code = stop.code
    return code, err.getvalue().strip().splitlines()


def run_cli_keep_stdout(argv: list[str]) -> tuple[int, list[str]]:
    """:func:`run_cli` leaving stdout to the caller."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as stop:
            code = stop.code
    return code, err.getvalue().strip().splitlines()


def assert_ok_or_one_line(code: int, err: list[str], allowed: tuple[int, ...] = (0,)) -> None:
    """Exit ``allowed``, or 2 with one error line (argparse's usage lines aside), short,
    and last; never a traceback."""
    text = "\n".join(err)
    assert "Traceback" not in text, text[-3000:]
    if code in allowed:
        return
    errors = [line for line in err if ": error: " in line]
    assert code == 2 and len(errors) == 1 and errors[0] == err[-1] and len(errors[0]) < 1200, (code, text[-3000:])


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@contextlib.contextmanager
def sandbox():
    """A temporary folder as the working directory: ``(tmp, box)``, the run roots inside
    ``box``; ``tmp`` itself must hold nothing else afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp) / "box"
        box.mkdir()
        old = os.getcwd()
        os.chdir(box)
        try:
            yield Path(tmp), box
        finally:
            os.chdir(old)


def write_config(folder: Path, data: dict) -> Path:
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------ strategies

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)
keys = st.one_of(st.sampled_from(sorted(LEAVES)), st.sampled_from(sorted(LEAVES)).map(lambda k: k + ".x"),
                 st.text(max_size=20))
hostile_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["../x", "/etc", "..", ".", "a\nb", "a\rb", "x\x00y", "$(touch PWNED)", "a/../../b", "\x1b[31m", "x" * 300,
     "\x1b]0;pwned\x07"])


def out_of_range(rng: C.Range, is_float: bool) -> st.SearchStrategy:
    options = []
    if rng.low is not None:
        options.append(st.just(rng.low) if rng.low_open else st.nothing())
        options.append(st.floats(max_value=rng.low, exclude_max=not rng.low_open, allow_nan=False).filter(
            lambda v: v < rng.low or (rng.low_open and v <= rng.low)) if is_float
            else st.integers(max_value=int(math.ceil(rng.low)) - 1))
    if rng.high is not None:
        options.append(st.floats(min_value=rng.high, allow_nan=False, allow_infinity=False).filter(
            lambda v: v > rng.high or (rng.high_open and v >= rng.high)) if is_float
            else st.integers(min_value=int(rng.high) + 1))
    if is_float:
        options.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.one_of(*options)


ranged_bad = st.sampled_from(sorted(RANGED)).flatmap(
    lambda key: st.tuples(st.just(key), out_of_range(*RANGED[key])))


# ------------------------------------------------------------------ configs and overrides

@FAST
@given(st.dictionaries(keys, values, max_size=6))
def test_any_config_file_is_accepted_or_one_line(data):
    with sandbox() as (tmp, box):
        nested: dict = {}
        for key, value in data.items():
            *parents, last = key.split(".") if key else [""]
            node = nested
            for part in parents:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
            node[last] = value
        path = box / "exp.yaml"
        path.write_text(yaml.safe_dump(nested, allow_unicode=True))
        assert_ok_or_one_line(*run_cli(["config", str(path)]))


@FAST
@given(keys, st.text(max_size=40))
def test_any_override_is_accepted_or_one_line(key, raw):
    with sandbox() as (tmp, box):
        path = write_config(box, BASE)
        assert_ok_or_one_line(*run_cli(["config", str(path), f"{key}={raw}"]))


@FAST
@given(ranged_bad)
def test_every_out_of_range_value_is_refused_in_files_overrides_and_sweeps(key_value):
    key, value = key_value
    with sandbox() as (tmp, box):
        path = write_config(box, BASE)
        text = yaml.safe_dump(value).removesuffix("\n...\n").strip()
        code, err = run_cli(["config", str(path), f"{key}={text}"])
        assert code == 2 and len(err) == 1 and key in err[0], (key, value, err)
        section, _, leaf = key.rpartition(".")
        nested = json.loads(json.dumps(BASE))
        (nested.setdefault(section, {}) if section else nested)[leaf] = value
        code, err = run_cli(["config", str(write_config(box, nested))])
        assert code == 2 and len(err) == 1 and key in err[0], (key, value, err)
        code, err = run_cli(["config", str(write_config(box, {**BASE, "sweep": {key: [value]}}))])
        assert code == 2 and len(err) == 1 and key in err[0], (key, value, err)


@FAST
@given(st.sampled_from(FLOAT_KEYS), st.floats(min_value=1e-8, max_value=0.99), st.sampled_from(["%e", "%E", "%.0e"]))
def test_floats_as_recipes_write_them_are_floats_everywhere(key, value, fmt):
    """``1e-3``, ``5E-4``: YAML 1.1 would read them as text."""
    text = fmt % value
    expected = float(text)
    rng = RANGED[key][0]
    if (rng.low is not None and (expected <= rng.low if rng.low_open else expected < rng.low)) or \
            (rng.high is not None and (expected >= rng.high if rng.high_open else expected > rng.high)):
        return
    section, _, leaf = key.rpartition(".")
    by_override = C.load_config(_tmp_config({}), [f"{key}={text}"])
    by_file = C.load_config(_tmp_config({section: {leaf: text}} if section else {leaf: text}, raw=True))
    by_sweep = C.expand_sweep(C.load_config(_tmp_config({"sweep": {key: [text]}}, raw=True)))[0][1]
    for cfg in (by_override, by_file, by_sweep):
        assert C.get(cfg, key) == expected


def _tmp_config(data: dict, raw: bool = False) -> Path:
    """A config file in a fresh temporary folder; ``raw``: scalars written unquoted."""
    folder = Path(tempfile.mkdtemp())
    text = yaml.safe_dump({**BASE, **{k: {**BASE.get(k, {}), **v} if isinstance(v, dict) and k != "sweep" else v
                                      for k, v in data.items()}})
    if raw:  # safe_dump quotes '1e-3' (a string to YAML 1.1); a recipe does not
        text = text.replace("'", "")
    path = folder / "exp.yaml"
    path.write_text(text)
    return path


@FAST
@given(st.integers(2, 40), st.integers(2, 12))
def test_alias_bombs_are_one_short_line(fan_out, depth):
    lines = ["a0: &a0 [" + ", ".join(["x"] * fan_out) + "]"]
    for i in range(1, depth):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan_out) + "]")
    lines.append(f"model: {{hidden: *a{depth - 1}}}")
    with sandbox() as (tmp, box):
        path = box / "bomb.yaml"
        path.write_text("\n".join(lines) + "\n")
        code, err = run_cli(["config", str(path)])
        assert_ok_or_one_line(code, err)
        assert code == 2 and len(err) == 1 and len(err[0]) < 600  # never a model.hidden of fan_out**depth


# ------------------------------------------------------------------ names and folders

@SLOWER
@given(hostile_text)
def test_a_run_name_never_leaves_the_runs_root(name):
    """``train`` with a hostile name: refused in one line, or run dirs (and nothing else)
    created under runs/ of the working directory (the data root is absent, so it stops)."""
    with sandbox() as (tmp, box):
        path = write_config(box, {**BASE, "name": name, "data": {**BASE["data"], "root": str(box / "absent")}})
        code, err = run_cli(["train", str(path)])
        assert code == 2, err
        assert_ok_or_one_line(code, err)
        assert sorted(p.name for p in tmp.iterdir()) == ["box"]
        created = files_under(box) - {box / "exp.yaml"}
        assert all(box / "runs" in p.parents or p == box / "runs" for p in created), created


@SLOWER
@given(hostile_text, st.lists(hostile_text, min_size=1, max_size=2, unique=True))
def test_names_and_swept_values_stay_file_names_inside_the_sweep_dir(name, roots):
    with sandbox() as (tmp, box):
        path = write_config(box, {**BASE, "name": name, "sweep": {"data.root": roots}})
        code, err = run_cli(["submit", str(path), "--dry-run", "--cluster", "debug", "--runs-root", "runs"])
        assert_ok_or_one_line(code, err)
        if code == 0:
            cfg = C.load_config(path)
            absolute_paths(cfg)  # as submit does
            for point, _ in C.expand_sweep(cfg):
                run = C.run_name(point)
                assert "/" not in run and run.isprintable() and run not in (".", "..")
        assert sorted(p.name for p in tmp.iterdir()) == ["box"]


@SLOWER
@given(st.sampled_from(["partition", "account", "qos", "constraint", "setup", "runs-root"]), hostile_text)
def test_profile_strings_never_add_a_line_to_the_batch_script(flag, text):
    with sandbox() as (tmp, box):
        path = write_config(box, BASE)
        argv = ["submit", str(path), "--dry-run", "--cluster", "slurm", "--runs-root", "runs"]
        out = io.StringIO()
        with mock.patch("launch.profile.shutil.which", lambda name: "/usr/bin/" + name):
            plain = _script(argv + [f"--{flag}", "plain"])
            err = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(argv + [f"--{flag}", text])
                except SystemExit as stop:
                    code = stop.code
        assert_ok_or_one_line(code, err.getvalue().strip().splitlines())
        if code == 0:
            script = out.getvalue()
            assert len(script.splitlines()) == len(plain.splitlines()), script
        assert sorted(p.name for p in tmp.iterdir()) == ["box"]


def _script(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(argv) == 0
    return out.getvalue()


@FAST
@given(st.sampled_from(["--mem-gb", "--nodes", "--time", "--cpus-per-task", "--gpus-per-node", "--array-parallelism",
                        "--signal-delay", "--max-requeues", "--img-per-s", "--tasks-per-node", "--signal"]),
       st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "abc", "", "99999999999999999999", "1.5"])
       | st.text(max_size=12))
def test_numeric_submit_and_plan_flags_are_accepted_or_one_line(flag, text):
    with sandbox() as (tmp, box):
        path = write_config(box, BASE)
        for argv in (["submit", str(path), "--dry-run", "--cluster", "local", "--runs-root", "runs"],
                     ["plan", str(path), "--profile", str(REPO / "configs/clusters/local.yaml")]):
            assert_ok_or_one_line(*run_cli(argv + [f"{flag}={text}"]))
        assert sorted(p.name for p in tmp.iterdir()) == ["box"] and not (box / "runs").exists()


# ------------------------------------------------------------------ run-dir files

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=10)
content = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                    st.lists(json_values.map(json.dumps), max_size=5).map(lambda ls: "\n".join(ls).encode()),
                    st.fixed_dictionaries({"status": st.sampled_from(["running", "completed", "failed", 3]),
                                           "config": json_values, "attempts": json_values,
                                           "reason": hostile_text}).map(
                        lambda d: json.dumps(d).encode()))
sweep_content = st.one_of(content, st.fixed_dictionaries(
    {"runs": st.lists(st.one_of(json_values, st.fixed_dictionaries({"name": hostile_text, "point": json_values})),
                      max_size=3),
     "submissions": st.lists(st.one_of(json_values, st.fixed_dictionaries(
         {"cluster": st.just("local"), "jobs": st.dictionaries(st.text(max_size=5), json_values, max_size=2)})),
         max_size=2),
     "config": json_values}).map(lambda d: json.dumps(d).encode()))


@FAST
@given(content, content)
def test_run_dir_readers_of_train_raise_only_one_line(run_json, metrics):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        (run_dir / RUN_JSON).write_bytes(run_json)
        (run_dir / METRICS).write_bytes(metrics)
        for read in (lambda: runjson.read(run_dir), lambda: MetricsLog(run_dir / METRICS, True).truncate(1, 10),
                     lambda: MetricsLog(run_dir / METRICS, True).last("epoch")):
            try:
                read()
            except UserError as err:
                assert "\n" not in str(err) and len(str(err)) < 1000 and tmp in str(err)


@SLOWER
@given(sweep_content, content, content)
def test_status_and_report_of_any_sweep_dir_are_a_table_or_one_line(sweep, run_json, metrics):
    with sandbox() as (tmp, box):
        root = box / "sweep"
        (root / "r").mkdir(parents=True)
        (root / SWEEP_JSON).write_bytes(sweep)
        (root / "r" / RUN_JSON).write_bytes(run_json)
        (root / "r" / METRICS).write_bytes(metrics)
        before = {p: p.read_bytes() if p.is_file() else None for p in files_under(box)}
        out = io.StringIO()
        with mock.patch("launch.slurm_state.query", lambda ids: {}), contextlib.redirect_stdout(out):
            assert_ok_or_one_line(*run_cli_keep_stdout(["status", str(root)]), allowed=(0, 1))
        assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()  # no terminal control from the files
        assert_ok_or_one_line(*run_cli(["report", str(root), "--out", str(box / "out")]))
        assert {p: p.read_bytes() if p.is_file() else None for p in before} == before  # inputs untouched
        assert sorted(p.name for p in tmp.iterdir()) == ["box"]
        assert all(p in before or box / "out" in p.parents or p == box / "out" for p in files_under(box))


# ------------------------------------------------------------------ bench shapes

@FAST
@given(st.integers(0, 4), st.integers(0, 4), st.integers(0, 9), st.integers(0, 9), st.integers(0, 4),
       st.integers(0, 11), st.integers(0, 11), st.integers(0, 3), st.integers(0, 6))
def test_any_conv_shape_runs_or_is_one_line(n, c, h, w, o, kh, kw, s, p):
    import torch
    import torch.nn.functional as F

    spec = f"{n}x{c}x{h}x{w}-{o}x{kh}x{kw}s{s}p{p}"
    try:
        shape = parse_shape(spec)
    except UserError as err:
        assert "\n" not in str(err) and spec in str(err)
        return
    x = torch.zeros(shape.input_shape())
    weight = torch.zeros(shape.cout, shape.cin, shape.kh, shape.kw)
    assert F.conv2d(x, weight, stride=shape.stride, padding=shape.padding).numel() > 0


@FAST
@given(st.text(max_size=60))
def test_any_shape_text_is_parsed_or_one_line(spec):
    try:
        parse_shape(spec)
    except UserError as err:
        assert "\n" not in str(err) and len(str(err)) < 600


# ------------------------------------------------------------------ the real entry point, a few times


@pytest.mark.parametrize("case", ["bomb", "newline-partition"])
def test_console_entry_refuses_in_one_line(tmp_path, case):
    cfg = tmp_path / "exp.yaml"
    if case == "bomb":
        cfg.write_text("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
            + "name: *i\n")
        argv = ["config", str(cfg)]
    else:
        cfg.write_text(yaml.safe_dump(BASE))
        argv = ["submit", str(cfg), "--dry-run", "--cluster", "local", "--runs-root", str(tmp_path / "runs"),
                "--partition", "gpu\ntouch " + str(tmp_path / "PWNED")]
    proc = subprocess.run([sys.executable, "-m", "cwn_bench.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and len(proc.stderr) < 600, proc.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "runs").exists()
