"""User errors found in an acceptance pass: each is one stderr line naming the thing at
fault and what was expected, exit status 2, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from cwn_bench import cli

REPO = Path(__file__).resolve().parents[1]

CFG = "model: {name: mlp, hidden: [8]}\ndata: {name: digits, root: nowhere}\n"


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; the usage error or UserError line it printed."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse usage errors
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(CFG)
    return path


def test_overrides_after_options_are_applied(cfg_file, tmp_path, capsys):
    line = _one_line_error(capsys, ["train", str(cfg_file), "--run-dir", str(tmp_path / "r"), "train.batch_size=0"])
    assert "train.batch_size" in line and "at least 1, got 0" in line
    assert not (tmp_path / "r").exists()


def test_unknown_option_after_overrides_still_refused(cfg_file, capsys):
    assert "unrecognized arguments: --nope" in _one_line_error(capsys, ["config", str(cfg_file), "--nope"])


@pytest.mark.parametrize("override, key", [("train.epochs=0", "train.epochs"), ("data.workers=-1", "data.workers"),
                                           ("sweep={}", None)])
def test_config_minimums(cfg_file, capsys, override, key):
    if key is None:  # sweep values are checked too
        cfg_file.write_text(CFG + "sweep: {train.batch_size: [32, 0]}\n")
        override, key = "seed=1", "train.batch_size"
    line = _one_line_error(capsys, ["config", str(cfg_file), override])
    assert str(cfg_file) in line and f"'{key}': expected at least" in line


def test_config_not_text_or_bad_yaml_is_one_line(tmp_path, capsys):
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "b.yaml: not a text file" in _one_line_error(capsys, ["config", str(binary)])
    broken = tmp_path / "y.yaml"
    broken.write_text("a: [\n")
    assert "y.yaml: not valid YAML (line 2, column 1:" in _one_line_error(capsys, ["config", str(broken)])


def test_unwritable_output_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line_error(capsys, ["make-dataset", "jpegs", str(blocker / "out"), "--classes", "1", "--per-class", "1"])
    assert str(blocker) in line and "expected a path that can be created" in line


@pytest.mark.parametrize("argv, needle", [
    (["make-dataset", "jpegs", "OUT", "--classes", "0"], "--classes: expected an integer of at least 1, got 0"),
    (["make-dataset", "digits", "OUT", "--size", "0"], "--size: expected an integer of at least 1, got 0"),
    (["make-dataset", "jpegs", "OUT", "--size", "1"], "1x0 px: expected at least 1"),
    (["bench", "data", "ROOT", "--loader", "torch", "--batch-size", "0"], "--batch-size: expected an integer"),
])
def test_counts_below_one_refused_before_writing(tmp_path, capsys, argv, needle):
    argv = [str(tmp_path / a) if a in ("OUT", "ROOT") else a for a in argv]
    assert needle in _one_line_error(capsys, argv)
    assert not (tmp_path / "OUT").exists()


def test_status_of_a_file_is_not_a_sweep_directory(cfg_file, capsys):
    assert f"{cfg_file}: not a sweep directory" in _one_line_error(capsys, ["status", str(cfg_file)])


def test_demo_cpu_reps_refused_before_the_sweep_runs(tmp_path, capsys):
    line = _one_line_error(capsys, ["demo", "--cpu-reps", "0", "--out", str(tmp_path / "demo")])
    assert "--cpu-reps: expected an integer of at least 1, got 0" in line and not (tmp_path / "demo").exists()


def test_stdout_closed_early_is_no_traceback():
    """``cwn-bench config X | head -1``: the reader leaves before the output is written."""
    proc = subprocess.Popen([sys.executable, "-m", "cwn_bench.cli", "config", str(REPO / "configs/demo.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    proc.stdout.close()  # before the interpreter has even imported the CLI (~1 s)
    err = proc.communicate(timeout=120)[1]
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 1
