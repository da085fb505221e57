"""The run dir's format (cwn_bench/rundir): bad content is one line naming the file and
line; a full disk is one line naming the file and leaves the previous version."""

import errno
import json
import types

import pytest

from cwn_bench.errors import UserError
from cwn_bench.rundir import METRICS, RUN_JSON, SWEEP_JSON, metrics, runjson, sweepjson
from cwn_bench.rundir.metrics import MetricsLog


def test_metrics_lines_that_are_not_usable_records_are_named_by_line(tmp_path):
    path = tmp_path / METRICS
    path.write_text('{"kind": "epoch", "epoch": 1, "step": 4}\n[1, 2]\n{"kind": "epoch"}\n"x"\n'
                    '{"kind": "step", "step": -1}\n{"kind": "epoch", "epoch": 2, "step": 8}\n')
    records, problems = metrics.load(path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert [(p.line, p.problem.split(" (")[0].split(":")[0]) for p in problems] == [
        (2, "expected a JSON object, got list"), (3, "epoch record without a valid epoch number"),
        (4, "expected a JSON object, got str"), (5, "step record with an invalid step")]
    with pytest.raises(UserError, match=rf"{path} line 2: expected a JSON object, got list; expected one record"):
        MetricsLog(path, True).truncate(1, 4)


@pytest.mark.parametrize("content, problem", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"), (b"[]", "expected a JSON object, got list"),
    (b'{"status": "done"}', "not a run record: 'status' must be one of"), (b'{"status": "running", "config": []}', "'config' must be"),
])
def test_a_bad_run_json_is_one_line_naming_it(tmp_path, content, problem):
    (tmp_path / RUN_JSON).write_bytes(content)
    with pytest.raises(UserError, match=f"{tmp_path / RUN_JSON}: {problem}") as err:
        runjson.read(tmp_path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data, problem", [
    ({"runs": [{"name": "../x", "point": {}}]}, r"runs\[0\].name: '../x' contains '/'"),
    ({"runs": [7]}, r"runs\[0\]: expected"),
    ({"runs": [], "submissions": [{"jobs": []}]}, r"submissions\[0\]: expected an object with 'jobs'"),
    ({"points": []}, "not a sweep record"),
])
def test_malformed_sweep_entries_are_one_line_naming_the_file(tmp_path, data, problem):
    (tmp_path / SWEEP_JSON).write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"{tmp_path / SWEEP_JSON}: {problem}"):
        sweepjson.read(tmp_path)


def test_a_full_disk_is_one_line_and_keeps_the_previous_run_json(tmp_path, monkeypatch):
    runjson.write(tmp_path, {"status": "running"})
    with pytest.raises(UserError, match=r"/dev/full: cannot write \(No space left on device\)"):
        MetricsLog(__import__("pathlib").Path("/dev/full"), True).write({"kind": "step", "step": 1})

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cwn_bench.atomic.os.fsync", full)
    with pytest.raises(UserError, match=rf"{tmp_path / RUN_JSON}: cannot write \(No space left on device\)"):
        runjson.write(tmp_path, {"status": "completed"})
    monkeypatch.undo()
    assert runjson.read(tmp_path) == {"status": "running"} and sorted(p.name for p in tmp_path.iterdir()) == [RUN_JSON]


def test_a_full_disk_while_training_is_the_run_s_reason(tmp_path, digits_root, monkeypatch):
    from cwn_bench import cli
    from cwn_bench.rundir import metrics as metrics_mod

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics_mod, "os", types.SimpleNamespace(fsync=full, replace=metrics_mod.os.replace))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"model": {"name": "mlp", "hidden": [8]}, "train": {"device": "cpu", "epochs": 1,
                                                                                  "steps_per_epoch": 2, "log_every": 1},
                               "data": {"root": str(digits_root), "image_size": 8, "workers": 0}}))
    assert cli.main(["train", str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    reason = runjson.read(tmp_path / "run")["reason"]
    assert reason.startswith(f"{tmp_path / 'run' / METRICS}: cannot write (No space left on device)")
