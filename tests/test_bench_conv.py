"""`cwn-bench bench conv` on CPU: tiny shapes, few pairs; correctness of the harness only
(speed is a benchmark, never a test)."""

import json
import os

import pytest
import torch

from cwn_bench import cli
from cwn_bench.bench import shapes as shp
from cwn_bench.bench.timing import Workload, summarize, time_pairs
from cwn_bench.bench.variants import WSConv2d
from cwn_bench.errors import UserError

MEASUREMENT_FIELDS = {"shape", "variant", "pass", "dtype", "memory_format", "median_ms", "iqr_ms", "ratio_vs_plain"}
ENV_FIELDS = {"gpu", "card", "cuda", "cudnn", "torch", "triton", "cpu", "cpu_threads", "cudnn_benchmark", "git"}


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_writes_env_header_and_one_row_per_measurement(tmp_path, capsys):
    out = tmp_path / "conv.jsonl"
    # the Triton kernels run on CPU tensors only through the interpreter (conftest sets it without a GPU)
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    variants = ["plain", "cwn-reference", "cwn-explicit", *(["cwn-triton"] if interpreted else []), "wn", "ws"]
    passes = ["fwd", "bwd", "fwd+bwd", "eval-fwd"]
    code = cli.main(["bench", "conv", "--shapes", "test:2x4x6x6-4x3x3", "test:3x8-4", "--variants", *variants,
                     "--passes", *passes, "--dtypes", "fp32", "--formats", "nchw", "nhwc", "--device", "cpu",
                     "--reps", "2", "--warmup", "0", "--out", str(out)])
    assert code == 0
    rows = _read(out)
    assert rows[0]["kind"] == "env" and ENV_FIELDS <= rows[0].keys() and rows[0]["device"] == "cpu"
    measured = rows[1:]
    assert all(r["kind"] == "measurement" and MEASUREMENT_FIELDS <= r.keys() for r in measured)
    keys = {(r["shape"], r["variant"], r["pass"], r["memory_format"]) for r in measured}
    # the conv in both formats, the linear (no memory format) in nchw only
    expected = {(s, v, p, f) for v in variants for p in passes
                for s, f in [("test:2x4x6x6-4x3x3", "nchw"), ("test:2x4x6x6-4x3x3", "nhwc"), ("test:3x8-4", "nchw")]}
    assert keys == expected and len(measured) == len(expected)
    assert all(r["median_ms"] > 0 and r["iqr_ms"] >= 0 and r["ratio_vs_plain"] > 0 and r["pairs"] == 2
               for r in measured)
    table = capsys.readouterr().out
    assert "ratio_vs_plain" in table and "cwn-explicit" in table and f"# wrote {out}" in table


def test_triton_variant_without_gpu_or_interpreter_is_a_skipped_row(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    out = tmp_path / "conv.jsonl"
    assert cli.main(["bench", "conv", "--shapes", "test:2x4x6x6-4x3x3", "--variants", "cwn-triton", "--device", "cpu",
                     "--reps", "1", "--warmup", "0", "--out", str(out)]) == 0
    (row,) = _read(out)[1:]
    assert row["kind"] == "skipped" and "TRITON_INTERPRET" in row["reason"]


@pytest.mark.parametrize("argv, message", [
    (["--dtypes", "tf32"], "tf32 needs a CUDA device"),
    (["--cuda-graph"], "--cuda-graph needs a CUDA device"),
    (["--shapes", "64x128x32"], "--shapes '64x128x32'"),
    (["--reps", "0"], "need at least 1 pair"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "conv.jsonl"
    assert cli.main(["bench", "conv", "--device", "cpu", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_existing_output_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "conv.jsonl"
    out.write_text("keep\n")
    assert cli.main(["bench", "conv", "--shapes", "test:2x4x6x6-4x3x3", "--variants", "plain", "--device", "cpu",
                     "--reps", "1", "--out", str(out)]) == 2
    assert out.read_text() == "keep\n" and "exists" in capsys.readouterr().err


@pytest.mark.parametrize("spec, name, fields", [
    ("test:2x8x8x8-8x3x3", "test:2x8x8x8-8x3x3", {"kind": "conv", "padding": 1, "stride": 1, "fan_in": 72}),
    ("64x576x28x28-576x2x2s2p0", "cli:64x576x28x28-576x2x2s2p0", {"stride": 2, "padding": 0, "height": 28}),
    ("g:64x3x224x224-64x7x7s2", "g:64x3x224x224-64x7x7s2", {"padding": 3, "fan_in": 147}),
    ("fc:64x1024-1000", "fc:64x1024-1000", {"kind": "linear", "cin": 1024, "cout": 1000, "fan_in": 1024}),
])
def test_shape_syntax_parses_and_names_round_trip(spec, name, fields):
    shape = shp.parse_shape(spec)
    assert shape.name == name and shp.parse_shape(shape.name) == shape
    assert {k: getattr(shape, k) for k in fields} == fields


def test_zero_sizes_are_rejected():
    with pytest.raises(UserError, match="at least 1"):
        shp.parse_shape("2x0x8x8-8x3x3")


def test_googlenet_bn_set_has_every_distinct_layer_at_both_batches():
    found = shp.googlenet_bn_shapes()
    names = {s.name for s in found}
    assert {"googlenet_bn:64x3x224x224-64x7x7s2", "googlenet_bn:256x3x224x224-64x7x7s2",
            "googlenet_bn:64x1024-1000", "googlenet_bn:64x576x28x28-576x2x2s2p0"} <= names
    assert len(names) == len(found) and {s.batch for s in found} == {64, 256}
    per_batch = [s for s in found if s.batch == 64]
    assert len(per_batch) * 2 == len(found) and max(s.fan_in for s in per_batch) == 1024 * 2 * 2


def test_ws_layer_standardises_each_filter():
    layer = WSConv2d(3, 4, 3)
    w = layer.weight.detach().reshape(4, -1)
    expected = (w - w.mean(1, keepdim=True)) / torch.sqrt(w.var(1, unbiased=False, keepdim=True) + 1e-5)
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(layer(x), torch.nn.functional.conv2d(x, expected.reshape(4, 3, 3, 3), layer.bias))


def test_pairs_alternate_order_and_prepare_runs_before_each_step():
    log = []
    base = Workload(step=lambda: log.append("b"), prepare=lambda: log.append("pb"))
    variant = Workload(step=lambda: log.append("v"), prepare=lambda: log.append("pv"))
    pairs = time_pairs(base, variant, pairs=2, warmup=1, device=torch.device("cpu"))
    assert len(pairs) == 2
    assert log == ["pb", "b", "pv", "v", "pv", "v", "pb", "b", "pb", "b", "pv", "v"]


def test_summary_is_median_iqr_and_median_of_pairwise_ratios():
    stats = summarize([(1.0, 2.0), (2.0, 3.0), (4.0, 4.0), (1.0, 1.5), (2.0, 10.0)])
    assert stats.median_ms == 3.0 and stats.base_median_ms == 2.0
    assert stats.ratio_vs_plain == 1.5  # ratios 2, 1.5, 1, 1.5, 5
    assert stats.iqr_ms == pytest.approx(4.0 - 2.0) and stats.pairs == 5


@pytest.mark.slow
def test_compiled_variant_runs_once(tmp_path):
    out = tmp_path / "conv.jsonl"
    assert cli.main(["bench", "conv", "--shapes", "test:2x4x6x6-4x3x3", "--variants", "cwn-compiled", "--device",
                     "cpu", "--reps", "1", "--warmup", "1", "--out", str(out)]) == 0
    (row,) = _read(out)[1:]
    assert row["kind"] == "measurement" and row["variant"] == "cwn-compiled"


def test_a_triton_failure_is_a_skipped_row_and_the_other_variants_are_still_measured(tmp_path, monkeypatch):
    """On a GPU box whose Triton cannot compile (no C compiler, ptxas too old), cwn-triton
    raises at its first launch; gpu-check's conv parts must keep every other variant."""
    from cwn_bench.bench import conv

    def broken(variant, shape, device):
        if variant == "cwn-triton":
            raise RuntimeError("Failed to find C compiler")
        return build_layer(variant, shape, device)

    build_layer = conv.build_layer
    monkeypatch.setattr(conv, "build_layer", broken)
    out = tmp_path / "conv.jsonl"
    assert cli.main(["bench", "conv", "--shapes", "test:2x4x6x6-4x3x3", "--variants", "cwn-triton", "cwn-explicit",
                     "--passes", "fwd", "eval-fwd", "--device", "cpu", "--reps", "1", "--warmup", "0",
                     "--out", str(out)]) == 0
    rows = _read(out)[1:]
    assert [(r["variant"], r["kind"]) for r in rows] == [("cwn-triton", "skipped"), ("cwn-explicit", "measurement")] * 2
    assert rows[0]["reason"] == "Triton failed: RuntimeError: Failed to find C compiler"
